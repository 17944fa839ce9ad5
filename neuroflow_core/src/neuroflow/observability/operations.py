"""One span per operation of a component (sandbox run, MCP tool call, memory operation).

:func:`operation` opens the span through ``opentelemetry-api`` only (near-free without an
SDK: a non-recording span, attributes computed by the caller only when
``span.is_recording()``) and records the operation's built-in metrics
(:func:`neuroflow.observability.metrics.record_operation`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

#: The tracer the core's components open their spans with.
TRACER = trace.get_tracer("neuroflow")


class Operation:
    """What :func:`operation` yields: the OpenTelemetry ``span`` and :meth:`fail`."""

    __slots__ = ("error", "span")

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.error: str | None = None

    @property
    def recording(self) -> bool:
        """Whether the span records anything (compute attributes only then)."""
        return self.span.is_recording()

    def set(self, key: str, value: Any) -> None:
        """Set an attribute on the span (skipped when ``value`` is ``None``)."""
        if value is not None:
            self.span.set_attribute(key, value)

    def fail(self, error_type: str, description: str | None = None) -> None:
        """Count the operation as failed without raising: status ``error``,
        ``error.type`` set, and an error in the built-in metrics."""
        self.error = error_type
        self.span.set_status(Status(StatusCode.ERROR, description or error_type))
        self.span.set_attribute("error.type", error_type)


@contextmanager
def operation(
    span_name: str,
    component: str,
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
) -> Iterator[Operation]:
    """Run the block in a span ``span_name`` that is the current span, and record the
    operation ``name`` of ``component`` (``"sandbox"``, ``"mcp"``, ``"memory"``...) in
    the built-in metrics: one request, its latency, and an error if the block raises or
    calls :meth:`Operation.fail`.

    An exception leaving the block is recorded on the span (status ``error``,
    ``error.type``) and re-raised.
    """
    from neuroflow.observability.metrics import record_operation

    start = time.perf_counter()
    with TRACER.start_as_current_span(span_name, kind=kind, attributes=attributes,
                                      record_exception=False,
                                      set_status_on_exception=False) as span:
        op = Operation(span)
        try:
            yield op
        except BaseException as exc:
            op.error = type(exc).__name__
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{op.error}: {exc}"))
                span.set_attribute("error.type", op.error)
            raise
        finally:
            record_operation(component, name, (time.perf_counter() - start) * 1000.0,
                             op.error)
