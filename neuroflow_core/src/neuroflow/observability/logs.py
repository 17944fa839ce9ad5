"""``StructuredLogger``: JSON log lines through the standard ``logging`` module.

Each record becomes one JSON object on one line::

    {"timestamp": "2026-11-26T12:00:00.123456Z", "level": "ERROR", "logger": "neuroflow",
     "message": "Request failed", "fields": {"request_id": "123"},
     "trace_id": "4bf9...", "span_id": "00f0...",
     "exception": {"type": "ValueError", "message": "bad", "traceback": "Traceback ..."}}

``trace_id``/``span_id`` are those of the OpenTelemetry span the call was made in (absent
outside one, and when no OpenTelemetry SDK records spans).
Call :func:`configure_logging` once to send every logger's records, as JSON, to a stream.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace

from neuroflow.errors import ConfigError

_FIELDS = "neuroflow_fields"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


def _ids() -> tuple[str | None, str | None]:
    """The current OpenTelemetry span's trace and span ids as hex, or ``(None, None)``."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class JsonFormatter(logging.Formatter):
    """Format a log record as one JSON object (see the module docstring for its keys).

    Records from plain ``logging`` loggers work too: they get empty ``fields`` and the
    trace id of the span current when they are formatted.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        seconds = int(record.created)
        stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        micros = int((record.created - seconds) * 1_000_000)
        data: dict[str, Any] = {
            "timestamp": f"{stamp}.{micros:06d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "fields": getattr(record, _FIELDS, {}),
        }
        if hasattr(record, "trace_id"):
            trace_id, span_id = record.trace_id, record.span_id
        else:
            trace_id, span_id = _ids()
        if trace_id is not None:
            data["trace_id"] = trace_id
            data["span_id"] = span_id
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            data["exception"] = {
                "type": type(exc).__qualname__,
                "message": str(exc),
                "traceback": "".join(traceback.format_exception(exc)).rstrip("\n"),
            }
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, default=str, ensure_ascii=False)


def _level(level: int | str) -> int:
    if isinstance(level, bool):
        raise ConfigError(f"level: expected a level name or number, got {level!r}")
    if isinstance(level, int):
        return level
    if isinstance(level, str) and level.lower() in _LEVELS:
        return _LEVELS[level.lower()]
    raise ConfigError(
        f"level: expected one of {', '.join(_LEVELS)} or a number, got {level!r}"
    )


def configure_logging(
    level: int | str = "INFO", stream: IO[str] | None = None, *, logger: str = ""
) -> logging.Handler:
    """Send records of ``logger`` (default: the root logger) to ``stream`` as JSON lines.

    Replaces a handler installed by an earlier call on the same logger, so calling it
    again changes the level or stream instead of duplicating lines.

    Args:
        level: the minimum level, as a name (``"debug"``...) or a ``logging`` number.
        stream: where lines go (default ``sys.stderr``).
        logger: the ``logging`` logger to configure.

    Returns:
        the installed handler.
    """
    target = logging.getLogger(logger)
    number = _level(level)
    for old in list(target.handlers):
        if getattr(old, "_neuroflow_json", False):
            target.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    handler._neuroflow_json = True  # type: ignore[attr-defined]
    target.addHandler(handler)
    target.setLevel(number)
    return handler


class _FallbackHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """JSON lines to stderr for an application that has not configured logging.

    Installed by the first :class:`StructuredLogger` when no handler would see its records
    (so SPEC's ``logger.info(...)`` prints something); it steps aside as soon as the
    application gives the root logger a handler, so lines are never written twice.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        super().emit(record)


def _ensure_output(logger: logging.Logger) -> None:
    if logger.hasHandlers():
        return
    top = logging.getLogger(logger.name.split(".")[0])
    handler = _FallbackHandler()
    handler.setFormatter(JsonFormatter())
    top.addHandler(handler)
    if top.level == logging.NOTSET:
        top.setLevel(logging.INFO)


class StructuredLogger:
    """A logger whose calls take keyword fields: ``logger.info("Request", request_id="1")``.

    Records go through the stdlib ``logging`` module.  If the application has configured
    no handler at all, JSON lines go to stderr at INFO and above (see
    :func:`configure_logging` to choose the level and stream).

    Args:
        name: the ``logging`` logger name (``"neuroflow"``, ``"neuroflow.agent"``...).
        **fields: fields added to every record of this logger (see :meth:`bind`).
    """

    __slots__ = ("_bound", "_logger", "name")

    def __init__(self, name: str, /, **fields: Any) -> None:
        if type(name) is not str:
            raise ConfigError(f"name: expected a logger name string, got {name!r}")
        self.name = name
        self._logger = logging.getLogger(name)
        self._bound = fields
        _ensure_output(self._logger)

    def bind(self, **fields: Any) -> StructuredLogger:
        """Return a logger with the same name that adds ``fields`` to every record."""
        return StructuredLogger(self.name, **{**self._bound, **fields})

    def _log(self, level: int, msg: str, exc_info: Any, fields: dict[str, Any]) -> None:
        logger = self._logger
        if not logger.isEnabledFor(level):
            return
        trace_id, span_id = _ids()
        extra = {
            _FIELDS: {**self._bound, **fields} if self._bound else fields,
            "trace_id": trace_id,
            "span_id": span_id,
        }
        logger.log(level, msg, exc_info=exc_info, extra=extra, stacklevel=3)

    def debug(self, msg: str, /, exc_info: Any = None, **fields: Any) -> None:
        """Log at DEBUG with ``fields``."""
        self._log(logging.DEBUG, msg, exc_info, fields)

    def info(self, msg: str, /, exc_info: Any = None, **fields: Any) -> None:
        """Log at INFO with ``fields``."""
        self._log(logging.INFO, msg, exc_info, fields)

    def warning(self, msg: str, /, exc_info: Any = None, **fields: Any) -> None:
        """Log at WARNING with ``fields``."""
        self._log(logging.WARNING, msg, exc_info, fields)

    def error(self, msg: str, /, exc_info: Any = None, **fields: Any) -> None:
        """Log at ERROR with ``fields``; ``exc_info`` may be an exception or ``True``."""
        self._log(logging.ERROR, msg, exc_info, fields)

    def critical(self, msg: str, /, exc_info: Any = None, **fields: Any) -> None:
        """Log at CRITICAL with ``fields``."""
        self._log(logging.CRITICAL, msg, exc_info, fields)

    def exception(self, msg: str, /, **fields: Any) -> None:
        """Log at ERROR with the exception being handled."""
        self._log(logging.ERROR, msg, True, fields)

    def __repr__(self) -> str:
        return f"StructuredLogger({self.name!r})"
