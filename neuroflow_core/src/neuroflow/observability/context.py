"""The current span, kept in a context variable.

A context variable follows ``await`` and is copied into tasks started from inside a span
(asyncio tasks, trio and anyio task-group children), so a child task's spans nest under
the span that started it.  Logging reads it too, to stamp records with the trace id.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neuroflow.observability.protocol import Span

_current_span: ContextVar[Span | None] = ContextVar("neuroflow_current_span", default=None)


def current_span() -> Span | None:
    """Return the span the caller is inside, or ``None``."""
    return _current_span.get()


def current_trace_id() -> str | None:
    """Return the trace id (32 hex digits) of the span the caller is inside, or ``None``."""
    span = _current_span.get()
    return None if span is None else span.trace_id


def current_span_id() -> str | None:
    """Return the span id (16 hex digits) of the span the caller is inside, or ``None``."""
    span = _current_span.get()
    return None if span is None else span.span_id
