"""The current span, read from OpenTelemetry's context.

OpenTelemetry keeps the current span in a context variable, which follows ``await`` and
is copied into tasks (asyncio, trio, anyio task groups) and into ``anyio.to_thread``
workers, so spans opened there nest under the span that started them -- NeuroFlow's and
any other OpenTelemetry-instrumented library's alike.
"""

from __future__ import annotations

from opentelemetry import trace

from neuroflow.observability.span import Span, hex_span_id, hex_trace_id


def current_span() -> Span | None:
    """Return the span the caller is inside (wrapped), or ``None``."""
    span = trace.get_current_span()
    return Span(span) if span.get_span_context().is_valid else None


def current_trace_id() -> str | None:
    """Return the trace id (32 hex digits) of the span the caller is inside, or ``None``."""
    return hex_trace_id(trace.get_current_span())


def current_span_id() -> str | None:
    """Return the span id (16 hex digits) of the span the caller is inside, or ``None``."""
    return hex_span_id(trace.get_current_span())
