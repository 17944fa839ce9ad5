"""MCP tools become agent tools: the agent's tool loop calls them through both gates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp_helpers import tiny

from neuroflow import AINativeAgent, LLMConfig
from neuroflow.config import reload_config
from neuroflow.mcp import MCPServerManager, use_mcp

pytestmark = pytest.mark.anyio


async def test_an_agent_calls_mcp_tools_through_its_gate_and_the_client_s() -> None:
    Path("neuroflow.toml").write_text(f"""
[security.audit]
file = "audit.log"
key = "{'k' * 32}"
""")
    reload_config()
    agent = AINativeAgent(name="researcher", llm_config=LLMConfig(
        provider="scripted", model="script", extra={"script": [
            {"tool": "add", "arguments": {"a": 2, "b": 3}},
            {"tool": "fail", "arguments": {"message": "nope"}},
            "sum {tool_results}",
        ]}))
    manager = MCPServerManager(actor=agent.name)
    try:
        await manager.start_server(**tiny())
        names = await use_mcp(agent, manager)
        assert {"echo", "add", "slow", "fail"} <= set(names) <= set(agent.tools)
        result = await agent.handle("add two and three")
    finally:
        await manager.stop_all()
    add, fail = result["tool_calls"]
    assert add["status"] == "ok" and add["result"] == {"sum": 5}
    assert fail["status"] == "error" and "MCPToolError" in fail["error"]
    rows = Path("audit.log").read_text().splitlines()
    records = [json.loads(row) for row in rows]
    text = "\n".join(rows)
    assert '"tiny/add"' in text and '"mcp_tool"' in text  # the client's gate
    assert any('"researcher"' in row and '"add"' in row for row in rows)  # the agent's
    assert len(records) >= 8  # two decisions and two outcomes per call


async def test_a_tool_whose_schema_uses_a_list_of_types_is_called_by_the_agent() -> None:
    import sys

    from neuroflow import create_backend

    raw = str(Path(__file__).with_name("raw_server.py"))
    agent = AINativeAgent(name="a", llm_config=LLMConfig(
        provider="scripted", model="script", extra={"script": [
            {"tool": "tool_4", "arguments": {"note": None, "count": 2}},
            {"tool": "tool_4", "arguments": {"note": "hi", "count": 0}},
            "{tool_results}",
        ]}))
    async with create_backend("mcp", gate=False) as mcp:
        await mcp.start_server(name="raw", command=sys.executable, args=[raw])
        await use_mcp(agent, mcp)
        result = await agent.handle("go")
    good, bad = result["tool_calls"]
    assert good["status"] == "ok", good
    assert good["result"] == 'ran tool_4 with {"count": 2, "note": null}'
    assert bad["status"] == "error" and "count: 0 is less than the minimum of 1" in bad["error"]
