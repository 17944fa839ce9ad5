"""``neuroflow mcp serve``: NeuroFlow's sandbox and memory as MCP tools, for any MCP client.

Tools: ``run_command`` (the configured sandbox, ``[sandbox] backend``), and ``store``,
``retrieve``, ``search``, ``delete`` (the configured memory).  Every call is a ``tool``
action (target: the tool's name, actor: ``--actor``, default ``"mcp-client"``) judged by
the configured gate and audited with its outcome; ``run_command`` is also judged as a
``command`` by the sandbox's own gate.  Over HTTP the server listens on loopback and
refuses requests without ``Authorization: Bearer <token>`` (the token is read from
``NEUROFLOW_MCP_TOKEN`` or the variable ``--token-env`` names) unless ``--open`` is given.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from neuroflow.errors import ConfigError, NeuroflowError


def build_server(*, actor: str = "mcp-client", gate: Any = None) -> MCPServer:
    """The MCP server exposing the configured sandbox and memory (``gate=False``: none)."""
    from neuroflow.memory import MemoryManager
    from neuroflow.sandbox import open_sandbox
    from neuroflow.security import Action, ActionContext

    server = MCPServer("neuroflow", instructions="NeuroFlow's sandbox and memory.")
    resolved = _gate(gate)
    memory: list[Any] = []

    def get_memory() -> Any:
        if not memory:
            memory.append(MemoryManager())
        return memory[0]

    async def guarded(name: str, arguments: dict[str, Any],
                      work: Callable[[], Awaitable[Any]]) -> Any:
        # NeuroFlow's own errors (a denial, a bad sandbox argument) reach the client with
        # their message; the SDK would replace any other exception's by a generic one.
        try:
            return await _guarded(name, arguments, work)
        except NeuroflowError as exc:
            raise ToolError(str(exc)) from exc

    async def _guarded(name: str, arguments: dict[str, Any],
                       work: Callable[[], Awaitable[Any]]) -> Any:
        if resolved is None:
            return await work()
        action = Action(kind="tool", target=name, actor=actor, arguments=arguments)
        context = ActionContext(component="mcp.serve")
        await resolved.authorize(action, context)
        try:
            value = await work()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await resolved.record_outcome(action, context, "error",
                                              {"error": f"{type(exc).__name__}: {exc}"})
            raise
        await resolved.record_outcome(action, context, "success", {})
        return value

    @server.tool()
    async def run_command(command: str, args: list[str] | None = None,
                          stdin: str | None = None,
                          timeout: float | None = None) -> dict[str, Any]:
        """Run a command in NeuroFlow's configured sandbox; exit code, reason, output."""
        async def work() -> dict[str, Any]:
            async with open_sandbox(gate=gate, actor=actor) as sandbox:
                result = await sandbox.execute(
                    command, list(args or ()),
                    stdin=stdin.encode() if stdin is not None else None, timeout=timeout)
            data = result.to_dict()
            return {key: data[key] for key in ("exit_code", "reason", "stdout", "stderr",
                                               "wall_time_ms") if key in data}

        return await guarded("run_command", {"command": command, "args": args or []}, work)

    @server.tool()
    async def store(agent_id: str, key: str, value: Any, tags: list[str] | None = None,
                    importance: float | None = None) -> dict[str, Any]:
        """Store a memory (create or replace) for ``agent_id`` under ``key``."""
        async def work() -> dict[str, Any]:
            entry = await get_memory().store_memory(agent_id, key, value, tags or None,
                                                    importance)
            return entry.to_dict()

        return await guarded("store", {"agent_id": agent_id, "key": key}, work)

    @server.tool()
    async def retrieve(agent_id: str, key: str) -> dict[str, Any] | None:
        """The memory of ``agent_id`` under ``key``, or null."""
        async def work() -> dict[str, Any] | None:
            entry = await get_memory().retrieve_memory(agent_id, key)
            return None if entry is None else entry.to_dict()

        return await guarded("retrieve", {"agent_id": agent_id, "key": key}, work)

    @server.tool()
    async def search(agent_id: str, query: str | None = None, tags: list[str] | None = None,
                     limit: int = 10) -> list[dict[str, Any]]:
        """Memories of ``agent_id`` best matching ``query`` and/or ``tags``."""
        async def work() -> list[dict[str, Any]]:
            found = await get_memory().search_memories(agent_id, query, tags or None,
                                                       limit=limit)
            return [entry.to_dict() for entry in found]

        return await guarded("search", {"agent_id": agent_id, "query": query}, work)

    @server.tool()
    async def delete(agent_id: str, key: str) -> bool:
        """Delete the memory of ``agent_id`` under ``key``; whether it existed."""
        return await guarded("delete", {"agent_id": agent_id, "key": key},
                             lambda: get_memory().delete_memory(agent_id, key))

    return server


def _gate(gate: Any) -> Any:
    if gate is False:
        return None
    if gate is not None:
        return gate
    from neuroflow.security import get_default_gate

    return get_default_gate()


def http_app(server: MCPServer, *, token: str | None) -> Any:
    """The streamable-HTTP app, refusing requests without ``Bearer <token>`` if given."""
    app = server.streamable_http_app()
    if token is None:
        return app
    expected = f"Bearer {token}".encode()

    async def guarded_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body",
                            "body": b"missing or wrong bearer token\n"})
                return
        await app(scope, receive, send)

    return guarded_app


def serve(*, stdio: bool, port: int | None, host: str, token_env: str, open_: bool,
          actor: str) -> None:
    """Run the server until interrupted (what ``neuroflow mcp serve`` calls)."""
    server = build_server(actor=actor)
    if stdio or port is None:
        server.run()
        return
    token = os.environ.get(token_env) or None
    if token is None and not open_:
        raise ConfigError(f"--http: set a token in {token_env} (clients send it as "
                          f"'Authorization: Bearer <token>'), or pass --open to serve "
                          f"without one")
    import uvicorn

    uvicorn.run(http_app(server, token=token), host=host, port=port, log_level="warning")
