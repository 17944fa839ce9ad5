"""MCP tools as agent tools: ``await use_mcp(agent, manager)``.

Each tool the MCP client lists becomes a :class:`~neuroflow.agent.tools.Tool` of the agent,
with the server's JSON schema as its parameters.  A call then passes the agent's gate (a
``tool`` action, named as the agent sees it) and the MCP client's (an ``mcp_tool`` action
``"<server>/<tool>"``), is audited twice over and traced with the agent's turn.  Build the
client with ``actor=agent.name`` so the ``mcp_tool`` records name the agent too.
"""

from __future__ import annotations

import re
from typing import Any

from neuroflow.errors import NeuroflowError


class MCPToolError(NeuroflowError):
    """An MCP tool answered with an error; the message is the server's."""


_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")


def agent_tool_name(listed_name: str) -> str:
    """A name agents accept (``[A-Za-z0-9_-]{1,64}``): ``"fs/read_file"`` -> ``"fs__read_file"``."""
    name = _NOT_ALLOWED.sub("_", listed_name.replace("/", "__"))
    return name[:64] or "tool"


async def use_mcp(agent: Any, client: Any, *, server_name: str | None = None,
                  read_only: bool | None = None) -> list[str]:
    """Register the tools of ``client``'s servers (or of one) on ``agent``.

    A tool counts as read-only (code mode offers those) when its server marks it
    ``readOnlyHint``; ``read_only=True`` or ``False`` decides for every tool instead.

    Names follow the client's name-collision policy, with ``/`` written ``__``.  A tool
    that reports an error raises :class:`MCPToolError` inside the agent's tool loop,
    so the model sees the server's message as the tool's error.  Returns the names
    registered.
    """
    from neuroflow.agent.tools import Tool

    names = []
    for listed in await client.list_tools(server_name):
        server, tool = listed["server"], listed["tool"]

        async def call(_server: str = server, _tool: str = tool, **arguments: Any) -> Any:
            result = await client.execute_tool(_server, _tool, arguments)
            if result["is_error"]:
                raise MCPToolError(str(result["result"]))
            return result["result"]

        schema = dict(listed["input_schema"] or {"type": "object", "properties": {}})
        name = agent_tool_name(listed["name"])
        description = listed["description"] or f"tool {tool!r} of MCP server {server!r}"
        reads = bool(listed.get("read_only")) if read_only is None else read_only
        agent.add_tool(Tool(name=name, description=description, parameters=schema,
                            function=_bind(call), is_async=True, read_only=reads))
        names.append(name)
    return names


def _bind(call: Any) -> Any:
    async def tool(**arguments: Any) -> Any:
        return await call(**arguments)

    return tool
