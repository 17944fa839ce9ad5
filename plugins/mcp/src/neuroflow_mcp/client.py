"""``OfficialMCPClient``: the ``mcp`` backend, on the official ``mcp`` SDK.

Each server's connection lives in a task of one anyio task group the client owns (entered
by ``async with client:``, or, under asyncio, in a background task started on first use),
so sessions outlive the call that started them and stopping one cancels exactly its task.
Stdio servers run in their own process group (see :mod:`neuroflow_mcp.stdio`); stopping a
server, the client, or the interpreter leaves none of their processes behind.
"""

from __future__ import annotations

import atexit
import os
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import attrs
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError

from neuroflow.config import structure
from neuroflow.errors import ConfigError
from neuroflow.mcp import (
    MCPConfig,
    MCPConfigParser,
    MCPServerConfig,
    MCPServerError,
    MCPServerStatus,
    MCPSettings,
    NameCollision,
    Transport,
    tool_result,
)
from neuroflow.observability import inject
from neuroflow_mcp.stdio import ServerProcess, stdio_transport

_LIVE: weakref.WeakSet[OfficialMCPClient] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # the interpreter exits with servers still running
    for client in list(_LIVE):
        for server in list(client._servers.values()):
            if server.process is not None:
                server.process.kill_group()


@attrs.define(eq=False)
class _Server:
    """One managed server: its configuration, session and counters."""

    config: MCPServerConfig
    session: ClientSession | None = None
    process: ServerProcess | None = None
    stop: anyio.Event = attrs.field(factory=anyio.Event)
    done: anyio.Event = attrs.field(factory=anyio.Event)
    connected: bool = False
    tools: list[types.Tool] | None = None
    last_ping: float | None = None
    latency_ms: float | None = None
    restarts: int = 0
    last_error: str | None = None
    calls: int = 0
    errors: int = 0

    def status(self) -> MCPServerStatus:
        return MCPServerStatus(
            name=self.config.name, connected=self.connected,
            transport=self.config.transport.value, last_ping=self.last_ping,
            latency_ms=self.latency_ms, tool_count=len(self.tools or ()),
            restarts=self.restarts, last_error=self.last_error,
            pid=self.process.pid if self.process is not None else None,
            calls=self.calls, errors=self.errors)


class OfficialMCPClient:
    """Manages MCP servers and calls their tools (SPEC's ``MCPServerManager``).

    Args:
        config: the client's options (``[mcp.mcp]``): default timeout, name-collision
            policy, how long a stopping server may take.
    """

    def __init__(self, config: MCPConfig | None = None) -> None:
        self.config = config or MCPConfig()
        self._servers: dict[str, _Server] = {}
        self._tg: Any = None
        self._owner: Any = None
        self._owner_done: anyio.Event | None = None
        self._entered = 0
        _LIVE.add(self)

    # --- the task group that owns the sessions ---------------------------------------

    async def __aenter__(self) -> Self:
        if self._tg is None:
            self._tg_cm = anyio.create_task_group()
            self._tg = await self._tg_cm.__aenter__()
            self._entered += 1
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def _group(self) -> Any:
        if self._tg is not None:
            return self._tg
        import sniffio

        if sniffio.current_async_library() != "asyncio":
            raise MCPServerError("under trio, use the MCP client as `async with client:` so its "
                                 "sessions have a nursery to live in")
        import asyncio

        ready = anyio.Event()
        self._owner_done = anyio.Event()

        async def owner() -> None:
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    ready.set()
                    await anyio.sleep_forever()
            finally:
                self._tg = None
                self._owner_done.set()

        self._owner = asyncio.get_running_loop().create_task(owner())
        await ready.wait()
        return self._tg

    async def spawn_background(self, func: Any) -> None:
        """Run ``await func()`` in the client's task group (the health monitor uses it)."""
        (await self._group()).start_soon(func)

    # --- starting and stopping ----------------------------------------------------------

    async def start_from_config(self, config: Any = None) -> dict[str, MCPServerStatus]:
        """Start every enabled server of ``config`` concurrently (see the protocol)."""
        servers = _servers_of(config)
        results: dict[str, MCPServerStatus] = {}

        async def one(server: MCPServerConfig) -> None:
            try:
                results[server.name] = await self.start_server(server)
            except MCPServerError:
                results[server.name] = self._servers[server.name].status()

        async with anyio.create_task_group() as tg:
            for server in servers.values():
                if server.enabled:
                    tg.start_soon(one, server)
        return results

    async def start_server(self, config: Any = None, /, **fields: Any) -> MCPServerStatus:
        """Start one server from an :class:`MCPServerConfig` or its fields.

        Raises:
            ConfigError: the fields are invalid (one line each, naming the field).
            MCPServerError: the server failed to start or initialise (its status keeps
                the error); or a server of that name is already running.
        """
        server_config = _server_config(config, fields)
        name = server_config.name
        existing = self._servers.get(name)
        if existing is not None and existing.connected:
            raise MCPServerError(f"MCP server {name!r} is already running; stop it first")
        server = _Server(server_config, restarts=existing.restarts if existing else 0)
        self._servers[name] = server
        tg = await self._group()
        error = await tg.start(self._serve, server)
        if error is not None:
            server.last_error = error
            raise MCPServerError(f"MCP server {name!r} failed to start: {error}")
        return server.status()

    async def _serve(self, server: _Server, *, task_status: Any) -> None:
        """Own one server's connection until it is stopped or dies."""
        started = False
        cfg = server.config
        try:
            async with self._connect(server) as (read, write):
                async with ClientSession(read, write, message_handler=self._handler(server)
                                         ) as session:
                    with anyio.fail_after(cfg.startup_timeout_seconds):
                        await session.initialize()
                    server.session = session
                    server.connected = True
                    await self._refresh_tools(server)
                    started = True
                    task_status.started(None)
                    await self._wait_until_stopped_or_dead(server)
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            message = self._describe(server, exc)
            server.last_error = message
            if not started:
                task_status.started(message)
        finally:
            server.connected = False
            server.session = None
            server.done.set()

    def _describe(self, server: _Server, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            text = (f"did not initialise within {server.config.startup_timeout_seconds}s")
        elif isinstance(exc, BaseExceptionGroup):
            leaves = exc.exceptions
            return self._describe(server, leaves[0]) if leaves else repr(exc)
        else:
            text = f"{type(exc).__name__}: {exc}"
        process = server.process
        if process is not None and process.returncode is not None:
            text = f"{process.describe_exit()} ({text})"
        return text

    def _connect(self, server: _Server) -> Any:
        cfg = server.config
        if cfg.transport is Transport.STDIO:
            return _stdio(server, self.config.stop_grace_seconds)
        return _remote(cfg)

    async def _wait_until_stopped_or_dead(self, server: _Server) -> None:
        async with anyio.create_task_group() as tg:
            async def stopped() -> None:
                await server.stop.wait()
                tg.cancel_scope.cancel()

            async def died() -> None:
                if server.process is None:
                    await anyio.sleep_forever()
                await server.process.exited.wait()
                server.connected = False
                server.last_error = server.process.describe_exit()
                tg.cancel_scope.cancel()

            tg.start_soon(stopped)
            tg.start_soon(died)

    def _handler(self, server: _Server) -> Any:
        async def handle(message: Any) -> None:
            if isinstance(message, Exception):
                server.last_error = f"{type(message).__name__}: {message}"
            elif isinstance(message, types.ToolListChangedNotification):
                server.tools = None  # refreshed on the next listing
                if self._tg is not None:
                    self._tg.start_soon(self._refresh_quietly, server)
        return handle

    async def _refresh_quietly(self, server: _Server) -> None:
        try:
            await self._refresh_tools(server)
        except Exception as exc:  # noqa: BLE001 - kept as the server's last error
            server.last_error = f"listing tools failed: {type(exc).__name__}: {exc}"

    async def stop_server(self, name: str) -> None:
        """Stop server ``name`` and forget it; its whole process group is killed."""
        server = self._servers.pop(name, None)
        if server is None:
            raise MCPServerError(f"no MCP server named {name!r} "
                                 f"(running: {', '.join(self._servers) or 'none'})")
        await self._halt(server)

    async def _halt(self, server: _Server) -> None:
        server.stop.set()
        with anyio.CancelScope(shield=True):
            await server.done.wait()
            if server.process is not None:
                server.process.kill_group()

    async def stop_all(self) -> None:
        """Stop every server concurrently."""
        servers = list(self._servers.values())
        self._servers.clear()
        async with anyio.create_task_group() as tg:
            for server in servers:
                tg.start_soon(self._halt, server)

    async def reconnect(self, server_name: str) -> MCPServerStatus:
        """Stop (if needed) and start server ``server_name`` again with its configuration.

        In-flight calls of the old connection fail; none is replayed.
        """
        server = self._get(server_name)
        await self._halt(server)
        restarts = server.restarts + 1
        fresh = _Server(server.config, restarts=restarts, calls=server.calls,
                        errors=server.errors)
        self._servers[server_name] = fresh
        tg = await self._group()
        error = await tg.start(self._serve, fresh)
        if error is not None:
            fresh.last_error = error
            raise MCPServerError(f"MCP server {server_name!r} failed to restart: {error}")
        return fresh.status()

    async def aclose(self) -> None:
        """Stop every server and the client's task group."""
        await self.stop_all()
        if self._owner is not None:
            self._owner.cancel()
            if self._owner_done is not None:
                await self._owner_done.wait()
            self._owner = None
        elif self._tg is not None and self._entered:
            self._tg.cancel_scope.cancel()
            cm, self._tg, self._entered = self._tg_cm, None, 0
            await cm.__aexit__(None, None, None)

    # --- tools ---------------------------------------------------------------------------

    def _get(self, name: str) -> _Server:
        server = self._servers.get(name)
        if server is None:
            raise MCPServerError(f"no MCP server named {name!r} "
                                 f"(running: {', '.join(self._servers) or 'none'})")
        return server

    def _session(self, server: _Server) -> ClientSession:
        if not server.connected or server.session is None:
            why = f" ({server.last_error})" if server.last_error else ""
            raise MCPServerError(f"MCP server {server.config.name!r} is not connected{why}")
        return server.session

    def _timeout(self, server: _Server, timeout: float | None) -> float:
        if timeout is not None:
            return timeout
        if server.config.timeout_seconds is not None:
            return server.config.timeout_seconds
        return self.config.default_timeout_seconds

    async def _refresh_tools(self, server: _Server) -> list[types.Tool]:
        session = self._session(server)
        tools: list[types.Tool] = []
        cursor: str | None = None
        seen: set[str] = set()
        with anyio.fail_after(self._timeout(server, None)):
            while True:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.list_tools(params=params)
                tools += page.tools
                cursor = page.next_cursor
                if not cursor or cursor in seen:  # a server repeating a cursor ends it
                    break
                seen.add(cursor)
        server.tools = tools
        return tools

    async def list_tools(self, server_name: str | None = None) -> list[dict[str, Any]]:
        """Every tool, all pages; names unique under ``name_collision`` (see protocol)."""
        if server_name is not None:
            servers = [self._get(server_name)]
        else:
            servers = [s for s in self._servers.values() if s.connected]
        listed: list[tuple[_Server, types.Tool]] = []
        for server in servers:
            tools = server.tools
            if tools is None:
                tools = await self._refresh_tools(server)
            listed += [(server, tool) for tool in tools]
        owners: dict[str, list[str]] = {}
        for server, tool in listed:
            owners.setdefault(tool.name, []).append(server.config.name)
        policy = self.config.name_collision
        out = []
        for server, tool in listed:
            name = tool.name
            others = owners[name]
            if len(others) > 1:
                if policy is NameCollision.ERROR:
                    raise MCPServerError(f"tool {name!r} is offered by several servers "
                                         f"({', '.join(others)}); set [mcp.mcp] "
                                         f"name_collision = \"prefix\" or \"first\"")
                if policy is NameCollision.PREFIX or others[0] != server.config.name:
                    name = f"{server.config.name}/{tool.name}"
            out.append({"name": name, "server": server.config.name, "tool": tool.name,
                        "description": tool.description or "",
                        "input_schema": tool.input_schema,
                        "read_only": bool(getattr(tool.annotations, "read_only_hint", False))})
        return out

    async def execute_tool(self, server_name: str, tool_name: str,
                           arguments: Mapping[str, Any] | None = None, *,
                           timeout: float | None = None) -> dict[str, Any]:
        """Call a tool; always the one result shape (see the protocol).

        Raises:
            MCPServerError: no server of that name was started.
        """
        server = self._get(server_name)
        server.calls += 1
        limit = self._timeout(server, timeout)
        try:
            session = self._session(server)
            # The current span's W3C trace context goes in the request's _meta
            # (``traceparent``), so a traced server continues the caller's trace.
            meta = inject()
            result = await session.call_tool(tool_name, dict(arguments or {}),
                                             read_timeout_seconds=limit,
                                             meta=meta or None)  # type: ignore[arg-type]
        except MCPError as exc:
            server.errors += 1
            out = tool_result(server_name, tool_name, error=exc.message)
            out["error_code"] = exc.code
            if exc.code == types.REQUEST_TIMEOUT:
                out["timed_out"] = True
                out["result"] = (f"tool {tool_name!r} of MCP server {server_name!r} did "
                                 f"not answer within {limit}s; the request was cancelled")
                out["content"] = [{"type": "text", "text": out["result"]}]
            return out
        except MCPServerError as exc:
            server.errors += 1
            return tool_result(server_name, tool_name, error=str(exc))
        content = [block.model_dump(mode="json", by_alias=True, exclude_none=True)
                   for block in result.content]
        if result.is_error:
            server.errors += 1
        return tool_result(server_name, tool_name, content=content,
                           structured=result.structured_content, is_error=result.is_error)

    async def ping(self, server_name: str) -> float:
        """Ping; returns the round trip in milliseconds."""
        server = self._get(server_name)
        session = self._session(server)
        start = time.perf_counter()
        with anyio.fail_after(self._timeout(server, None)):
            await session.send_ping()
        server.latency_ms = (time.perf_counter() - start) * 1000
        server.last_ping = time.time()
        return server.latency_ms

    def get_all_statuses(self) -> dict[str, MCPServerStatus]:
        """``{name: MCPServerStatus}`` for every server started (and not stopped)."""
        return {name: server.status() for name, server in self._servers.items()}

    def __repr__(self) -> str:
        return f"OfficialMCPClient(servers={list(self._servers)})"


# --- helpers ------------------------------------------------------------------------------


def _servers_of(config: Any) -> dict[str, MCPServerConfig]:
    if config is None:
        from neuroflow import get_config

        settings = get_config().section("mcp").settings
        return dict(settings.servers) if settings is not None else {}
    if isinstance(config, (str, os.PathLike)):
        return dict(MCPConfigParser().parse_from_file(Path(config)).servers)
    if isinstance(config, MCPSettings):
        return dict(config.servers)
    if isinstance(config, Mapping):
        if all(isinstance(v, MCPServerConfig) for v in config.values()):
            return {name: attrs.evolve(v, name=name) for name, v in config.items()}
        return dict(MCPConfigParser().parse(config).servers)
    raise ConfigError(f"config: expected MCPSettings, a mapping of servers or a file path, "
                      f"got {type(config).__name__}")


def _server_config(config: Any, fields: Mapping[str, Any]) -> MCPServerConfig:
    if isinstance(config, MCPServerConfig):
        if fields:
            config = attrs.evolve(config, **fields)
    else:
        data = dict(config or {}, **fields)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name: expected the server's name, got {name!r}")
        if "args" in data and isinstance(data["args"], list):
            data["args"] = tuple(data["args"])
        config = structure(data, MCPServerConfig, path=f"mcp.servers.{name}")
    problems = [f"mcp.servers.{config.name}.{line}" for line in config.problems()]
    if problems:
        raise ConfigError(problems)
    return config


class _StdioConnection:
    """``async with`` wrapper recording the process on the server as it starts.

    With ``sandbox = "<backend>"`` the server is spawned by that isolation backend,
    built the one way (``create_backend``, options from ``[sandbox.<backend>]``, the
    server's ``cwd`` as its ``work_dir``, the configured gate judging the command as
    actor ``mcp-server:<name>``); it gets the sandbox's clean environment plus the
    server's ``env`` and ``env_allow`` variables.  The backend is closed with the
    connection.
    """

    def __init__(self, server: _Server, grace: float) -> None:
        self.server = server
        self.grace = grace
        self._sandbox: Any = None

    async def __aenter__(self) -> tuple[Any, Any]:
        cfg = self.server.config

        def started(process: ServerProcess) -> None:
            self.server.process = process

        env, cwd = cfg.environment(), cfg.cwd
        if cfg.sandbox:
            from neuroflow import create_backend

            self._sandbox = create_backend(
                "isolation", cfg.sandbox, overrides={"work_dir": cwd} if cwd else None,
                actor=f"mcp-server:{cfg.name}", field=f"mcp.servers.{cfg.name}.sandbox")
            # The sandbox sets PATH, HOME, LANG and TMPDIR for its own uid and work dir.
            env, cwd = _allowed_only(cfg) | dict(cfg.env), None
        self._cm = stdio_transport(cfg.command or "", list(cfg.args), env=env, cwd=cwd,
                                   grace=self.grace, started=started, sandbox=self._sandbox)
        try:
            read, write, _process = await self._cm.__aenter__()
        except BaseException:
            await self._close_sandbox()
            raise
        return read, write

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._cm.__aexit__(*exc)
        finally:
            await self._close_sandbox()

    async def _close_sandbox(self) -> None:
        if self._sandbox is not None:
            with anyio.CancelScope(shield=True):
                await self._sandbox.aclose()


def _allowed_only(cfg: MCPServerConfig) -> dict[str, str]:
    """The host variables ``env_allow`` names (not the base set a plain server gets)."""
    return {name: os.environ[name] for name in cfg.env_allow if name in os.environ}


def _stdio(server: _Server, grace: float) -> _StdioConnection:
    return _StdioConnection(server, grace)


class _RemoteConnection:
    """Streamable HTTP or SSE, with the configured headers and bearer token."""

    def __init__(self, cfg: MCPServerConfig) -> None:
        self.cfg = cfg

    async def __aenter__(self) -> tuple[Any, Any]:
        from contextlib import AsyncExitStack

        cfg = self.cfg
        headers = cfg.http_headers()
        self._stack = AsyncExitStack()
        await self._stack.__aenter__()
        try:
            if cfg.transport is Transport.SSE:
                from mcp.client.sse import sse_client

                streams = await self._stack.enter_async_context(
                    sse_client(cfg.url or "", headers=headers))
            else:
                from mcp.client.streamable_http import streamable_http_client
                from mcp.shared._httpx_utils import create_mcp_http_client

                http = await self._stack.enter_async_context(
                    create_mcp_http_client(headers=headers))
                streams = await self._stack.enter_async_context(
                    streamable_http_client(cfg.url or "", http_client=http))
        except BaseException:
            await self._stack.__aexit__(None, None, None)
            raise
        return streams[0], streams[1]

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._stack.__aexit__(*exc)


def _remote(cfg: MCPServerConfig) -> _RemoteConnection:
    return _RemoteConnection(cfg)
