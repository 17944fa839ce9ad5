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

