"""A namespace run is an ``execute_sandbox`` span of the ``namespace`` backend, and the
sandboxed program sees that span's ``TRACEPARENT``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from neuroflow.observability import TracingService, add_span_processor, remove_span_processor
from neuroflow.sandbox import NamespaceIsolator, SandboxConfig


class _Owner:
    """Keeps the in-memory exporter attached while the test runs."""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    owner, memory = _Owner(), InMemorySpanExporter()
    assert add_span_processor(owner, SimpleSpanProcessor(memory)) is not None
    yield memory
    remove_span_processor(owner)


@pytest.mark.anyio
async def test_the_program_continues_the_trace_of_its_sandbox_span(
        exporter: InMemorySpanExporter) -> None:
    tracing = TracingService("namespace-test", backend="noop")
    config = SandboxConfig(enable_network=False, enable_seccomp=True)
    async with NamespaceIsolator(config) as sandbox:
        with tracing.span("agent step") as outer:
            result = await sandbox.execute("/bin/sh", ["-c", 'echo "$TRACEPARENT"'])
    assert result.ok, result
    [span] = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_sandbox")]
    version, trace_id, span_id, _flags = result.stdout.decode().strip().split("-")
    assert version == "00" and trace_id == outer.trace_id
    assert span_id == f"{span.context.span_id:016x}"  # the sandbox span, not the outer one
    assert span.attributes["neuroflow.sandbox.backend"] == "namespace"
    assert span.attributes["neuroflow.guard.decision"] == "allow"
