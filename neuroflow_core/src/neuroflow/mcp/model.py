"""What MCP clients report: server statuses, normalised tool results, errors."""

from __future__ import annotations

from typing import Any

import attrs

from neuroflow.errors import NeuroflowError


class MCPServerError(NeuroflowError):
    """A server is unknown, not connected, or failed to start; the message names it."""


@attrs.frozen(kw_only=True)
class MCPServerStatus:
    """A snapshot of one server's state (``manager.get_all_statuses()[name]``).

    Attributes:
        name: the server's name.
        connected: whether its session is up.
        transport: ``"stdio"``, ``"http"`` or ``"sse"``.
        healthy: ``False`` once a health monitor saw repeated ping failures.
        last_ping: wall-clock time (``time.time()``) of the last successful ping.
        latency_ms: that ping's round trip.
        tool_count: how many tools it offered at the last listing.
        restarts: how many times it was reconnected.
        last_error: the last problem seen (start failure, lost connection, ...).
        pid: the process id of a stdio server.
        calls: tool calls made; ``errors``: those that came back as errors.
    """

    name: str
    connected: bool
    transport: str = "stdio"
    healthy: bool = True
    last_ping: float | None = None
    latency_ms: float | None = None
    tool_count: int = 0
    restarts: int = 0
    last_error: str | None = None
    pid: int | None = None
    calls: int = 0
    errors: int = 0


def tool_result(server: str, tool: str, *, content: list[dict[str, Any]] | None = None,
                structured: Any = None, is_error: bool = False,
                error: str | None = None) -> dict[str, Any]:
    """The one shape ``execute_tool`` returns.

    ``result`` is the structured content when the server sent one (a plain value the
    server wrapped as ``{"result": value}`` is unwrapped), else the text of the content
    blocks joined by newlines (or the error message for a JSON-RPC error).
    """
    content = list(content or [])
    if error is not None:
        content = content or [{"type": "text", "text": error}]
        result: Any = error
    elif structured is not None:
        # Servers on the SDK wrap a tool's plain return value as {"result": value}.
        wrapped = isinstance(structured, dict) and list(structured) == ["result"]
        result = structured["result"] if wrapped else structured
    else:
        texts = [block.get("text", "") for block in content if block.get("type") == "text"]
        result = "\n".join(texts) if texts or not content else content
    return {"result": result, "is_error": bool(is_error or error is not None),
            "content": content, "server": server, "tool": tool}
