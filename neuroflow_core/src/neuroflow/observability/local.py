"""The built-in tracer backends: ``local`` (in-memory ring + optional JSON lines) and ``noop``.

``local`` keeps the last ``max_spans`` finished spans in memory, for tests and for
``neuroflow demo`` to print (:func:`format_spans`), and with ``file`` set appends each
finished span to that file as one JSON object per line::

    [tracer]
    backend = "local"
    [tracer.local]
    file = "traces.jsonl"
    max_spans = 10000
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from neuroflow.config import file_relative
from neuroflow.errors import ConfigError
from neuroflow.observability.model import (
    AttributeValue,
    SpanKind,
    SpanStatus,
    check_attribute,
    check_status,
    new_span_id,
    new_trace_id,
)

if TYPE_CHECKING:
    from neuroflow.observability.protocol import Span


def _positive(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{attribute.name}: expected at least 1, got {value!r}")


@attrs.frozen
class LocalTracerConfig:
    """``[tracer.local]``: options of the built-in ``local`` tracer.

    Attributes:
        max_spans: how many finished spans the in-memory ring keeps (oldest dropped first).
        file: if set, every finished span is appended to this file as a JSON line; a
            relative path is relative to the working directory.  The file is flushed when
            a root span ends and on ``stop()``.
        service_name: filled in by :class:`~neuroflow.observability.TracingService`.
    """

    max_spans: int = attrs.field(default=10_000, validator=_positive)
    file: Path | None = file_relative(default=None)
    service_name: str = ""


def _iso(unix_nano: int) -> str:
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}Z"


class LocalSpan:
    """A span of the ``local`` tracer; once ended it is read-only and kept by the tracer.

    Attributes:
        name, kind, trace_id, span_id, parent_span_id: identity and place in the trace.
        start_time_unix_nano, end_time_unix_nano: wall-clock times (end is ``None`` while
            the span is open); the duration is measured with a monotonic clock.
        attributes: recorded attributes.
        status, status_description: the outcome.
        events: ``(name, time_unix_nano, attributes)`` tuples, exceptions included.
    """

    __slots__ = (
        "_perf_start",
        "_tracer",
        "attributes",
        "end_time_unix_nano",
        "events",
        "kind",
        "name",
        "parent_span_id",
        "span_id",
        "start_time_unix_nano",
        "status",
        "status_description",
        "trace_id",
    )

    def __init__(
        self,
        tracer: LocalTracer,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        parent: Span | None,
    ) -> None:
        self._tracer = tracer
        self.name = name
        self.kind = kind
        if parent is None:
            self.trace_id = new_trace_id()
            self.parent_span_id: str | None = None
        else:
            self.trace_id = parent.trace_id
            self.parent_span_id = parent.span_id
        self.span_id = new_span_id()
        self.attributes: dict[str, AttributeValue] = {}
        self.events: list[tuple[str, int, dict[str, AttributeValue]]] = []
        self.status = SpanStatus.UNSET
        self.status_description: str | None = None
        self.end_time_unix_nano: int | None = None
        if attributes:
            self.set_attributes(attributes)
        self.start_time_unix_nano = time.time_ns()
        self._perf_start = time.perf_counter_ns()

    @property
    def duration_ms(self) -> float | None:
        """The span's duration in milliseconds, or ``None`` while it is open."""
        if self.end_time_unix_nano is None:
            return None
        return (self.end_time_unix_nano - self.start_time_unix_nano) / 1e6

    @property
    def is_recording(self) -> bool:
        """Whether the span still accepts attributes, events and status."""
        return self.end_time_unix_nano is None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Record ``key = value``; ``None`` is ignored; ignored once ended."""
        value = check_attribute(key, value)
        if value is not None and self.end_time_unix_nano is None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Record several attributes at once."""
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        """Record a timestamped event."""
        if type(name) is not str or not name:
            raise ConfigError(f"span event name: expected a non-empty string, got {name!r}")
        checked: dict[str, AttributeValue] = {}
        for key, value in (attributes or {}).items():
            value = check_attribute(key, value)
            if value is not None:
                checked[key] = value
        if self.end_time_unix_nano is None:
            self.events.append((name, time.time_ns(), checked))

    def set_status(self, status: SpanStatus | str, description: str | None = None) -> None:
        """Set the outcome (``"ok"``, ``"error"`` or a :class:`SpanStatus`)."""
        status = check_status(status)
        if self.end_time_unix_nano is None:
            self.status = status
            self.status_description = description

    def record_exception(
        self, exception: BaseException, attributes: Mapping[str, AttributeValue] | None = None
    ) -> None:
        """Record an ``exception`` event with type, message and formatted stack trace."""
        if not isinstance(exception, BaseException):
            raise ConfigError(
                f"record_exception: expected an exception, got {type(exception).__name__}"
            )
        event: dict[str, AttributeValue] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
        }
        event.update(attributes or {})
        self.add_event("exception", event)

    def end(self) -> None:
        """Finish the span and hand it to the tracer; a second call does nothing."""
        if self.end_time_unix_nano is not None:
            return
        self.end_time_unix_nano = self.start_time_unix_nano + (
            time.perf_counter_ns() - self._perf_start
        )
        self._tracer._finished(self)

    def to_dict(self) -> dict[str, Any]:
        """The span as JSON-ready data (what the JSON-lines file holds)."""
        end = self.end_time_unix_nano
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind.value,
            "service": self._tracer.config.service_name,
            "start_time": _iso(self.start_time_unix_nano),
            "end_time": None if end is None else _iso(end),
            "start_time_unix_nano": self.start_time_unix_nano,
            "end_time_unix_nano": end,
            "duration_ms": self.duration_ms,
            "attributes": dict(self.attributes),
            "status": {"code": self.status.value, "description": self.status_description},
            "events": [
                {"name": n, "time": _iso(t), "time_unix_nano": t, "attributes": a}
                for n, t, a in self.events
            ],
        }

    def __repr__(self) -> str:
        return (
            f"LocalSpan({self.name!r}, trace_id={self.trace_id}, span_id={self.span_id}, "
            f"parent={self.parent_span_id}, status={self.status.value})"
        )


class LocalTracer:
    """The ``local`` tracer: finished spans in a bounded ring, optionally in a JSON-lines file.

    Args:
        config: its options; defaults to :class:`LocalTracerConfig` ().
    """

    name = "local"

    def __init__(self, config: LocalTracerConfig | None = None) -> None:
        self.config = config if config is not None else LocalTracerConfig()
        self._spans: deque[LocalSpan] = deque(maxlen=self.config.max_spans)
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def start_span(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        parent: Span | None,
    ) -> LocalSpan:
        """Start a span under ``parent`` (a new trace if ``None``)."""
        return LocalSpan(self, name, kind, attributes, parent)

    async def start(self) -> None:
        """Open the JSON-lines file, if one is configured."""
        if self.config.file is not None:
            with self._lock:
                self._open()

    async def stop(self) -> None:
        """Flush and close the JSON-lines file; the in-memory spans stay."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def flush(self) -> None:
        """Flush the JSON-lines file now."""
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def _open(self) -> IO[str]:
        if self._file is None:
            path = Path(self.config.file)  # type: ignore[arg-type]
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = path.open("a", encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"tracer.local.file: cannot open {str(path)!r} for appending: {exc.strerror}"
                ) from None
        return self._file

    def _finished(self, span: LocalSpan) -> None:
        self._spans.append(span)
        if self.config.file is not None:
            line = json.dumps(span.to_dict(), default=str, separators=(",", ":"))
            with self._lock:
                out = self._open()
                out.write(line + "\n")
                if span.parent_span_id is None:
                    out.flush()

    def finished_spans(self, trace_id: str | None = None) -> list[LocalSpan]:
        """Return the finished spans kept in memory, oldest first (of one trace if given)."""
        spans = list(self._spans)
        if trace_id is not None:
            spans = [s for s in spans if s.trace_id == trace_id]
        return spans

    def clear(self) -> None:
        """Forget the finished spans kept in memory."""
        self._spans.clear()


def format_spans(spans: Iterable[LocalSpan]) -> str:
    """Render finished spans as indented trees, one per trace, children under parents.

    Each line: ``name  12.345 ms  [error: why]  key=value ...``.
    """
    spans = list(spans)
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[LocalSpan]] = {}
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children.setdefault(parent, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: s.start_time_unix_nano)
    lines: list[str] = []

    def walk(span: LocalSpan, depth: int) -> None:
        status = ""
        if span.status is SpanStatus.ERROR:
            status = f"  [error: {span.status_description}]" if span.status_description else (
                "  [error]"
            )
        attrs_text = "".join(f"  {k}={v}" for k, v in span.attributes.items())
        duration = span.duration_ms or 0.0
        lines.append(f"{'  ' * depth}{span.name}  {duration:.3f} ms{status}{attrs_text}")
        for child in children.get(span.span_id, []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        lines.append(f"trace {root.trace_id}")
        walk(root, 1)
    return "\n".join(lines)


class NoopSpan:
    """A span of the ``noop`` tracer: it has ids (so trace ids still correlate logs) and
    records nothing."""

    __slots__ = ("kind", "name", "parent_span_id", "span_id", "trace_id")

    is_recording = False

    def __init__(self, name: str, kind: SpanKind, parent: Span | None) -> None:
        self.name = name
        self.kind = kind
        if parent is None:
            self.trace_id = new_trace_id()
            self.parent_span_id: str | None = None
        else:
            self.trace_id = parent.trace_id
            self.parent_span_id = parent.span_id
        self.span_id = new_span_id()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Do nothing."""

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Do nothing."""

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        """Do nothing."""

    def set_status(self, status: SpanStatus | str, description: str | None = None) -> None:
        """Do nothing."""

    def record_exception(
        self, exception: BaseException, attributes: Mapping[str, AttributeValue] | None = None
    ) -> None:
        """Do nothing."""

    def end(self) -> None:
        """Do nothing."""


class NoopTracer:
    """The ``noop`` tracer: spans carry ids for correlation and are then dropped."""

    name = "noop"

    def start_span(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
        parent: Span | None,
    ) -> NoopSpan:
        """Return a span that records nothing."""
        return NoopSpan(name, kind, parent)

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to flush."""
