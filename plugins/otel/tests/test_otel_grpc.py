"""OTLP over gRPC: spans reach a real gRPC receiver on loopback (``grpcio`` server with the
``opentelemetry-proto`` trace service)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class GrpcReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every ExportTraceServiceRequest it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def names(self) -> list[str]:
        return [span.name for r in self.requests for rs in r.resource_spans
                for ss in rs.scope_spans for span in ss.spans]


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[GrpcReceiver, int]]:
    """A gRPC OTLP receiver on a free loopback port."""
    receiver = GrpcReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield receiver, port
    server.stop(grace=None)


def test_spans_are_exported_over_grpc(grpc_receiver, installed_path: str) -> None:
    receiver, port = grpc_receiver
    code = f"""
import anyio
from neuroflow.observability import TracingService
t = TracingService("grpc-svc", "http://127.0.0.1:{port}", config={{"protocol": "grpc"}})
assert t.tracer.config.resolved_protocol() == "grpc"
with t.span("over grpc"), t.span("child"):
    pass
anyio.run(t.stop)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": installed_path})
    assert proc.returncode == 0, proc.stderr
    assert sorted(receiver.names()) == ["child", "over grpc"]
    resource = receiver.requests[0].resource_spans[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == (
        "grpc-svc")


def test_port_4317_means_grpc_and_others_http() -> None:
    from neuroflow_otel.tracer import OtelTracerConfig

    assert OtelTracerConfig(endpoint="http://collector:4317").resolved_protocol() == "grpc"
    assert OtelTracerConfig(endpoint="http://collector:4318").resolved_protocol() == (
        "http/protobuf")
    assert OtelTracerConfig(endpoint="http://c:4318", protocol="grpc").resolved_protocol() == (
        "grpc")
