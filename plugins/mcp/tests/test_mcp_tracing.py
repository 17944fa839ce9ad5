"""MCP tool calls through the guarded client are ``execute_tool {server}/{tool}`` spans,
and the request's ``_meta`` carries that span's ``traceparent`` to the server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from mcp_helpers import tiny
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from neuroflow import create_backend
from neuroflow.mcp import GuardedMCPClient
from neuroflow.observability import TracingService, add_span_processor, remove_span_processor

pytestmark = pytest.mark.anyio


class _Owner:
    """Keeps the in-memory exporter attached while the test runs."""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    owner, memory = _Owner(), InMemorySpanExporter()
    assert add_span_processor(owner, SimpleSpanProcessor(memory)) is not None
    yield memory
    remove_span_processor(owner)


async def test_a_tool_call_is_a_span_and_its_traceparent_reaches_the_server(
    exporter: InMemorySpanExporter,
) -> None:
    client = create_backend("mcp")  # the configured gate: wrapped in GuardedMCPClient
    assert isinstance(client, GuardedMCPClient)
    tracing = TracingService("mcp-test", backend="noop")
    try:
        await client.start_from_config(
            {"servers": {"meta": tiny("meta", env={"TINY_ECHO_META": "1"})}})
        with tracing.span("agent step") as outer:
            echoed = await client.execute_tool("meta", "echo_meta", {})
        failed = await client.execute_tool("meta", "fail", {"message": "boom"})
    finally:
        await client.aclose()
    assert echoed["is_error"] is False, echoed
    meta = json.loads(echoed["result"])
    spans = {s.name: s for s in exporter.get_finished_spans()
             if s.name.startswith("execute_tool ")}
    span = spans["execute_tool meta/echo_meta"]
    assert span.parent.span_id == int(outer.span_id, 16)
    _, trace_id, parent_id, _ = meta["traceparent"].split("-")
    assert trace_id == f"{span.context.trace_id:032x}" == outer.trace_id
    # The server's parent is our span, or the MCP SDK's own client span just under it
    # (the SDK, when it traces, puts its span's traceparent in _meta itself).
    by_id = {s.context.span_id: s for s in exporter.get_finished_spans()}
    sent_under = by_id[int(parent_id, 16)]
    assert span.context.span_id in (sent_under.context.span_id, sent_under.parent.span_id)
    attrs = span.attributes
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == "echo_meta" and attrs["mcp.server"] == "meta"
    assert attrs["neuroflow.guard.decision"] == "allow"
    assert span.status.status_code is StatusCode.UNSET
    assert failed["is_error"] is True
    bad = spans["execute_tool meta/fail"]
    assert bad.status.status_code is StatusCode.ERROR and bad.parent is None
    assert bad.attributes["error.type"] == "error"



METRICS = """
import anyio, json, sys
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from neuroflow import create_backend

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

async def main():
    client = create_backend("mcp")
    try:
        await client.start_from_config({"servers": {"t": {
            "command": sys.executable, "args": [sys.argv[1]]}}})
        await client.execute_tool("t", "echo", {"text": "hi"})
        await client.execute_tool("t", "fail", {"message": "boom"})
    finally:
        await client.aclose()
    out = []
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    out.append([metric.name, dict(point.attributes),
                                getattr(point, "value", None), getattr(point, "count", None)])
    print(json.dumps(out))

anyio.run(main)
"""


def test_mcp_tool_calls_count_in_the_builtin_metrics(tmp_path) -> None:
    import os
    import subprocess
    import sys

    from mcp_helpers import TINY

    proc = subprocess.run([sys.executable, "-c", METRICS, TINY], capture_output=True,
                          text=True, timeout=180, cwd=tmp_path, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    points = json.loads(proc.stdout.splitlines()[-1])
    mcp = {"neuroflow.component": "mcp", "neuroflow.operation": "execute_tool"}
    assert ["neuroflow.operations", mcp, 2, None] in points
    assert ["neuroflow.operation.errors", {**mcp, "error.type": "error"}, 1, None] in points
    [latency] = [p for p in points if p[0] == "neuroflow.operation.duration" and p[1] == mcp]
    assert latency[3] == 2
