"""Fixtures: a real OTLP/HTTP receiver on loopback, and the ``otel`` plugin registered."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

SRC = Path(__file__).resolve().parents[1] / "src"


class Receiver:
    """An OTLP/HTTP receiver: decodes each POST to ``/v1/traces`` and ``/v1/logs``."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.log_requests: list[ExportLogsServiceRequest] = []
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        self.paths: list[str] = []
        self.event = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                if self.path == "/v1/metrics":
                    sent = ExportMetricsServiceRequest()
                    sent.ParseFromString(body)
                    receiver.metric_requests.append(sent)
                    reply = ExportMetricsServiceResponse().SerializeToString()
                elif self.path == "/v1/logs":
                    logs = ExportLogsServiceRequest()
                    logs.ParseFromString(body)
                    receiver.log_requests.append(logs)
                    reply = ExportLogsServiceResponse().SerializeToString()
                else:
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    receiver.requests.append(request)
                    reply = ExportTraceServiceResponse().SerializeToString()
                receiver.event.set()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def spans(self) -> list[dict[str, Any]]:
        """Every received span as a dict: name, ids (hex), parent, kind, attributes,
        service (the resource's ``service.name``), status, events."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append({
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex() or None,
                            "kind": span.kind,
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                            "resource": resource,
                            "scope": scope_spans.scope.name,
                            "status": (span.status.code, span.status.message),
                            "events": [e.name for e in span.events],
                        })
        return found

    def logs(self) -> list[dict[str, Any]]:
        """Every received log record: body, severity, trace and span ids (hex), attributes."""
        return [
            {"body": record.body.string_value, "severity": record.severity_text,
             "trace_id": record.trace_id.hex(), "span_id": record.span_id.hex(),
             "attributes": {a.key: _value(a.value) for a in record.attributes}}
            for request in self.log_requests for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs for record in scope_logs.log_records
        ]

    def metrics(self) -> dict[str, Any]:
        """Every received metric's last data points: name -> [(attributes, value)]."""
        found: dict[str, Any] = {}
        for request in self.metric_requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        data = getattr(metric, metric.WhichOneof("data"))
                        found[metric.name] = [
                            ({a.key: _value(a.value) for a in point.attributes},
                             getattr(point, "sum", None) if metric.WhichOneof("data")
                             == "histogram" else (point.as_double or point.as_int))
                            for point in data.data_points]
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running OTLP/HTTP receiver, stopped after the test."""
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def otel_plugin() -> None:
    """The ``otel`` plugin registered on the process-wide plugin manager."""
    import neuroflow_otel.plugin
    from neuroflow.plugins import get_plugin_manager

    manager = get_plugin_manager()
    if "otel" not in manager.backends("tracer"):  # not installed: the source tree's plugin
        manager.register(neuroflow_otel.plugin, "otel-from-source")


@pytest.fixture
def installed_path(tmp_path: Path) -> str:
    """A ``PYTHONPATH`` on which the plugin is installed (its source plus a dist-info with
    the entry point), for subprocesses that must find it as users' installs do."""
    import os

    dist = tmp_path / "site" / "neuroflow_otel-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: neuroflow-otel\n"
                                   "Version: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[neuroflow]\notel = neuroflow_otel.plugin\n")
    return os.pathsep.join([str(SRC), str(dist.parent), os.environ.get("PYTHONPATH", "")])
