"""The console's SQLite store: spans, per-trace summaries and audit records.

Spans are kept one row each, unique by ``(trace_id, span_id)`` (a span seen twice, from
the file and over OTLP, is stored once), with the indexes the views need: a trace's
spans by start time, a span's children, spans of one category by time, spans by audit
record.  Each insert updates ``traces``, one summary row per trace (time span, counts of
spans, errors, tool calls and denials, the agent and model of its first agent run), from
the newly inserted rows only, so ingest costs the same for the first span of a trace and
the hundred-thousandth.

The store is synchronous (``sqlite3``); the web application calls it from worker
threads.  One connection is shared under a lock; SQLite runs in WAL mode.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from neuroflow_console.records import COLUMNS, Row

SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT,
    name TEXT NOT NULL, kind TEXT, category TEXT NOT NULL, service TEXT,
    start_ns INTEGER NOT NULL, end_ns INTEGER, status TEXT, status_message TEXT,
    decision TEXT, audit_seq INTEGER, agent TEXT, model TEXT,
    detail TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS spans_id ON spans(trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_trace_start ON spans(trace_id, start_ns);
CREATE INDEX IF NOT EXISTS spans_children ON spans(trace_id, parent_span_id, start_ns);
CREATE INDEX IF NOT EXISTS spans_category ON spans(category, start_ns);
CREATE INDEX IF NOT EXISTS spans_audit ON spans(audit_seq) WHERE audit_seq IS NOT NULL;
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    start_ns INTEGER, end_ns INTEGER, spans INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0, tool_calls INTEGER NOT NULL DEFAULT 0,
    denials INTEGER NOT NULL DEFAULT 0, agent_spans INTEGER NOT NULL DEFAULT 0,
    last_id INTEGER NOT NULL DEFAULT 0,
    agent TEXT, agents TEXT, model TEXT, status TEXT, duration_ms REAL, root_name TEXT,
    agent_start INTEGER, model_start INTEGER, root_start INTEGER
);
CREATE INDEX IF NOT EXISTS traces_start ON traces(start_ns);
CREATE INDEX IF NOT EXISTS runs_start ON traces(start_ns) WHERE agent_spans > 0;
CREATE TABLE IF NOT EXISTS trace_services (
    trace_id TEXT NOT NULL, service TEXT NOT NULL, PRIMARY KEY (trace_id, service)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, time TEXT, event TEXT, actor TEXT, action TEXT,
    resource TEXT, decision TEXT, rule TEXT, outcome TEXT, trace_id TEXT, raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_trace ON audit(trace_id);
CREATE TABLE IF NOT EXISTS sources (
    path TEXT PRIMARY KEY, inode INTEGER, offset INTEGER NOT NULL
);
"""

_INSERT = (f"INSERT OR IGNORE INTO spans ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")

# The summary of the rows inserted after id ?, merged into each trace's row.
_SUMMARISE = """
INSERT INTO traces (trace_id, start_ns, end_ns, spans, errors, tool_calls, denials,
                    agent_spans, last_id)
SELECT trace_id, min(start_ns), max(coalesce(end_ns, start_ns)), count(*),
       count(CASE WHEN status = 'error' THEN 1 END),
       count(CASE WHEN category = 'tool' THEN 1 END),
       count(CASE WHEN decision = 'deny' THEN 1 END),
       count(CASE WHEN category = 'agent' THEN 1 END), max(id)
FROM spans WHERE id > ? GROUP BY trace_id
ON CONFLICT(trace_id) DO UPDATE SET
    start_ns = min(start_ns, excluded.start_ns), end_ns = max(end_ns, excluded.end_ns),
    spans = spans + excluded.spans, errors = errors + excluded.errors,
    tool_calls = tool_calls + excluded.tool_calls, denials = denials + excluded.denials,
    agent_spans = agent_spans + excluded.agent_spans, last_id = excluded.last_id
"""

# The run fields of a trace, merged with what a batch brought (computed in Python from the
# batch's rows): the earliest agent span names the run (agent, status, duration), the
# earliest span with a model gives the model, the earliest span the root name.  Every CASE
# reads the row's values from before this statement, so the comparisons agree.
_RUN_FIELDS = """
UPDATE traces SET
    agent_start = CASE WHEN :agent_start IS NOT NULL AND (agent_start IS NULL
                       OR :agent_start < agent_start) THEN :agent_start ELSE agent_start END,
    agent = CASE WHEN :agent_start IS NOT NULL AND (agent_start IS NULL
                 OR :agent_start < agent_start) THEN :agent ELSE agent END,
    status = CASE WHEN :agent_start IS NOT NULL AND (agent_start IS NULL
                  OR :agent_start < agent_start) THEN :status ELSE status END,
    duration_ms = CASE WHEN :agent_start IS NOT NULL AND (agent_start IS NULL
                       OR :agent_start < agent_start) THEN :duration ELSE duration_ms END,
    agents = CASE WHEN :agents IS NULL THEN agents WHEN agents IS NULL THEN :agents
                  ELSE agents || ',' || :agents END,
    model_start = CASE WHEN :model_start IS NOT NULL AND (model_start IS NULL
                       OR :model_start < model_start) THEN :model_start ELSE model_start END,
    model = CASE WHEN :model_start IS NOT NULL AND (model_start IS NULL
                 OR :model_start < model_start) THEN :model ELSE model END,
    root_start = CASE WHEN root_start IS NULL OR :root_start < root_start THEN :root_start
                      ELSE root_start END,
    root_name = CASE WHEN root_start IS NULL OR :root_start < root_start THEN :root_name
                     ELSE root_name END
WHERE trace_id = :trace_id
"""


def _run_fields(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Per trace of a batch: its earliest agent span, model span and span."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        trace_id, name, category, start = row[0], row[3], row[5], row[7]
        f = found.get(trace_id)
        if f is None:
            f = found[trace_id] = {"trace_id": trace_id, "agent_start": None, "agent": None,
                                   "status": None, "duration": None, "agents": [],
                                   "model_start": None, "model": None,
                                   "root_start": start, "root_name": name}
        elif start < f["root_start"]:
            f["root_start"], f["root_name"] = start, name
        if category == "agent":
            if row[13] is not None and row[13] not in f["agents"]:
                f["agents"].append(row[13])
            if f["agent_start"] is None or start < f["agent_start"]:
                end = row[8] if row[8] is not None else start
                f.update(agent_start=start, agent=row[13],
                         status="error" if row[9] == "error" else "ok",
                         duration=(end - start) / 1e6)
        if row[14] is not None and (f["model_start"] is None or start < f["model_start"]):
            f["model_start"], f["model"] = start, row[14]
    for f in found.values():
        f["agents"] = ",".join(f["agents"]) or None
    return list(found.values())


_SERVICES = """
INSERT OR IGNORE INTO trace_services (trace_id, service)
SELECT DISTINCT trace_id, service FROM spans WHERE id > ? AND service != ''
"""

_AUDIT_FIELDS = ("seq", "time", "event", "actor", "action", "resource", "decision", "rule",
                 "outcome", "trace_id")

_SPAN_FIELDS = ("trace_id, span_id, parent_span_id, name, kind, category, service, start_ns, "
                "end_ns, status, status_message, decision, audit_seq, agent, model, detail")


def _span(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    detail = json.loads(out.pop("detail") or "{}")
    out["attributes"] = detail.get("attributes") or {}
    out["events"] = detail.get("events") or []
    end = out["end_ns"]
    out["duration_ms"] = None if end is None else (end - out["start_ns"]) / 1e6
    return out


class SpanStore:
    """Spans, trace summaries and audit records in one SQLite file.

    Args:
        path: the database file (created with its folder), or ``":memory:"``.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            # Spans hold prompts, arguments and results: the file is for its owner only
            # (SQLite gives its -wal and -shm files the database file's mode).
            Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # --- writing ---------------------------------------------------------------------

    def add_spans(self, rows: Sequence[Row]) -> list[str]:
        """Store span rows (a span already stored is kept as it was); return the ids of the
        traces that gained spans."""
        if not rows:
            return []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.execute("SELECT coalesce(max(id), 0) FROM spans").fetchone()[0]
                db.executemany(_INSERT, rows)
                db.execute(_SUMMARISE, (before,))
                touched = [r[0] for r in db.execute(
                    "SELECT DISTINCT trace_id FROM spans WHERE id > ?", (before,))]
                if touched:
                    fresh = set(touched)
                    db.executemany(_RUN_FIELDS, [f for f in _run_fields(rows)
                                                 if f["trace_id"] in fresh])
                db.execute(_SERVICES, (before,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return touched

    def add_audit(self, records: Iterable[dict[str, Any]], raw: Iterable[str]) -> int:
        """Store audit records (by ``seq``; a record read again replaces the earlier copy);
        return how many were given."""
        values = [(r.get("seq"), *(_text(r.get(f)) for f in _AUDIT_FIELDS[1:]), line)
                  for r, line in zip(records, raw, strict=True)]
        if not values:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                f"INSERT OR REPLACE INTO audit ({', '.join(_AUDIT_FIELDS)}, raw) "
                f"VALUES ({', '.join('?' for _ in _AUDIT_FIELDS)}, ?)", values)
            self._db.execute("COMMIT")
        return len(values)

    def source_offset(self, path: str) -> tuple[int | None, int]:
        """Where reading ``path`` stopped: ``(inode, byte offset)``."""
        with self._lock:
            row = self._db.execute("SELECT inode, offset FROM sources WHERE path = ?",
                                   (path,)).fetchone()
        return (None, 0) if row is None else (row[0], row[1])

    def set_source_offset(self, path: str, inode: int | None, offset: int) -> None:
        """Remember where reading ``path`` stopped."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO sources (path, inode, offset) "
                             "VALUES (?, ?, ?)", (path, inode, offset))

    # --- reading ---------------------------------------------------------------------

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def runs(self, *, limit: int = 50, before_ns: int | None = None) -> list[dict[str, Any]]:
        """Agent runs (traces holding an agent span), newest first."""
        where = "agent_spans > 0" + ("" if before_ns is None else " AND start_ns < ?")
        args: list[Any] = [] if before_ns is None else [before_ns]
        rows = self._all(
            f"SELECT t.*, (SELECT group_concat(service) FROM trace_services s "
            f"WHERE s.trace_id = t.trace_id) AS services FROM traces t WHERE {where} "
            f"ORDER BY start_ns DESC LIMIT ?", [*args, limit])
        return [_run(r) for r in rows]

    def traces(self, *, limit: int = 50, before_ns: int | None = None) -> list[dict[str, Any]]:
        """Every trace, newest first."""
        where = "" if before_ns is None else "WHERE start_ns < ?"
        args: list[Any] = [] if before_ns is None else [before_ns]
        rows = self._all(
            f"SELECT t.*, (SELECT group_concat(service) FROM trace_services s "
            f"WHERE s.trace_id = t.trace_id) AS services FROM traces t {where} "
            f"ORDER BY start_ns DESC LIMIT ?", [*args, limit])
        return [_run(r) for r in rows]

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace's summary, or ``None``."""
        rows = self._all(
            "SELECT t.*, (SELECT group_concat(service) FROM trace_services s "
            "WHERE s.trace_id = t.trace_id) AS services FROM traces t WHERE trace_id = ?",
            [trace_id])
        return _run(rows[0]) if rows else None

    def children(self, trace_id: str, parent: str | None, *, offset: int = 0,
                 limit: int = 200) -> list[dict[str, Any]]:
        """The spans directly under ``parent`` (``None``: the trace's roots -- spans
        without a parent, or whose parent was never received), by start time, each with
        ``child_count``."""
        count = ("(SELECT count(*) FROM spans c WHERE c.trace_id = s.trace_id "
                 "AND c.parent_span_id = s.span_id) AS child_count")
        if parent is None:
            sql = (f"SELECT {_SPAN_FIELDS}, {count} FROM spans s WHERE s.trace_id = ? AND "
                   "(s.parent_span_id IS NULL OR NOT EXISTS (SELECT 1 FROM spans p WHERE "
                   "p.trace_id = s.trace_id AND p.span_id = s.parent_span_id)) "
                   "ORDER BY start_ns, span_id LIMIT ? OFFSET ?")
            args: list[Any] = [trace_id, limit, offset]
        else:
            sql = (f"SELECT {_SPAN_FIELDS}, {count} FROM spans s WHERE s.trace_id = ? AND "
                   "s.parent_span_id = ? ORDER BY start_ns, span_id LIMIT ? OFFSET ?")
            args = [trace_id, parent, limit, offset]
        return [_span(r) for r in self._all(sql, args)]

    def opening(self, trace_id: str, *, rows: int = 300, page: int = 200
                ) -> dict[str, Any]:
        """What the waterfall shows first, in one call: the roots (a page), then level by
        level the first page of children of each span with children, until about ``rows``
        spans are included.

        Returns:
            ``{"roots": [...], "children": {parent_span_id: [...]}}``; each span carries
            ``child_count``.
        """
        roots = self.children(trace_id, None, limit=page)
        children: dict[str, list[dict[str, Any]]] = {}
        shown = len(roots)
        frontier = roots
        while frontier and shown < rows:
            chosen = []
            for span in frontier:
                if shown >= rows:
                    break
                if span["child_count"]:
                    chosen.append(span["span_id"])
                    shown += min(span["child_count"], page)
            if not chosen:
                break
            marks = ", ".join("?" for _ in chosen)
            found = [_span(r) for r in self._all(
                f"SELECT * FROM (SELECT {_SPAN_FIELDS}, (SELECT count(*) FROM spans c "
                "WHERE c.trace_id = s.trace_id AND c.parent_span_id = s.span_id) "
                "AS child_count, row_number() OVER (PARTITION BY parent_span_id "
                "ORDER BY start_ns, span_id) AS n FROM spans s WHERE s.trace_id = ? AND "
                f"s.parent_span_id IN ({marks})) WHERE n <= ? ORDER BY start_ns, span_id",
                [trace_id, *chosen, page])]
            for span in found:
                span.pop("n", None)
                children.setdefault(span["parent_span_id"], []).append(span)
            frontier = [span for parent in chosen for span in children.get(parent, [])]
        return {"roots": roots, "children": children}

    def all_spans(self, trace_id: str) -> list[dict[str, Any]]:
        """Every span of a trace by start time (for the single-file export)."""
        return [_span(r) for r in self._all(
            f"SELECT {_SPAN_FIELDS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id",
            [trace_id])]

    def span(self, trace_id: str, span_id: str) -> dict[str, Any] | None:
        """One span with its attributes and events, or ``None``."""
        rows = self._all(f"SELECT {_SPAN_FIELDS} FROM spans WHERE trace_id = ? AND span_id = ?",
                         [trace_id, span_id])
        return _span(rows[0]) if rows else None

    def spans_of(self, category: str, *, limit: int = 50,
                 before_ns: int | None = None) -> list[dict[str, Any]]:
        """The newest spans of one category (``sandbox``, ``mcp``, ``a2a``...)."""
        where = "category = ?" + ("" if before_ns is None else " AND start_ns < ?")
        args: list[Any] = [category] + ([] if before_ns is None else [before_ns])
        return [_span(r) for r in self._all(
            f"SELECT {_SPAN_FIELDS} FROM spans WHERE {where} ORDER BY start_ns DESC LIMIT ?",
            [*args, limit])]

    def mcp_summary(self) -> list[dict[str, Any]]:
        """Per MCP server and tool: calls, errors, denials, mean and last time, from spans."""
        rows = self._all(
            "SELECT json_extract(detail, '$.attributes.\"mcp.server\"') AS server, "
            "json_extract(detail, '$.attributes.\"gen_ai.tool.name\"') AS tool, "
            "count(*) AS calls, "
            "sum(status = 'error') AS errors, sum(decision = 'deny') AS denials, "
            "avg((end_ns - start_ns) / 1e6) AS mean_ms, max(start_ns) AS last_ns "
            "FROM spans WHERE category = 'mcp' GROUP BY server, tool ORDER BY server, tool")
        return [dict(r) for r in rows]

    def audit(self, *, limit: int = 100, before_seq: int | None = None,
              trace_id: str | None = None) -> list[dict[str, Any]]:
        """Audit records, newest first (of one trace, if given)."""
        conditions, args = [], []
        if before_seq is not None:
            conditions.append("seq < ?")
            args.append(before_seq)
        if trace_id is not None:
            conditions.append("trace_id = ?")
            args.append(trace_id)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._all(f"SELECT raw FROM audit {where} ORDER BY seq DESC LIMIT ?",
                         [*args, limit])
        return [json.loads(r[0]) for r in rows]

    def audit_record(self, seq: int) -> dict[str, Any] | None:
        """One audit record by its sequence number, with the spans that point at it."""
        rows = self._all("SELECT raw FROM audit WHERE seq = ?", [seq])
        if not rows:
            return None
        record = json.loads(rows[0][0])
        record["spans"] = [dict(r) for r in self._all(
            "SELECT trace_id, span_id, name FROM spans WHERE audit_seq = ?", [seq])]
        return record

    def counts(self) -> dict[str, int]:
        """How many spans, traces, runs and audit records are stored."""
        with self._lock:
            spans = self._db.execute("SELECT count(*) FROM spans").fetchone()[0]
            traces, runs = self._db.execute(
                "SELECT count(*), coalesce(sum(agent_spans > 0), 0) FROM traces").fetchone()
            audit = self._db.execute("SELECT count(*) FROM audit").fetchone()[0]
        return {"spans": spans, "traces": traces, "runs": runs, "audit": audit}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _run(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for internal in ("last_id", "agent_start", "model_start", "root_start"):
        out.pop(internal, None)
    out["agents"] = list(dict.fromkeys(out["agents"].split(","))) if out.get("agents") else []
    out["services"] = sorted(out["services"].split(",")) if out.get("services") else []
    out["trace_duration_ms"] = (None if out["start_ns"] is None else
                                (out["end_ns"] - out["start_ns"]) / 1e6)
    return out
