"""What an MCP client backend must implement (kind ``mcp``, section ``[mcp]``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable


@runtime_checkable
class MCPClient(Protocol):
    """Manages MCP servers and calls their tools.

    ``MCPServerManager()`` and ``RealMCPExecutor()`` are built by
    ``create_backend("mcp")``, so every backend satisfies this and is put behind the
    security gate (each ``execute_tool`` is an ``mcp_tool`` action ``"<server>/<tool>"``).
    """

    async def start_from_config(self, config: Any = None) -> dict[str, Any]:
        """Start every enabled server of ``config``: an ``MCPSettings``, a mapping of
        ``MCPServerConfig``, a file path (YAML, ``mcpServers`` JSON, TOML) or ``None`` for
        ``[mcp.servers]``.  Servers start concurrently; returns ``{name: MCPServerStatus}``
        (a server that failed to start is reported there, not raised)."""
        ...

    async def start_server(self, config: Any = None, /, **fields: Any) -> Any:
        """Start one server from an ``MCPServerConfig`` or its fields (``name=``,
        ``command=``, ``args=``, ``server_type=``...); returns its ``MCPServerStatus``."""
        ...

    async def stop_server(self, name: str) -> None:
        """Stop server ``name``; no process of it is left behind."""
        ...

    async def stop_all(self) -> None:
        """Stop every server concurrently; no process is left behind."""
        ...

    async def list_tools(self, server_name: str | None = None) -> list[dict[str, Any]]:
        """Every tool of one server (or of all connected ones), all pages, each as
        ``{"name", "server", "tool", "description", "input_schema", "read_only"}``
        (``read_only``: the server marks the tool ``readOnlyHint``); ``name`` is unique
        across servers under the client's name-collision policy."""
        ...

    async def execute_tool(self, server_name: str, tool_name: str,
                           arguments: Mapping[str, Any] | None = None, *,
                           timeout: float | None = None) -> dict[str, Any]:
        """Call a tool; returns ``{"result", "is_error", "content", "server", "tool"}``
        whether the tool reported an error or the server answered with a JSON-RPC error.
        A request that outlives ``timeout`` (default: the server's) is cancelled and
        comes back with ``is_error`` true."""
        ...

    async def ping(self, server_name: str) -> float:
        """Ping a server; returns the round trip in milliseconds (raises if it is down)."""
        ...

    async def reconnect(self, server_name: str) -> Any:
        """Restart a server's connection; returns its new ``MCPServerStatus``."""
        ...

    def get_all_statuses(self) -> dict[str, Any]:
        """``{name: MCPServerStatus}`` for every server started."""
        ...

    async def aclose(self) -> None:
        """Stop every server (as :meth:`stop_all`)."""
        ...

    async def __aenter__(self) -> Self:
        ...

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        ...
