"""The ``otel`` tracer backend exporting to a real OTLP/HTTP receiver on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from neuroflow.errors import ConfigError
from neuroflow.observability import SpanKind, TracingService

SPEC_5 = """
import anyio
from neuroflow.observability import TracingService, MetricsCollector, StructuredLogger, SpanKind

async def execute_tool():
    return "ok"

async def main():
    tracing = TracingService(service_name="my-agent", exporter_endpoint=ENDPOINT)
    await tracing.start()
    with tracing.span("tool_execution", kind=SpanKind.CLIENT) as span:
        span.set_attribute("tool_name", "search")
        result = await execute_tool()
        span.set_attribute("result.success", True)
    await tracing.stop()
    logger = StructuredLogger("neuroflow")
    with tracing.span("logged"):
        logger.info("Request received", request_id="123", method="GET")

anyio.run(main)
"""


def _run(code: str, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": path, **env})
    assert proc.returncode == 0, proc.stderr
    return proc


def test_spec_5_with_an_endpoint_exports_over_otlp(receiver, installed_path: str) -> None:
    proc = _run(f"ENDPOINT = {receiver.url!r}\n" + SPEC_5, installed_path)
    [span] = [s for s in receiver.spans() if s["name"] == "tool_execution"]
    assert receiver.paths[0] == "/v1/traces"
    assert span["kind"] == ProtoSpan.SPAN_KIND_CLIENT
    assert span["attributes"] == {"tool_name": "search", "result.success": True}
    assert span["resource"]["service.name"] == "my-agent"
    assert span["scope"] == "neuroflow" and span["parent_span_id"] is None
    # stop() flushed before returning; the span opened after it is not exported...
    assert "logged" not in {s["name"] for s in receiver.spans()}
    # ...but still carries ids into the log line (the SDK provider stays installed).
    line = json.loads(proc.stderr.splitlines()[-1])
    assert line["message"] == "Request received" and len(line["trace_id"]) == 32


def test_nested_spans_errors_and_events_reach_the_receiver(receiver, otel_plugin) -> None:
    import anyio

    tracing = TracingService("svc", receiver.url, config={"batch": False})
    assert tracing.backend_name == "otel"
    assert tracing.tracer.config.resolved_protocol() == "http/protobuf"

    async def main() -> None:
        await tracing.start()
        with tracing.span("request", kind=SpanKind.SERVER) as root:
            with pytest.raises(OSError), tracing.span("write") as child:
                child.add_event("opened")
                raise OSError("disk full")
        await tracing.stop()
        assert child.parent_span_id == root.span_id

    anyio.run(main)
    spans = {s["name"]: s for s in receiver.spans()}
    assert spans["write"]["parent_span_id"] == spans["request"]["span_id"]
    assert spans["write"]["trace_id"] == spans["request"]["trace_id"]
    assert spans["write"]["status"] == (Status.STATUS_CODE_ERROR, "OSError: disk full")
    assert spans["write"]["events"] == ["opened", "exception"]
    assert spans["request"]["kind"] == ProtoSpan.SPAN_KIND_SERVER


def test_sampling_ratio_zero_exports_nothing_and_version_is_a_resource(
    receiver, installed_path: str
) -> None:
    code = f"""
import anyio
from neuroflow.observability import TracingService
from opentelemetry import trace
t = TracingService("svc", {receiver.url!r}, config={{"sampling_ratio": 0.0,
                                                   "service_version": "9.9"}})
with t.span("dropped") as span:
    assert not span.is_recording()
anyio.run(t.stop)
print(trace.get_tracer_provider().resource.attributes["service.version"])
"""
    assert _run(code, installed_path).stdout.strip() == "9.9"
    assert receiver.spans() == []


def test_console_and_file_exporters(tmp_path: Path, installed_path: str) -> None:
    target = tmp_path / "spans.jsonl"
    code = f"""
import anyio
from neuroflow.observability import TracingService
t = TracingService("svc", backend="otel",
                   config={{"exporters": ["console", "file"], "file": {str(target)!r}}})
with t.span("work") as span:
    span.set_attribute("k", "v")
anyio.run(t.stop)
"""
    out = _run(code, installed_path).stdout
    assert json.loads(out)["name"] == "work"  # ConsoleSpanExporter prints JSON
    [record] = [json.loads(line) for line in target.read_text().splitlines()]
    assert (record["name"], record["attributes"], record["service"]) == ("work", {"k": "v"},
                                                                         "svc")


def test_spans_are_flushed_at_exit_without_stop(receiver, installed_path: str) -> None:
    code = f"""
from neuroflow.observability import TracingService
t = TracingService("svc", {receiver.url!r})
with t.span("unflushed"):
    pass
"""
    _run(code, installed_path)
    assert [s["name"] for s in receiver.spans()] == ["unflushed"]


def test_bad_options_are_named(otel_plugin) -> None:
    with pytest.raises(ConfigError, match=r"sampling_ratio: expected a number from 0 to 1"):
        TracingService("svc", backend="otel", config={"sampling_ratio": 2.0})
    with pytest.raises(ConfigError, match=r"exporters: expected one of otlp, console, file"):
        TracingService("svc", backend="otel", config={"exporters": ["jaeger"]})
    with pytest.raises(ConfigError, match=r"tracer\.otel\.file: the \"file\" exporter needs"):
        TracingService("svc", backend="otel", config={"exporters": ["file"]})


def test_logs_bridge_exports_records_with_the_span_s_ids(receiver, installed_path: str) -> None:
    code = f"""
import anyio
from neuroflow.observability import StructuredLogger, TracingService

async def main():
    tracing = TracingService("svc", {receiver.url!r}, config={{"logs": True}})
    await tracing.start()
    logger = StructuredLogger("neuroflow.test")
    with tracing.span("handling") as span:
        logger.warning("Request failed", request_id="123")
    print(span.trace_id, span.span_id)
    await tracing.stop()

anyio.run(main)
"""
    trace_id, span_id = _run(code, installed_path).stdout.split()
    [record] = receiver.logs()
    assert (record["body"], record["severity"]) == ("Request failed", "WARN")
    assert (record["trace_id"], record["span_id"]) == (trace_id, span_id)
    assert record["attributes"]["neuroflow_fields"] == {"request_id": "123"}
    assert "/v1/logs" in receiver.paths


def test_metrics_are_exported_over_otlp(receiver, installed_path: str) -> None:
    code = f"""
import anyio
from neuroflow.observability import MetricsCollector, TracingService

async def main():
    tracing = TracingService("svc", {receiver.url!r}, config={{"metrics": True}})
    await tracing.start()
    metrics = MetricsCollector()
    metrics.increment("tool_invocations", 2, tags={{"tool": "search"}})
    metrics.histogram("request_latency", 12.5, tags={{"endpoint": "/api"}})
    await tracing.stop()

anyio.run(main)
"""
    _run(code, installed_path)
    found = receiver.metrics()
    assert found["tool_invocations"] == [({"tool": "search"}, 2)]
    assert found["request_latency"] == [({"endpoint": "/api"}, 12.5)]
    assert "/v1/metrics" in receiver.paths
