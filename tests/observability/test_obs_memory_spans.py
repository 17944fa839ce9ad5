"""Memory operations are spans: store, retrieve, search and delete, with the agent, the
key or count and the store backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from neuroflow.errors import InvalidMemoryError
from neuroflow.memory import MemoryManager
from neuroflow.observability import TracingService, add_span_processor, remove_span_processor


class _Owner:
    """Keeps the in-memory exporter attached while the test runs."""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    owner, memory = _Owner(), InMemorySpanExporter()
    assert add_span_processor(owner, SimpleSpanProcessor(memory)) is not None
    yield memory
    remove_span_processor(owner)


@pytest.mark.anyio
async def test_each_memory_operation_is_a_span_under_the_caller(
    exporter: InMemorySpanExporter,
) -> None:
    tracing = TracingService("memory-test", backend="noop")
    manager = MemoryManager(store="memory")
    with tracing.span("agent step") as outer:
        await manager.store_memory("agent-1", "color", "blue", tags=["pref"])
        await manager.store_memory("agent-1", "size", "large", tags=["pref"])
        found = await manager.retrieve_memory("agent-1", "color")
        missing = await manager.retrieve_memory("agent-1", "nothing")
        hits = await manager.search_memories("agent-1", "blue color")
        deleted = await manager.delete_memory("agent-1", "color")
        removed = await manager.delete_memories("agent-1", tags=["pref"])
    await manager.aclose()
    assert found is not None and missing is None and hits and deleted and removed == 1
    spans = [s for s in exporter.get_finished_spans()
             if s.instrumentation_scope.name == "neuroflow" and s.name != "agent step"]
    assert [s.name for s in spans] == [
        "store_memory", "store_memory", "retrieve_memory", "retrieve_memory",
        "search_memories", "delete_memory", "delete_memories"]
    for span in spans:
        assert span.kind is SpanKind.INTERNAL
        assert span.parent.span_id == int(outer.span_id, 16)
        assert span.attributes["neuroflow.memory.agent_id"] == "agent-1"
        assert span.attributes["neuroflow.memory.store"]
    store, _, got, miss, search, delete, delete_many = spans
    assert store.attributes["neuroflow.memory.key"] == "color"
    assert got.attributes["neuroflow.memory.found"] is True
    assert miss.attributes["neuroflow.memory.found"] is False
    assert search.attributes["neuroflow.memory.count"] == len(hits)
    assert delete.attributes["neuroflow.memory.found"] is True
    assert delete_many.attributes["neuroflow.memory.count"] == 1


@pytest.mark.anyio
async def test_a_failed_memory_operation_is_an_error_span(
    exporter: InMemorySpanExporter,
) -> None:
    manager = MemoryManager(store="memory")
    with pytest.raises(InvalidMemoryError):
        await manager.store_memory("agent-1", "", "value")
    await manager.aclose()
    [span] = [s for s in exporter.get_finished_spans() if s.name == "store_memory"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "InvalidMemoryError"
