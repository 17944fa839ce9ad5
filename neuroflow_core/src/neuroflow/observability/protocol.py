"""The observability capability's roles: what a span and a tracer backend implement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from neuroflow.observability.model import AttributeValue, SpanKind, SpanStatus


@runtime_checkable
class Span(Protocol):
    """What ``with tracing.span(...) as span`` gives you.

    Attributes:
        name: the span's name.
        trace_id: 32 lowercase hex digits, shared by every span of one trace.
        span_id: 16 lowercase hex digits, unique to this span.
        parent_span_id: the parent's ``span_id``, or ``None`` for a root span.
    """

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Record ``key = value`` (a ``None`` value is ignored); ignored once ended."""

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Record several attributes at once."""

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        """Record a timestamped event inside the span."""

    def set_status(self, status: SpanStatus | str, description: str | None = None) -> None:
        """Set the outcome: :attr:`SpanStatus.OK` or :attr:`SpanStatus.ERROR` (with why)."""

    def record_exception(
        self, exception: BaseException, attributes: Mapping[str, AttributeValue] | None = None
    ) -> None:
        """Record an ``exception`` event (type, message, stack trace); the status is unchanged."""

    def end(self) -> None:
        """Finish the span (the tracing service calls this when the ``with`` block exits)."""


@runtime_checkable
class Tracer(Protocol):
    """A tracer backend: where spans are made and sent.

    Built by the plugin manager from a ``neuroflow_tracers`` BackendSpec.  If the
    backend's config class has a ``service_name`` field, :class:`TracingService` fills it
    in; if it has an ``endpoint`` field, ``exporter_endpoint`` goes there.
    """

    def start_span(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        parent: Span | None,
    ) -> Span:
        """Start and return a span; ``parent`` is the enclosing span (any backend's) or None.

        Called on every span, so it must be cheap and must not block.
        """

    async def start(self) -> None:
        """Acquire resources (exporters, files); called by ``TracingService.start``."""

    async def stop(self) -> None:
        """Flush everything finished so far and release resources."""
