"""SPEC's ``MCPServerManager`` and ``RealMCPExecutor``: the configured MCP client.

Both build the ``mcp`` backend (plugin ``neuroflow-mcp``) through
:func:`neuroflow.create_backend`, behind the configured security gate; without the plugin
they raise :class:`~neuroflow.errors.MissingPluginError` naming the pip command.
Importing them never imports the plugin or the ``mcp`` SDK.
"""

from __future__ import annotations

from typing import Any

from neuroflow.backends import BackendKind, create_backend, install_hint
from neuroflow.errors import BackendNotFoundError, MissingPluginError


def open_mcp_client(config: Any = None, backend: str | None = None, *, gate: Any = None,
                    actor: str = "user", what: str = "MCPServerManager") -> Any:
    """Build the configured MCP client (``[mcp] backend``, default ``"mcp"``).

    Args:
        config: the backend's options (an ``MCPConfig`` or a table of its fields);
            ``None`` takes ``[mcp.<backend>]``.
        backend: the backend name; ``None`` takes ``[mcp] backend``.
        gate: the ``ActionGate`` every tool call passes; ``None`` is the gate built from
            ``[security]``, ``False`` none.
        actor: who calls the tools, for the audit records.
        what: how messages name the caller.
    """
    try:
        return create_backend(BackendKind.MCP, backend, config, gate=gate, actor=actor,
                              field=what if backend is None else None)
    except BackendNotFoundError as exc:
        name = backend or "mcp"
        hint = install_hint(BackendKind.MCP, name) or str(exc)
        raise MissingPluginError(
            f"{what} needs the {name!r} MCP client, which is not installed; {hint}") from None


class MCPServerManager:
    """Starts MCP servers, lists and calls their tools (plugin ``neuroflow-mcp``).

    ``MCPServerManager(config=None, *, gate=None, actor="user")`` returns the configured
    :class:`~neuroflow.mcp.MCPClient`: ``await manager.start_from_config("config.yaml")``,
    ``manager.get_all_statuses()``, ``await manager.execute_tool(server, tool, args)``,
    ``await manager.stop_all()``.  Every tool call passes the security gate.
    """

    def __new__(cls, config: Any = None, *, gate: Any = None, actor: str = "user") -> Any:
        """Build the installed MCP client."""
        return open_mcp_client(config, gate=gate, actor=actor, what="MCPServerManager")


class RealMCPExecutor:
    """SPEC's executor: the same client, used server by server
    (``await executor.start_server(name=..., server_type=..., command=..., args=...)``)."""

    def __new__(cls, config: Any = None, *, gate: Any = None, actor: str = "user") -> Any:
        """Build the installed MCP client."""
        return open_mcp_client(config, gate=gate, actor=actor, what="RealMCPExecutor")
