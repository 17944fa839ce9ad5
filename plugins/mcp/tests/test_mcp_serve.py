"""``neuroflow mcp serve``: the official ``mcp`` client drives NeuroFlow's sandbox and
memory over stdio and over HTTP; HTTP without the token is refused; calls are audited."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_helpers import eventually

pytestmark = pytest.mark.anyio

CONFIG = f"""
[security.audit]
file = "audit.log"
key = "{'k' * 32}"

[[security.tools.rules]]
name = "no-deleting"
effect = "deny"
agent = "*"
tool = "delete"
"""


async def exercise(session: ClientSession) -> None:
    await session.initialize()
    names = {tool.name for tool in (await session.list_tools()).tools}
    assert names == {"run_command", "store", "retrieve", "search", "delete"}
    ran = await session.call_tool("run_command", {"command": "echo", "args": ["hi"]})
    assert not ran.is_error and ran.structured_content["exit_code"] == 0
    assert ran.structured_content["stdout"].strip() == "hi"
    stored = await session.call_tool("store", {"agent_id": "a", "key": "k",
                                               "value": {"x": 1}, "tags": ["t"]})
    assert not stored.is_error
    got = await session.call_tool("retrieve", {"agent_id": "a", "key": "k"})
    assert got.structured_content["result"]["value"] == {"x": 1}
    found = await session.call_tool("search", {"agent_id": "a", "tags": ["t"]})
    assert [e["key"] for e in found.structured_content["result"]] == ["k"]
    denied = await session.call_tool("delete", {"agent_id": "a", "key": "k"})
    assert denied.is_error and "no-deleting" in denied.content[0].text


def audited() -> str:
    return Path("audit.log").read_text()


async def test_the_official_client_uses_neuroflow_over_stdio() -> None:
    Path("neuroflow.toml").write_text(CONFIG)
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "neuroflow", "mcp", "serve", "--stdio"],
                                   env=dict(os.environ), cwd=os.getcwd())
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await exercise(session)
    log = audited()
    assert '"run_command"' in log and '"echo"' in log and '"mcp-client"' in log
    assert '"resource":"delete","decision":"deny","rule":"tools.no-deleting"' in log


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_http_needs_the_token_and_then_serves_the_official_client() -> None:
    Path("neuroflow.toml").write_text(CONFIG)
    command = [sys.executable, "-m", "neuroflow", "mcp", "serve", "--http"]
    refused = subprocess.run([*command, "1"], capture_output=True, text=True, timeout=120,
                             env={k: v for k, v in os.environ.items()
                                  if k != "NEUROFLOW_MCP_TOKEN"})
    assert refused.returncode == 2 and "NEUROFLOW_MCP_TOKEN" in refused.stderr
    assert "--open" in refused.stderr
    port = free_port()
    server = subprocess.Popen([*command, str(port)],
                              env={**os.environ, "NEUROFLOW_MCP_TOKEN": "s3cret"})
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        await eventually(listening, timeout=60, what="the HTTP server")
        async with httpx.AsyncClient() as http:
            bare = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            wrong = await http.post(url, json={}, headers={"Authorization": "Bearer nope"})
        assert bare.status_code == wrong.status_code == 401
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        async with create_mcp_http_client(headers={"Authorization": "Bearer s3cret"}) as h, \
                streamable_http_client(url, http_client=h) as streams, \
                ClientSession(streams[0], streams[1]) as session:
            await exercise(session)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert '"run_command"' in audited()
