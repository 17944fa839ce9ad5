"""The built-in tracer backends: ``local`` (an in-memory + JSON-lines span exporter) and ``noop``.

``local`` adds a :class:`LocalSpanExporter` to the OpenTelemetry SDK ``TracerProvider`` (the
application's, if it configured one; else one it installs).  The exporter keeps the last
``max_spans`` finished spans in memory, for tests and for ``neuroflow demo`` to print
(:func:`format_spans`), and with ``file`` set appends each finished span to that file as
one JSON object per line (``neuroflow trace show FILE`` renders it)::

    [tracer]
    backend = "local"
    [tracer.local]
    file = "traces.jsonl"
    max_spans = 10000

``noop`` configures nothing: spans go wherever the application's OpenTelemetry setup sends
them, and nowhere without one.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import attrs
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from neuroflow.config import file_relative
from neuroflow.errors import ConfigError
from neuroflow.observability.sdk import add_span_processor, remove_span_processor


def _positive(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{attribute.name}: expected at least 1, got {value!r}")


@attrs.frozen
class LocalTracerConfig:
    """``[tracer.local]``: options of the built-in ``local`` tracer.

    Attributes:
        max_spans: how many finished spans the in-memory ring keeps (oldest dropped first).
        file: if set, every finished span is appended to this file as a JSON line; a
            relative path is relative to the configuration file's folder (or the working
            directory).  The file is flushed when a root span ends and on ``stop()``.
        service_name: filled in by :class:`~neuroflow.observability.TracingService`.
    """

    max_spans: int = attrs.field(default=10_000, validator=_positive)
    file: Path | None = file_relative(default=None)
    service_name: str = ""


def _iso(unix_nano: int) -> str:
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}Z"


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (attributes or {}).items()}


def span_to_dict(span: ReadableSpan, service: str | None = None) -> dict[str, Any]:
    """A finished OpenTelemetry span as JSON-ready data (one line of the JSON-lines file).

    ``service`` defaults to the span's ``service.name`` resource attribute.
    """
    context = span.context
    parent = span.parent
    start, end = span.start_time or 0, span.end_time
    if service is None:
        service = str(span.resource.attributes.get("service.name", ""))
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": None if parent is None else f"{parent.span_id:016x}",
        "name": span.name,
        "kind": span.kind.name.lower(),
        "service": service,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "start_time": _iso(start),
        "end_time": None if end is None else _iso(end),
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "duration_ms": None if end is None else (end - start) / 1e6,
        "attributes": _plain(span.attributes),
        "status": {"code": span.status.status_code.name.lower(),
                   "description": span.status.description},
        "events": [
            {"name": e.name, "time": _iso(e.timestamp), "time_unix_nano": e.timestamp,
             "attributes": _plain(e.attributes)}
            for e in span.events
        ],
    }


class LocalSpanExporter(SpanExporter):
    """An OpenTelemetry span exporter: finished spans in a bounded ring, optionally appended
    to a JSON-lines file.  Works with any SDK setup (``SimpleSpanProcessor(exporter)``).

    Args:
        max_spans: how many finished spans the ring keeps.
        file: the JSON-lines file to append to, or ``None``.
        service_name: the ``service`` of each line (default: the span's resource's).
        field: how messages name the file option.
    """

    def __init__(self, max_spans: int = 10_000, file: Path | str | None = None,
                 service_name: str | None = None, *, field: str = "file") -> None:
        self._spans: deque[ReadableSpan] = deque(maxlen=max_spans)
        self.file = None if file is None else Path(file)
        self.service_name = service_name or None
        self._field = field
        self._out: IO[str] | None = None
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Keep ``spans``; append them to the file (flushed after a root span)."""
        self._spans.extend(spans)
        if self.file is not None:
            lines = "".join(
                json.dumps(span_to_dict(s, self.service_name), default=str,
                           separators=(",", ":")) + "\n"
                for s in spans
            )
            with self._lock:
                out = self._open()
                out.write(lines)
                if any(s.parent is None for s in spans):
                    out.flush()
        return SpanExportResult.SUCCESS

    def open(self) -> None:
        """Open the file now (so a bad path is reported at start, not at the first span)."""
        if self.file is not None:
            with self._lock:
                self._open()

    def _open(self) -> IO[str]:
        if self._out is None:
            path = self.file
            try:
                path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
                self._out = path.open("a", encoding="utf-8")  # type: ignore[union-attr]
            except OSError as exc:
                raise ConfigError(
                    f"{self._field}: cannot open {str(path)!r} for appending: {exc.strerror}"
                ) from None
        return self._out

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the file."""
        with self._lock:
            if self._out is not None:
                self._out.flush()
        return True

    def shutdown(self) -> None:
        """Close the file (it is opened again if more spans come); the ring stays."""
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None

    def finished_spans(self, trace_id: str | None = None) -> list[ReadableSpan]:
        """The spans kept, oldest first (of one trace, 32 hex digits, if given)."""
        spans = list(self._spans)
        if trace_id is not None:
            spans = [s for s in spans if f"{s.context.trace_id:032x}" == trace_id]
        return spans

    def clear(self) -> None:
        """Forget the spans kept in memory."""
        self._spans.clear()


class LocalTracer:
    """The ``local`` tracer backend: a :class:`LocalSpanExporter` on the SDK provider.

    It receives every span the process ends from when it is built (or started again)
    until it is stopped -- NeuroFlow's and other OpenTelemetry-instrumented code's.

    Args:
        config: its options; defaults to :class:`LocalTracerConfig` ().
    """

    name = "local"

    def __init__(self, config: LocalTracerConfig | None = None) -> None:
        self.config = config if config is not None else LocalTracerConfig()
        self.exporter = LocalSpanExporter(self.config.max_spans, self.config.file,
                                          self.config.service_name or None,
                                          field="tracer.local.file")
        self.provider: TracerProvider | None = None
        self._attach()

    def _attach(self) -> None:
        self.provider = add_span_processor(self, SimpleSpanProcessor(self.exporter))

    async def start(self) -> None:
        """Open the JSON-lines file (if one is configured) and receive spans."""
        self.exporter.open()
        self._attach()

    async def stop(self) -> None:
        """Stop receiving spans and close the file; the in-memory spans stay."""
        remove_span_processor(self)
        self.exporter.shutdown()

    def flush(self) -> None:
        """Flush the JSON-lines file now."""
        self.exporter.force_flush()

    def finished_spans(self, trace_id: str | None = None) -> list[ReadableSpan]:
        """The finished spans kept in memory, oldest first (of one trace if given)."""
        return self.exporter.finished_spans(trace_id)

    def clear(self) -> None:
        """Forget the finished spans kept in memory."""
        self.exporter.clear()


class NoopTracer:
    """The ``noop`` tracer backend: configures nothing (spans go wherever the application's
    OpenTelemetry setup sends them, nowhere without one)."""

    name = "noop"
    provider = None

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to flush."""


def _records(spans: Iterable[ReadableSpan | Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [s if isinstance(s, Mapping) else span_to_dict(s) for s in spans]


def format_spans(spans: Iterable[ReadableSpan | Mapping[str, Any]]) -> str:
    """Render finished spans (OpenTelemetry spans, or records of a JSON-lines file) as
    indented trees, one per trace, children under parents, each sorted by start time.

    Each line: ``name  12.345 ms  [error: why]  key=value ...``.
    """
    records = _records(spans)
    ids = {r["span_id"] for r in records}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for record in records:
        parent = record.get("parent_span_id")
        children.setdefault(parent if parent in ids else None, []).append(record)
    for group in children.values():
        group.sort(key=lambda r: r.get("start_time_unix_nano") or 0)
    lines: list[str] = []

    def walk(record: Mapping[str, Any], depth: int) -> None:
        status = record.get("status") or {}
        flag = ""
        if status.get("code") == "error":
            why = status.get("description")
            flag = f"  [error: {why}]" if why else "  [error]"
        attrs_text = "".join(f"  {k}={v}" for k, v in (record.get("attributes") or {}).items())
        duration = record.get("duration_ms") or 0.0
        lines.append(f"{'  ' * depth}{record['name']}  {duration:.3f} ms{flag}{attrs_text}")
        for child in children.get(record["span_id"], []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        lines.append(f"trace {root['trace_id']}")
        walk(root, 1)
    return "\n".join(lines)


def read_spans(path: Path | str) -> list[dict[str, Any]]:
    """The span records of a JSON-lines trace file; a bad line raises naming its number."""
    records: list[dict[str, Any]] = []
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not a JSON span record: {exc}") from None
            if not isinstance(record, dict) or not {"trace_id", "span_id", "name"} <= set(
                    record):
                raise ConfigError(f"{path}:{number}: expected an object with trace_id, "
                                  "span_id and name")
            records.append(record)
    return records
