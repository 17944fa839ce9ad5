""":class:`Span`: what ``with tracing.span(...) as span`` gives you -- an OpenTelemetry span
with NeuroFlow's checks and hex ids.

It wraps the span ``opentelemetry-api`` started (``span.otel``), checks attribute values
and statuses so a mistake is reported where it is made (OpenTelemetry itself only logs and
drops them), and offers ``trace_id``/``span_id``/``parent_span_id`` as W3C hex strings.
Anything else is the OpenTelemetry span's own (``span.get_span_context()``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from neuroflow.errors import ConfigError
from neuroflow.observability.model import (
    AttributeValue,
    SpanStatus,
    check_attribute,
    check_status,
)


def checked_attributes(
    attributes: Mapping[str, AttributeValue] | None,
) -> dict[str, AttributeValue] | None:
    """Check each attribute (``None`` values dropped); ``None`` for no attributes."""
    if not attributes:
        return None
    checked: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        value = check_attribute(key, value)
        if value is not None:
            checked[key] = value
    return checked


def hex_trace_id(span: trace.Span) -> str | None:
    """The span's trace id as 32 hex digits, or ``None`` for an invalid (no-op) span."""
    context = span.get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def hex_span_id(span: trace.Span) -> str | None:
    """The span's id as 16 hex digits, or ``None`` for an invalid (no-op) span."""
    context = span.get_span_context()
    return f"{context.span_id:016x}" if context.is_valid else None


class Span:
    """An OpenTelemetry span (``.otel``) with checked inputs and hex ids.

    Attributes:
        otel: the ``opentelemetry.trace.Span`` itself.
    """

    __slots__ = ("otel",)

    def __init__(self, span: trace.Span) -> None:
        self.otel = span

    @property
    def name(self) -> str:
        """The span's name (empty for a span that records nothing)."""
        return getattr(self.otel, "name", "")

    @property
    def trace_id(self) -> str | None:
        """32 lowercase hex digits shared by every span of the trace (``None`` if no-op)."""
        return hex_trace_id(self.otel)

    @property
    def span_id(self) -> str | None:
        """16 lowercase hex digits unique to this span (``None`` if no-op)."""
        return hex_span_id(self.otel)

    @property
    def parent_span_id(self) -> str | None:
        """The parent's ``span_id``, or ``None`` for a root span (or a span of no SDK)."""
        parent = getattr(self.otel, "parent", None)
        return None if parent is None else f"{parent.span_id:016x}"

    def is_recording(self) -> bool:
        """Whether the span still records attributes, events and status."""
        return self.otel.is_recording()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Record ``key = value``; ``None`` is ignored; a value of another type raises."""
        value = check_attribute(key, value)
        if value is not None:
            self.otel.set_attribute(key, value)

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Record several attributes at once."""
        checked = checked_attributes(attributes)
        if checked:
            self.otel.set_attributes(checked)

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        """Record a timestamped event inside the span."""
        if type(name) is not str or not name:
            raise ConfigError(f"span event name: expected a non-empty string, got {name!r}")
        self.otel.add_event(name, checked_attributes(attributes))

    def set_status(self, status: SpanStatus | StatusCode | str,
                   description: str | None = None) -> None:
        """Set the outcome: ``"ok"``, ``"error"`` (with why) or a :class:`SpanStatus`."""
        code = check_status(status).otel
        self.otel.set_status(Status(code, description if code is StatusCode.ERROR else None))

    def record_exception(
        self, exception: BaseException, attributes: Mapping[str, AttributeValue] | None = None
    ) -> None:
        """Record an ``exception`` event (type, message, stack trace); the status is unchanged."""
        if not isinstance(exception, BaseException):
            raise ConfigError(
                f"record_exception: expected an exception, got {type(exception).__name__}"
            )
        self.otel.record_exception(exception, checked_attributes(attributes))

    def end(self) -> None:
        """Finish the span (``TracingService.span`` does it when the block exits)."""
        self.otel.end()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.otel, name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Span):
            return self.otel is other.otel
        return NotImplemented

    def __hash__(self) -> int:
        return id(self.otel)

    def __repr__(self) -> str:
        return (f"Span({self.name!r}, trace_id={self.trace_id}, span_id={self.span_id}, "
                f"parent={self.parent_span_id})")
