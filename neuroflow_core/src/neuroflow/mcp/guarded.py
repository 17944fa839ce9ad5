"""Guard any MCP client: every tool call is an ``mcp_tool`` action judged by the gate.

``create_backend("mcp")`` wraps a client whose factory does not enforce the gate itself
in :class:`GuardedMCPClient`, so a third-party MCP backend cannot slip past the guards.
The action's target is ``"<server>/<tool>"``, which the ``tools`` guard's rules match
(``tool = "filesystem/write_*"``); the audit log records the decision and the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import anyio


def tool_action(server: str, tool: str, arguments: Mapping[str, Any] | None, actor: str,
                component: str) -> tuple[Any, Any]:
    """The :class:`Action` and :class:`ActionContext` describing one MCP tool call."""
    from neuroflow.observability.context import current_trace_id
    from neuroflow.security.model import Action, ActionContext

    action = Action(kind="mcp_tool", target=f"{server}/{tool}", actor=actor,
                    arguments=dict(arguments or {}))
    return action, ActionContext(component=component, trace_id=current_trace_id())


class GuardedMCPClient:
    """Wraps an :class:`~neuroflow.mcp.MCPClient` with an ``ActionGate``.

    Args:
        client: the client that talks to the servers.
        gate: asked before every tool call (``SecurityError`` if denied, nothing is sent)
            and told how it ended (``success``, ``error`` or ``timeout``).
        actor: who calls the tools, for the audit records.
        component: names the client in audit records (``"mcp.<name>"``).
    """

    def __init__(self, client: Any, gate: Any, *, actor: str = "user",
                 component: str = "mcp") -> None:
        self.client = client
        self._gate = gate
        self._actor = actor
        self._component = component

    async def execute_tool(self, server_name: str, tool_name: str,
                           arguments: Mapping[str, Any] | None = None, *,
                           timeout: float | None = None) -> dict[str, Any]:
        """Authorize the call, make it through the wrapped client, record the outcome.

        All of it runs in an ``execute_tool {server}/{tool}`` span (OpenTelemetry GenAI
        conventions: ``gen_ai.tool.name``, plus ``mcp.server`` and the guard decision),
        current while the request is sent, so the client can put its ``traceparent`` in
        the request's ``_meta``; it also counts in the built-in ``mcp`` metrics.
        """
        from neuroflow.observability.operations import operation

        action, context = tool_action(server_name, tool_name, arguments, self._actor,
                                      self._component)
        with operation(f"execute_tool {server_name}/{tool_name}", "mcp", "execute_tool", {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool_name,
            "gen_ai.tool.type": "extension", "mcp.server": server_name,
        }) as op:
            try:
                verdict = await self._gate.authorize(action, context)
            except BaseException as exc:
                if op.recording and getattr(exc, "verdict", None) is not None:
                    op.record_verdict("deny", exc.verdict)
                raise
            if op.recording:
                op.record_verdict("allow", verdict)
            try:
                result = await self.client.execute_tool(server_name, tool_name, arguments,
                                                         timeout=timeout)
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    await self._gate.record_outcome(action, context, "error",
                                                    {"error": f"{type(exc).__name__}: {exc}"})
                raise
            outcome = "success"
            if result.get("is_error"):
                outcome = "timeout" if result.get("timed_out") else "error"
                op.fail(outcome, str(result.get("result") or outcome)[:200])
            if op.recording:
                op.set("tool.status", "ok" if outcome == "success" else outcome)
            await self._gate.record_outcome(action, context, outcome,
                                            {"is_error": bool(result.get("is_error"))})
        return result

    async def start_from_config(self, config: Any = None) -> dict[str, Any]:
        """Forward to the wrapped client."""
        return await self.client.start_from_config(config)

    async def start_server(self, config: Any = None, /, **fields: Any) -> Any:
        """Forward to the wrapped client."""
        return await self.client.start_server(config, **fields)

    async def stop_server(self, name: str) -> None:
        """Forward to the wrapped client."""
        await self.client.stop_server(name)

    async def stop_all(self) -> None:
        """Forward to the wrapped client."""
        await self.client.stop_all()

    async def list_tools(self, server_name: str | None = None) -> list[dict[str, Any]]:
        """Forward to the wrapped client."""
        return await self.client.list_tools(server_name)

    async def ping(self, server_name: str) -> float:
        """Forward to the wrapped client."""
        return await self.client.ping(server_name)

    async def reconnect(self, server_name: str) -> Any:
        """Forward to the wrapped client."""
        return await self.client.reconnect(server_name)

    def get_all_statuses(self) -> dict[str, Any]:
        """Forward to the wrapped client."""
        return self.client.get_all_statuses()

    def __getattr__(self, name: str) -> Any:
        # Anything else the client offers (read-only helpers) passes through.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.client, name)

    async def aclose(self) -> None:
        """Close the wrapped client."""
        await self.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
