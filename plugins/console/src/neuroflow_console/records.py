"""Span records as the console stores them: one row shape for every source.

A row is built from a line of the local JSON-lines trace file (``[tracer.local] file``,
the format of :func:`neuroflow.observability.span_to_dict`) or from an OTLP span (see
:mod:`neuroflow_console.otlp`).  Besides the span's own fields a row carries what the
views filter on, taken from its attributes once at ingest: its *category* (which kind of
work it is: ``agent``, ``model``, ``tool``, ``sandbox``, ``memory``, ``mcp``, ``a2a``,
``other``), the guard decision and its audit record, the agent and the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: The categories a span can fall into, in the order the UI's legend shows them.
CATEGORIES = ("agent", "model", "tool", "sandbox", "memory", "mcp", "a2a", "other")

_MODEL_OPERATIONS = {"chat", "text_completion", "generate_content", "embeddings"}

#: The columns of a row, in order (what :data:`Row` tuples hold).
COLUMNS = ("trace_id", "span_id", "parent_span_id", "name", "kind", "category", "service",
           "start_ns", "end_ns", "status", "status_message", "decision", "audit_seq",
           "agent", "model", "detail")

Row = tuple[Any, ...]


class RecordError(ValueError):
    """A span record that cannot be stored; the message names the field."""


def category(name: str, attributes: Mapping[str, Any]) -> str:
    """Which kind of work a span is, from its name and attributes."""
    operation = attributes.get("gen_ai.operation.name")
    if operation == "invoke_agent" or name.startswith("invoke_agent"):
        return "agent"
    if any(key.startswith("a2a.") for key in attributes) or name.lower().startswith("a2a"):
        return "a2a"
    if operation in _MODEL_OPERATIONS:
        return "model"
    if "mcp.server" in attributes or name.startswith("mcp"):
        return "mcp"
    if name.startswith("execute_sandbox") or "neuroflow.sandbox.backend" in attributes:
        return "sandbox"
    if operation == "execute_tool" or name.startswith("execute_tool"):
        return "tool"
    if any(key.startswith("neuroflow.memory.") for key in attributes):
        return "memory"
    return "other"


def _hex(value: Any, digits: int, field: str) -> str:
    if not isinstance(value, str) or len(value) != digits:
        raise RecordError(f"{field}: expected {digits} hex digits, got {value!r}")
    try:
        int(value, 16)
    except ValueError:
        raise RecordError(f"{field}: expected {digits} hex digits, got {value!r}") from None
    return value.lower()


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def make_row(*, trace_id: Any, span_id: Any, parent_span_id: Any, name: Any, kind: Any,
             service: Any, start_ns: Any, end_ns: Any, status: Any, status_message: Any,
             attributes: Mapping[str, Any], events: list[Any], detail: str | None = None
             ) -> Row:
    """Check one span's fields and return its row (see :data:`COLUMNS`).

    ``detail`` is JSON text of an object holding ``attributes`` and ``events`` (a line of
    the trace file is one already, and is stored as it is); by default it is made from
    ``attributes`` and ``events``.
    """
    trace_id = _hex(trace_id, 32, "trace_id")
    span_id = _hex(span_id, 16, "span_id")
    parent = None if parent_span_id in (None, "") else _hex(parent_span_id, 16,
                                                            "parent_span_id")
    if not isinstance(name, str):
        raise RecordError(f"name: expected a string, got {name!r}")
    start = _int_or_none(start_ns)
    if start is None:
        raise RecordError(f"start_time_unix_nano: expected an integer, got {start_ns!r}")
    end = _int_or_none(end_ns)
    attrs = dict(attributes)
    decision = attrs.get("neuroflow.guard.decision")
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    agent = attrs.get("gen_ai.agent.name")
    return (trace_id, span_id, parent, name, str(kind or "internal"), category(name, attrs),
            str(service or ""), start, end, str(status or "unset"),
            None if status_message is None else str(status_message),
            None if decision is None else str(decision),
            _int_or_none(attrs.get("neuroflow.audit.seq")),
            None if agent is None else str(agent), None if model is None else str(model),
            detail if detail is not None else json.dumps(
                {"attributes": attrs, "events": events}, default=str, separators=(",", ":")))


def row_from_local(record: Mapping[str, Any], line: str | None = None) -> Row:
    """The row of one record of the local JSON-lines trace file (``line``: its text)."""
    if not isinstance(record, Mapping):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    status = record.get("status") or {}
    attributes = record.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise RecordError(f"attributes: expected an object, got {attributes!r}")
    return make_row(
        trace_id=record.get("trace_id"), span_id=record.get("span_id"),
        parent_span_id=record.get("parent_span_id"), name=record.get("name"),
        kind=record.get("kind"), service=record.get("service"),
        start_ns=record.get("start_time_unix_nano"), end_ns=record.get("end_time_unix_nano"),
        status=status.get("code") if isinstance(status, Mapping) else status,
        status_message=status.get("description") if isinstance(status, Mapping) else None,
        attributes=attributes, events=list(record.get("events") or []), detail=line)


def rows_from_lines(data: bytes) -> tuple[list[Row], list[str]]:
    """Rows of complete JSON lines; lines that are not span records are reported, not
    stored (``problems``: one line each, ``"line N: why"`` counted within ``data``)."""
    rows: list[Row] = []
    problems: list[str] = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            problems.append(f"line {number}: not a JSON span record: {exc}")
            continue
        try:
            rows.append(row_from_local(record, line.decode("utf-8", "replace")))
        except RecordError as exc:
            problems.append(f"line {number}: {exc}")
    return rows, problems
