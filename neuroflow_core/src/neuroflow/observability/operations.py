"""One span per operation of a component (sandbox run, MCP tool call, memory operation).

:func:`operation` opens the span through ``opentelemetry-api`` only (nothing at all until
a tracer provider is installed; attributes computed by the caller only when
``op.recording``) and records the operation's built-in metrics
(:func:`neuroflow.observability.metrics.record_operation`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from neuroflow.observability.metrics import record_operation

#: The tracer the core's components open their spans with.
TRACER = trace.get_tracer("neuroflow")


def _sdk_configured() -> bool:
    """Whether an application or backend installed a tracer provider (API only)."""
    # The API's global, read directly: get_tracer_provider() costs a microsecond here,
    # more than the rest of a quiet operation.
    return getattr(trace, "_TRACER_PROVIDER", True) is not None


class Operation:
    """One operation: a context manager (``with operation(...) as op:``) giving the
    OpenTelemetry ``span`` and :meth:`fail`."""

    __slots__ = ("_attributes", "_kind", "_name", "_span_name", "_start", "_token",
                 "component", "error", "span")

    def __init__(self, span_name: str, component: str, name: str,
                 attributes: Mapping[str, Any] | None, kind: trace.SpanKind) -> None:
        self._span_name = span_name
        self._kind = kind
        self._attributes = attributes
        self.component = component
        self._name = name
        self.error: str | None = None
        self.span: trace.Span = trace.INVALID_SPAN
        self._token: object = None

    def __enter__(self) -> Operation:
        if _sdk_configured():
            self.span = TRACER.start_span(self._span_name, kind=self._kind,
                                          attributes=self._attributes)
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        elapsed_ms = (time.perf_counter() - self._start) * 1000.0
        span = self.span
        if exc is not None:
            self.error = type(exc).__name__
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{self.error}: {exc}"))
                span.set_attribute("error.type", self.error)
        if self._token is not None:
            otel_context.detach(self._token)
            span.end()
        record_operation(self.component, self._name, elapsed_ms, self.error)

    @property
    def recording(self) -> bool:
        """Whether the span records anything (compute attributes only then)."""
        return self.span.is_recording()

    def set(self, key: str, value: Any) -> None:
        """Set an attribute on the span (skipped when ``value`` is ``None``)."""
        if value is not None:
            self.span.set_attribute(key, value)

    def record_verdict(self, decision: str, verdict: Any) -> None:
        """The guard's ``decision`` (``"allow"``/``"deny"``) and, when the gate wrote one,
        the sequence number of its audit record (``verdict.audit_seq``), on the span."""
        self.set("neuroflow.guard.decision", decision)
        self.set("neuroflow.audit.seq", getattr(verdict, "audit_seq", None))

    def fail(self, error_type: str, description: str | None = None) -> None:
        """Count the operation as failed without raising: status ``error``,
        ``error.type`` set, and an error in the built-in metrics."""
        self.error = error_type
        if self.span.is_recording():
            self.span.set_status(Status(StatusCode.ERROR, description or error_type))
            self.span.set_attribute("error.type", error_type)


def operation(
    span_name: str,
    component: str,
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
) -> Operation:
    """Run the block in a span ``span_name`` that is the current span, and record the
    operation ``name`` of ``component`` (``"sandbox"``, ``"mcp"``, ``"memory"``...) in
    the built-in metrics: one request, its latency, and an error if the block raises or
    calls :meth:`Operation.fail`.

    An exception leaving the block is recorded on the span (status ``error``,
    ``error.type``) and re-raised.  Until a tracer provider is installed (by the
    application or a tracer backend) no span is opened at all: the cost is a type check.
    """
    return Operation(span_name, component, name, attributes, kind)
