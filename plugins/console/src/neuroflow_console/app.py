"""The console's web application: JSON API, server-sent events, the OTLP/HTTP receiver
and the static page, behind :class:`~neuroflow_console.security.ConsoleGate`.

Every database call and file read runs in a worker thread, so a large ingest never
stalls the event loop; background pollers read the trace file and the audit log and
announce what changed to every open event stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
import attrs
from anyio.abc import ObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from neuroflow_console.export import export_html
from neuroflow_console.otlp import parse_request, rows_from_request
from neuroflow_console.records import RecordError
from neuroflow_console.security import ConsoleGate, allowed_hosts
from neuroflow_console.sources import (
    AuditReader,
    MemoryView,
    TraceFileReader,
    a2a_registry,
    configured_mcp_servers,
    mcp_installed,
    probe_mcp,
)
from neuroflow_console.store import SpanStore

STATIC = files("neuroflow_console") / "static"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
#: The largest OTLP request body accepted.
MAX_BODY = 32 << 20


class BadRequest(Exception):
    """A query parameter or path part that is not what the endpoint takes."""


@attrs.define
class Settings:
    """What one console serves.

    Attributes:
        db: the SQLite file (``":memory:"`` for none).
        traces: the JSON-lines span file to follow, if any.
        audit_log: the audit log to follow and verify, if any.
        audit_settings: ``[security.audit]`` when ``audit_log`` is the configured log.
        token: the launch token.
        port: the port (for the allowed ``Host`` values and the cookie).
        host: the address bound to.
        poll_seconds: how often the files are looked at.
    """

    db: str
    token: str
    port: int
    host: str = "127.0.0.1"
    traces: Path | None = None
    audit_log: Path | None = None
    audit_settings: Any = None
    poll_seconds: float = 0.5


class Hub:
    """Fans events out to every open event stream; a slow stream misses events, it does
    not hold the others up."""

    def __init__(self) -> None:
        self._subscribers: set[ObjectSendStream[dict[str, Any]]] = set()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Any]:
        """A receive stream of events, for as long as the ``async with`` lasts."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](256)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
            receive.close()

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Send ``data`` as ``event`` to every subscriber."""
        for send in list(self._subscribers):
            try:
                send.send_nowait({"event": event, "data": data})
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass


class Console:
    """The state behind the routes: the store, the readers, the event hub."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = SpanStore(settings.db)
        self.hub = Hub()
        self.trace_reader = (TraceFileReader(settings.traces, self.store)
                             if settings.traces is not None else None)
        self.audit_reader = (AuditReader(settings.audit_log, self.store,
                                         settings.audit_settings)
                             if settings.audit_log is not None else None)
        self.memory = MemoryView()

    async def poll_once(self) -> None:
        """Read the trace file and the audit log once; announce what changed."""
        if self.trace_reader is not None:
            touched = await anyio.to_thread.run_sync(self.trace_reader.poll)
            if touched:
                self.hub.publish("spans", {"traces": touched})
        if self.audit_reader is not None:
            read, changed = await anyio.to_thread.run_sync(self.audit_reader.poll)
            if read or changed:
                self.hub.publish("audit", {"read": read, "verdict": self.audit_reader.verdict})

    async def run_pollers(self) -> None:
        """Poll until cancelled."""
        while True:
            try:
                await self.poll_once()
            except Exception as exc:  # noqa: BLE001 - keep serving; show the problem
                self.hub.publish("problem", {"message": f"reading sources failed: {exc}"})
            await anyio.sleep(self.settings.poll_seconds)


# --- request helpers -------------------------------------------------------------------

def _int(request: Request, name: str, default: int | None, low: int = 0,
         high: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: expected an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name}: expected an integer {bound}, got {value}")
    return value


def _trace_id(request: Request) -> str:
    value = request.path_params["trace_id"]
    if not _HEX32.match(value):
        raise BadRequest(f"trace_id: expected 32 lowercase hex digits, got {value!r}")
    return value


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def _console(request: Request) -> Console:
    return request.app.state.console


def _threaded(function: Any) -> Any:
    """An endpoint whose body (store calls) runs in a worker thread; BadRequest -> 400."""

    async def endpoint(request: Request) -> Response:
        try:
            result = await anyio.to_thread.run_sync(function, request)
        except BadRequest as exc:
            return _json({"error": str(exc)}, 400)
        if isinstance(result, Response):
            return result
        return _json(result)

    endpoint.__name__ = function.__name__
    endpoint.__doc__ = function.__doc__
    return endpoint


# --- endpoints ---------------------------------------------------------------------------

async def index(request: Request) -> Response:
    """The page; ``?token=`` is dropped from the address once the cookie is set."""
    if "token" in request.query_params:
        return RedirectResponse("/", status_code=303)
    return FileResponse(str(STATIC / "index.html"), media_type="text/html")


@_threaded
def summary(request: Request) -> dict[str, Any]:
    """Counts, sources, the audit verdict and which optional views have data."""
    console = _console(request)
    s = console.settings
    return {
        "counts": console.store.counts(),
        "sources": {"traces": None if s.traces is None else str(s.traces),
                    "audit_log": None if s.audit_log is None else str(s.audit_log),
                    "db": s.db,
                    "otlp": f"http://{request.headers.get('host')}/v1/traces"},
        "trace_file_problems": (console.trace_reader.problems
                                if console.trace_reader is not None else []),
        "audit": (console.audit_reader.verdict if console.audit_reader is not None
                  else {"state": "unavailable", "summary": "no audit log configured"}),
    }


@_threaded
def runs(request: Request) -> dict[str, Any]:
    """Agent runs, newest first; ``before`` (a start time in ns) pages back."""
    limit = _int(request, "limit", 50, 1, 500)
    before = _int(request, "before", None)
    return {"runs": _console(request).store.runs(limit=limit, before_ns=before)}


@_threaded
def traces(request: Request) -> dict[str, Any]:
    """Every trace, newest first."""
    limit = _int(request, "limit", 50, 1, 500)
    before = _int(request, "before", None)
    return {"traces": _console(request).store.traces(limit=limit, before_ns=before)}


@_threaded
def trace(request: Request) -> Any:
    """One trace's summary."""
    found = _console(request).store.trace(_trace_id(request))
    return found if found is not None else _json({"error": "no such trace"}, 404)


@_threaded
def trace_spans(request: Request) -> Any:
    """A page of the spans under ``parent`` (none: the roots), each with child_count."""
    trace_id = _trace_id(request)
    parent = request.query_params.get("parent") or None
    if parent is not None and not _HEX16.match(parent):
        raise BadRequest(f"parent: expected 16 lowercase hex digits, got {parent!r}")
    limit = _int(request, "limit", 200, 1, 1000)
    offset = _int(request, "offset", 0)
    spans = _console(request).store.children(trace_id, parent, offset=offset, limit=limit)
    return {"spans": spans, "offset": offset, "more": len(spans) == limit}


@_threaded
def trace_opening(request: Request) -> Any:
    """The roots and the first levels of children, about ``rows`` spans, in one answer."""
    trace_id = _trace_id(request)
    rows = _int(request, "rows", 300, 1, 5000)
    page = _int(request, "page", 200, 1, 1000)
    return _console(request).store.opening(trace_id, rows=rows, page=page)


@_threaded
def span_detail(request: Request) -> Any:
    """One span with its attributes, events and the audit record of its guard decision."""
    trace_id = _trace_id(request)
    span_id = request.path_params["span_id"]
    if not _HEX16.match(span_id):
        raise BadRequest(f"span_id: expected 16 lowercase hex digits, got {span_id!r}")
    store = _console(request).store
    found = store.span(trace_id, span_id)
    if found is None:
        return _json({"error": "no such span"}, 404)
    found["audit_record"] = (store.audit_record(found["audit_seq"])
                             if found["audit_seq"] is not None else None)
    return found


@_threaded
def trace_export(request: Request) -> Any:
    """The trace as one self-contained HTML file (a download)."""
    trace_id = _trace_id(request)
    store = _console(request).store
    found = store.trace(trace_id)
    if found is None:
        return _json({"error": "no such trace"}, 404)
    html = export_html(found, store.all_spans(trace_id), store.audit(trace_id=trace_id,
                                                                     limit=10_000))
    return Response(html, media_type="text/html; charset=utf-8", headers={
        "content-disposition": f'attachment; filename="trace-{trace_id}.html"'})


@_threaded
def audit(request: Request) -> dict[str, Any]:
    """Audit records, newest first, and the verdict of ``verify``."""
    console = _console(request)
    limit = _int(request, "limit", 100, 1, 1000)
    before = _int(request, "before_seq", None, 1)
    trace_id = request.query_params.get("trace_id") or None
    if trace_id is not None and not _HEX32.match(trace_id):
        raise BadRequest(f"trace_id: expected 32 lowercase hex digits, got {trace_id!r}")
    return {"records": console.store.audit(limit=limit, before_seq=before, trace_id=trace_id),
            "verdict": (console.audit_reader.verdict if console.audit_reader is not None
                        else {"state": "unavailable", "summary": "no audit log configured"})}


@_threaded
def audit_record(request: Request) -> Any:
    """One audit record and the spans that carry it."""
    raw = request.path_params["seq"]
    if not raw.isdigit():
        raise BadRequest(f"seq: expected a positive integer, got {raw!r}")
    found = _console(request).store.audit_record(int(raw))
    return found if found is not None else _json({"error": "no such record"}, 404)


@_threaded
def sandboxes(request: Request) -> dict[str, Any]:
    """Recent sandbox executions, from their spans."""
    limit = _int(request, "limit", 50, 1, 500)
    before = _int(request, "before", None)
    out = []
    for span in _console(request).store.spans_of("sandbox", limit=limit, before_ns=before):
        a = span["attributes"]
        out.append({
            "trace_id": span["trace_id"], "span_id": span["span_id"],
            "start_ns": span["start_ns"], "duration_ms": span["duration_ms"],
            "status": span["status"], "decision": span["decision"],
            "audit_seq": span["audit_seq"],
            "backend": a.get("neuroflow.sandbox.backend"),
            "command": a.get("neuroflow.sandbox.command"),
            "args": a.get("neuroflow.sandbox.args"),
            "exit_code": a.get("process.exit.code"),
            "reason": a.get("neuroflow.sandbox.reason"),
            "limits_hit": a.get("neuroflow.sandbox.limit") or (
                a.get("neuroflow.sandbox.reason")
                if str(a.get("neuroflow.sandbox.reason", "")).endswith("_limit") else None),
            "wall_time_ms": a.get("neuroflow.sandbox.wall_time_ms"),
            "cpu_time_ms": a.get("neuroflow.sandbox.cpu_time_ms"),
            "peak_memory_bytes": a.get("neuroflow.sandbox.peak_memory_bytes"),
        })
    return {"executions": out}


async def memory_agents(request: Request) -> Response:
    """The agents of the configured memory store and their entry counts."""
    view = _console(request).memory
    manager = await view.manager()
    if manager is None:
        return _json({"agents": {}, "backend": view.backend, "error": view.error})
    try:
        stats = await manager.stats()
    except Exception as exc:  # noqa: BLE001
        return _json({"agents": {}, "backend": view.backend, "error": str(exc)})
    return _json({"agents": stats.get("agents", {}), "entries": stats.get("entries"),
                  "backend": view.backend, "error": None})


async def memory_list(request: Request) -> Response:
    """One agent's memories (by key), ``offset``/``limit`` paged."""
    from neuroflow.errors import NeuroflowError

    try:
        limit = _int(request, "limit", 50, 1, 500)
        offset = _int(request, "offset", 0)
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)
    manager = await _console(request).memory.manager()
    if manager is None:
        return _json({"error": _console(request).memory.error}, 503)
    try:
        entries = await manager.list_memories(request.path_params["agent"], limit=limit,
                                               offset=offset)
    except NeuroflowError as exc:
        return _json({"error": str(exc)}, 400)
    return _json({"entries": [e.to_dict() for e in entries], "offset": offset})


async def memory_search(request: Request) -> Response:
    """Search one agent's memories; every result explains its score term by term."""
    from neuroflow.errors import NeuroflowError

    try:
        limit = _int(request, "limit", 10, 1, 100)
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)
    query = request.query_params.get("q") or None
    tags = [t for t in request.query_params.get("tags", "").split(",") if t] or None
    manager = await _console(request).memory.manager()
    if manager is None:
        return _json({"error": _console(request).memory.error}, 503)
    try:
        found = await manager.search_memories(request.path_params["agent"], query=query,
                                              tags=tags, limit=limit, explain=True)
    except NeuroflowError as exc:
        return _json({"error": str(exc)}, 400)
    return _json({"results": [e.to_dict() for e in found], "query": query,
                  "weights": {k: v for k, v in (found[0].explain or {}).items()
                              if k.startswith("weight_")} if found else {}})


async def mcp(request: Request) -> Response:
    """Configured MCP servers, and per server and tool what the spans recorded."""
    servers, error = configured_mcp_servers()
    calls = await anyio.to_thread.run_sync(_console(request).store.mcp_summary)
    return _json({"installed": mcp_installed(), "servers": servers, "error": error,
                  "calls": calls})


async def mcp_probe(request: Request) -> Response:
    """Start the configured servers, list tools and statuses, stop them (on request)."""
    if not mcp_installed():
        return _json({"error": "no MCP client installed (pip install 'neuroflow[mcp]')"}, 503)
    servers, error = configured_mcp_servers()
    if error:
        return _json({"error": error}, 503)
    try:
        with anyio.fail_after(60):
            statuses = await probe_mcp(servers)
    except Exception as exc:  # noqa: BLE001 - shown on the page
        return _json({"error": f"probe failed: {exc}"}, 502)
    return _json({"statuses": statuses})


async def a2a(request: Request) -> Response:
    """The A2A registry (when an A2A plugin is installed) and recent A2A spans."""
    registry = await a2a_registry()
    spans = await anyio.to_thread.run_sync(
        lambda: _console(request).store.spans_of("a2a", limit=100))
    multi = await anyio.to_thread.run_sync(
        lambda: [t for t in _console(request).store.traces(limit=200)
                 if len(t["services"]) > 1])
    return _json({**registry, "spans": spans, "multi_service_traces": multi})


async def events(request: Request) -> Response:
    """Server-sent events: ``hello`` first, then ``spans``, ``audit`` and ``problem``."""
    from sse_starlette.sse import EventSourceResponse

    console = _console(request)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        async with console.hub.subscribe() as receive:
            counts = await anyio.to_thread.run_sync(console.store.counts)
            yield {"event": "hello", "data": json.dumps({"counts": counts})}
            async for item in receive:
                yield {"event": item["event"], "data": json.dumps(item["data"], default=str)}

    return EventSourceResponse(stream(), ping=10)


async def otlp_traces(request: Request) -> Response:
    """The OTLP/HTTP trace receiver (protobuf or JSON bodies)."""
    console = _console(request)
    content_type = request.headers.get("content-type", "application/x-protobuf")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        return _json({"error": f"body: larger than {MAX_BODY} bytes"}, 413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return _json({"error": f"body: larger than {MAX_BODY} bytes"}, 413)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        import gzip

        try:
            body = await anyio.to_thread.run_sync(gzip.decompress, body)
        except OSError as exc:
            return _json({"error": f"body: not gzip: {exc}"}, 400)
    try:
        request_message = await anyio.to_thread.run_sync(parse_request, body, content_type)
    except RecordError as exc:
        return _json({"error": str(exc)}, 400)
    rows, rejected = await anyio.to_thread.run_sync(rows_from_request, request_message)
    touched = await anyio.to_thread.run_sync(console.store.add_spans, rows)
    if touched:
        console.hub.publish("spans", {"traces": touched})
    is_json = content_type.split(";")[0].strip().lower() == "application/json"
    if is_json:
        reply: dict[str, Any] = {}
        if rejected:
            reply = {"partialSuccess": {"rejectedSpans": rejected,
                                        "errorMessage": "spans with malformed ids"}}
        return _json(reply)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTracePartialSuccess,
        ExportTraceServiceResponse,
    )

    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(ExportTracePartialSuccess(
            rejected_spans=rejected, error_message="spans with malformed ids"))
    return Response(response.SerializeToString(), media_type="application/x-protobuf")


def build_app(settings: Settings) -> Any:
    """The console's ASGI application (behind its gate) for ``settings``."""
    console = Console(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(console.run_pollers)
            yield
            tg.cancel_scope.cancel()
        await console.memory.aclose()
        console.store.close()

    routes = [
        Route("/", index),
        Route("/api/summary", summary),
        Route("/api/runs", runs),
        Route("/api/traces", traces),
        Route("/api/traces/{trace_id}", trace),
        Route("/api/traces/{trace_id}/spans", trace_spans),
        Route("/api/traces/{trace_id}/opening", trace_opening),
        Route("/api/traces/{trace_id}/spans/{span_id}", span_detail),
        Route("/api/traces/{trace_id}/export", trace_export),
        Route("/api/audit", audit),
        Route("/api/audit/{seq}", audit_record),
        Route("/api/sandboxes", sandboxes),
        Route("/api/memory", memory_agents),
        Route("/api/memory/{agent}", memory_list),
        Route("/api/memory/{agent}/search", memory_search),
        Route("/api/mcp", mcp),
        Route("/api/mcp/probe", mcp_probe),
        Route("/api/a2a", a2a),
        Route("/api/events", events),
        Route("/v1/traces", otlp_traces, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = console
    return ConsoleGate(app, settings.token, allowed_hosts(settings.port, settings.host),
                       settings.port)
