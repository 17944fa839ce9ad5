"""TracingService on OpenTelemetry with the built-in tracers: nesting, ids, context across
await, tasks and threads, and what the local exporter keeps."""

from __future__ import annotations

import re

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from neuroflow.errors import ConfigError
from neuroflow.observability import (
    LocalTracer,
    NoopTracer,
    Span,
    SpanKind,
    SpanStatus,
    TracingService,
    current_span,
    current_span_id,
    current_trace_id,
    format_spans,
)

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
SPAN_ID = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture
def tracing() -> TracingService:
    """A tracing service on the default (``local``) backend."""
    return TracingService("test-service")


def finished(tracing: TracingService) -> dict[str, ReadableSpan]:
    """The finished OpenTelemetry spans of a local tracer by name."""
    tracer = tracing.tracer
    assert isinstance(tracer, LocalTracer)
    return {span.name: span for span in tracer.finished_spans()}


def parent_of(span: ReadableSpan) -> str | None:
    """A finished span's parent span id as hex."""
    return None if span.parent is None else f"{span.parent.span_id:016x}"


def test_default_backend_is_local(tracing: TracingService) -> None:
    assert tracing.backend_name == "local"
    assert isinstance(tracing.tracer, LocalTracer)
    assert tracing.tracer.config.service_name == "test-service"


def test_nested_spans_share_the_trace_and_point_at_their_parent(tracing: TracingService) -> None:
    assert current_trace_id() is None
    with tracing.span("root", kind=SpanKind.SERVER) as root:
        assert isinstance(root, Span)
        assert TRACE_ID.match(root.trace_id) and SPAN_ID.match(root.span_id)
        assert current_trace_id() == root.trace_id
        assert current_span_id() == root.span_id
        with tracing.span("child", attributes={"step": 1}) as child:
            assert current_span() == child
            with tracing.span("grandchild") as grandchild:
                pass
        assert current_span() == root
    assert current_span() is None
    with tracing.span("other root") as other:
        pass

    assert root.parent_span_id is None
    assert child.trace_id == root.trace_id == grandchild.trace_id
    assert child.parent_span_id == root.span_id
    assert grandchild.parent_span_id == child.span_id
    assert len({root.span_id, child.span_id, grandchild.span_id}) == 3
    assert other.trace_id != root.trace_id and other.parent_span_id is None
    spans = finished(tracing)
    assert list(spans) == ["grandchild", "child", "root", "other root"]  # in end order
    assert spans["root"].kind is SpanKind.SERVER.otel is trace.SpanKind.SERVER
    assert dict(spans["child"].attributes) == {"step": 1}
    assert parent_of(spans["grandchild"]) == child.span_id
    assert all(s.end_time >= s.start_time for s in spans.values())
    lines = format_spans(tracing.tracer.finished_spans()).splitlines()
    assert lines[0] == f"trace {root.trace_id}"
    assert lines[1].startswith("  root ") and lines[1].split()[2] == "ms"
    assert lines[2].startswith("    child ") and lines[2].endswith("step=1")
    assert lines[3].startswith("      grandchild ")
    assert lines[4] == f"trace {other.trace_id}"


def test_attributes_status_and_events(tracing: TracingService) -> None:
    with tracing.span("work") as span:
        span.set_attribute("tool_name", "search")
        span.set_attribute("tags", ["a", "b"])
        span.set_attribute("skipped", None)
        span.set_attributes({"result.success": True, "score": 0.5})
        span.add_event("retry", {"attempt": 2})
        span.set_status("ok")
    span.set_attribute("after_end", 1)  # ignored: the span has ended
    recorded = finished(tracing)["work"]
    assert dict(recorded.attributes) == {
        "tool_name": "search", "tags": ("a", "b"), "result.success": True, "score": 0.5
    }
    assert recorded.status.status_code is SpanStatus.OK.otel
    assert [(e.name, dict(e.attributes)) for e in recorded.events] == [("retry", {"attempt": 2})]


def test_bad_span_input_names_the_problem(tracing: TracingService) -> None:
    with tracing.span("work") as span:
        with pytest.raises(ConfigError, match="span attribute 'obj': expected str, bool"):
            span.set_attribute("obj", object())
        with pytest.raises(ConfigError, match="span attribute key"):
            span.set_attribute(3, "x")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="span status: expected one of unset, ok, error"):
            span.set_status("fine")
    with pytest.raises(ConfigError, match="span name"):
        tracing.span("")
    with pytest.raises(ConfigError, match="span kind: expected one of internal"):
        tracing.span("x", kind="sideways")
    assert tracing.span("x", kind="client")._kind is SpanKind.CLIENT


def test_an_escaping_exception_is_recorded_and_reraised(tracing: TracingService) -> None:
    with pytest.raises(ValueError, match="boom"), tracing.span("failing"):
        raise ValueError("boom")
    span = finished(tracing)["failing"]
    assert span.status.status_code is SpanStatus.ERROR.otel
    assert span.status.description == "ValueError: boom"
    (event,) = span.events
    name, attrs = event.name, event.attributes
    assert name == "exception"
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "boom"
    assert "test_an_escaping_exception_is_recorded_and_reraised" in attrs["exception.stacktrace"]
    assert current_span() is None


def test_record_exception_keeps_the_status(tracing: TracingService) -> None:
    with tracing.span("handled") as span:
        try:
            raise KeyError("k")
        except KeyError as exc:
            span.record_exception(exc, {"handled": True})
    recorded = finished(tracing)["handled"]
    assert recorded.status.status_code is SpanStatus.UNSET.otel
    assert recorded.events[0].attributes["handled"] is True


def test_ring_keeps_only_the_newest_spans() -> None:
    tracing = TracingService("svc", config={"max_spans": 3})
    for i in range(5):
        with tracing.span(f"s{i}"):
            pass
    assert [s.name for s in tracing.tracer.finished_spans()] == ["s2", "s3", "s4"]
    tracing.tracer.clear()
    assert tracing.tracer.finished_spans() == []


def test_traced_decorator_sync() -> None:
    tracing = TracingService("svc")

    @tracing.traced()
    def add(a: int, b: int) -> int:
        return a + b

    @tracing.traced("explicit", kind=SpanKind.CLIENT)
    def fail() -> None:
        raise RuntimeError("no")

    with tracing.span("outer") as outer:
        assert add(1, 2) == 3
    with pytest.raises(RuntimeError):
        fail()
    spans = finished(tracing)
    assert parent_of(spans["test_traced_decorator_sync.<locals>.add"]) == outer.span_id
    assert spans["explicit"].status.status_code is SpanStatus.ERROR.otel
    assert spans["explicit"].kind is trace.SpanKind.CLIENT
    assert add.__name__ == "add"


@pytest.mark.anyio
async def test_start_stop_and_async_with() -> None:
    async with TracingService("svc") as tracing:
        async with tracing.span("async scope") as span:
            await anyio.sleep(0)
            assert current_trace_id() == span.trace_id
        await tracing.start()  # a second start is harmless
    assert "async scope" in finished(tracing)


@pytest.mark.anyio
async def test_context_follows_await_and_enters_child_tasks() -> None:
    tracing = TracingService("svc")
    seen: dict[str, tuple[str | None, str | None]] = {}

    async def worker(label: str) -> None:
        seen[f"{label}-start"] = (current_trace_id(), current_span_id())
        with tracing.span(f"task-{label}"):
            await anyio.sleep(0.01)  # interleave with the sibling task
            with tracing.span(f"inner-{label}"):
                await anyio.sleep(0)

    with tracing.span("parent") as parent:
        await anyio.sleep(0)
        assert current_span() == parent
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker, "a")
            tg.start_soon(worker, "b")
        assert current_span() == parent

    spans = finished(tracing)
    for label in "ab":
        assert seen[f"{label}-start"] == (parent.trace_id, parent.span_id)
        task_span = spans[f"task-{label}"]
        assert parent_of(task_span) == parent.span_id
        assert f"{task_span.context.trace_id:032x}" == parent.trace_id
        assert parent_of(spans[f"inner-{label}"]) == f"{task_span.context.span_id:016x}"


@pytest.mark.anyio
async def test_tasks_started_outside_a_span_start_their_own_traces() -> None:
    tracing = TracingService("svc")
    roots: list[str] = []

    async def worker() -> None:
        with tracing.span("job") as span:
            await anyio.sleep(0)
            roots.append(span.trace_id)
            assert span.parent_span_id is None

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
    assert len(set(roots)) == 3


def test_noop_backend_configures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROFLOW_TRACER__BACKEND", '"noop"')
    tracing = TracingService("svc")
    assert tracing.backend_name == "noop"
    assert isinstance(tracing.tracer, NoopTracer) and tracing.tracer.provider is None
    with tracing.span("outer") as outer, tracing.span("inner") as inner:
        assert current_trace_id() == outer.trace_id
    assert inner.trace_id == outer.trace_id  # nesting is OpenTelemetry's, whoever records


def test_backend_argument_takes_a_tracer_object() -> None:
    tracer = LocalTracer()
    tracing = TracingService("svc", backend=tracer)
    with tracing.span("direct"):
        pass
    assert [s.name for s in tracer.finished_spans()] == ["direct"]
    with pytest.raises(ConfigError, match="backend: expected a backend name or an object"):
        TracingService("svc", backend=42)  # type: ignore[arg-type]


def test_bad_arguments_are_reported() -> None:
    with pytest.raises(ConfigError, match="service_name: expected a non-empty string"):
        TracingService("")
    with pytest.raises(ConfigError, match="exporter_endpoint: expected a URL string"):
        TracingService("svc", exporter_endpoint=4317)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"tracer\.local\.max_spans: expected an integer"):
        TracingService("svc", config={"max_spans": "many"})
    with pytest.raises(ConfigError, match=r"tracer\.local\.colour: unknown key"):
        TracingService("svc", config={"colour": "red"})
    with pytest.raises(ConfigError, match="max_spans: expected at least 1"):
        TracingService("svc", config={"max_spans": 0})
    with pytest.raises(ConfigError, match="backend 'noop' takes no options"):
        TracingService("svc", backend="noop", config={"x": 1})


@pytest.mark.anyio
async def test_context_follows_into_worker_threads_started_by_anyio() -> None:
    tracing = TracingService("svc")

    def blocking_work() -> str | None:
        with tracing.span("in thread"):
            return current_trace_id()

    with tracing.span("parent") as parent:
        trace_in_thread = await anyio.to_thread.run_sync(blocking_work)
    assert trace_in_thread == parent.trace_id
    assert parent_of(finished(tracing)["in thread"]) == parent.span_id


def test_a_dropped_backend_stops_receiving_spans() -> None:
    import gc
    import weakref

    tracing = TracingService("svc")
    exporter = tracing.tracer.exporter
    backend = weakref.ref(tracing.tracer)
    del tracing
    gc.collect()
    assert backend() is None
    with trace.get_tracer("test").start_as_current_span("after"):
        pass
    assert exporter.finished_spans() == []


def test_a_stopped_backend_receives_nothing_until_started_again() -> None:
    tracing = TracingService("svc")
    anyio.run(tracing.stop)
    with tracing.span("while stopped"):
        pass
    anyio.run(tracing.start)
    with tracing.span("started again"):
        pass
    assert [s.name for s in tracing.tracer.finished_spans()] == ["started again"]
