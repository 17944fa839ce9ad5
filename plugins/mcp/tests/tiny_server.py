"""A tiny MCP server on the official SDK's server API, started by the tests over stdio.

Tools: ``echo``, ``add`` (structured), ``slow`` (sleeps; writes a marker file only if it
ran to the end), ``fail`` (raises: the server reports ``isError``), ``garbage`` (writes a
non-JSON line to stdout, then answers), ``grow`` (adds a tool and notifies the client),
``auth_header`` (what an HTTP client sent); with ``TINY_ECHO_META=1`` also ``echo_meta``
(the request's ``_meta``, as JSON).  ``TINY_HTTP_PORT`` / ``TINY_SSE_PORT`` serve
streamable HTTP / SSE on loopback.
With ``TINY_GRANDCHILD=<file>`` it starts a ``sleep`` grandchild first and writes its pid
there, the way ``npx`` leaves a node process below itself.
"""

from __future__ import annotations

import json
import os
import subprocess

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("tiny")


@server.tool()
def echo(text: str) -> str:
    """Return ``text``."""
    return text


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> dict[str, int]:
    """Add two numbers."""
    return {"sum": a + b}


@server.tool()
async def slow(seconds: float, marker: str = "") -> str:
    """Sleep ``seconds``; then write ``marker`` (a file path) if given."""
    await anyio.sleep(seconds)
    if marker:
        with open(marker, "w") as fh:
            fh.write("finished")
    return "done"


@server.tool()
def fail(message: str) -> str:
    """Always raise."""
    raise ValueError(message)


@server.tool()
def garbage() -> str:
    """Write a line that is not JSON-RPC to stdout, then answer normally."""
    os.write(1, b"this is not json\n")  # fd 1 itself: the SDK guards sys.stdout
    return "still here"


@server.tool()
async def grow(ctx: Context) -> str:
    """Add a tool named ``extra`` and tell the client the list changed."""
    server.add_tool(lambda: "extra!", name="extra", description="added later")
    await ctx.session.send_tool_list_changed()
    return "grown"


@server.tool()
def auth_header(ctx: Context) -> str:
    """The Authorization header of the HTTP request that carried this call."""
    request = getattr(ctx.request_context, "request", None)
    headers = getattr(request, "headers", None) or {}
    return headers.get("authorization", "none")


if os.environ.get("TINY_ECHO_META"):
    @server.tool()
    def echo_meta(ctx: Context) -> str:
        """The ``_meta`` of the request that carried this call, as JSON."""
        return json.dumps(dict(ctx.request_context.meta or {}), sort_keys=True)


for index in range(int(os.environ.get("TINY_EXTRA_TOOLS", "0"))):
    server.add_tool(lambda index=index: str(index), name=f"extra_{index}")


if __name__ == "__main__":
    pidfile = os.environ.get("TINY_GRANDCHILD")
    if pidfile:
        child = subprocess.Popen(["sleep", "600"])
        with open(pidfile, "w") as fh:
            fh.write(str(child.pid))
    if os.environ.get("TINY_HTTP_PORT"):
        server.run("streamable-http", host="127.0.0.1", port=int(os.environ["TINY_HTTP_PORT"]))
    elif os.environ.get("TINY_SSE_PORT"):
        server.run("sse", host="127.0.0.1", port=int(os.environ["TINY_SSE_PORT"]))
    else:
        server.run()
