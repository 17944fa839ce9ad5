"""Code mode over MCP tools: a program calls a server's read-only tools, each call guarded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp_helpers import tiny

from neuroflow import AINativeAgent, LLMConfig
from neuroflow.agent import CodeMode
from neuroflow.config import reload_config
from neuroflow.mcp import MCPServerManager, use_mcp

pytestmark = pytest.mark.anyio

PROGRAM = """
from host import tools
total = sum(tools.add(a=i, b=1)["sum"] for i in range(5))
print("total", total)
print("fail offered:", hasattr(tools, "fail"))
"""


@pytest.mark.parametrize("backend", ["wasm-python", "namespace"])
async def test_a_program_calls_a_servers_read_only_tools(backend: str) -> None:
    pytest.importorskip("neuroflow_sandbox_wasm" if backend == "wasm-python"
                        else "neuroflow_sandbox_namespace", reason=f"needs the {backend} plugin")
    Path("neuroflow.toml").write_text(f"""
[security.audit]
file = "audit.log"
key = "{'k' * 32}"
""")
    reload_config()
    agent = AINativeAgent(name="coder", code_mode=CodeMode(backend=backend), llm_config=LLMConfig(
        provider="scripted", extra={"script": [
            {"tool": "run_code", "arguments": {"code": PROGRAM}}, "{last_tool_result}"]}))
    manager = MCPServerManager(actor=agent.name)
    try:
        await manager.start_server(**tiny())
        await use_mcp(agent, manager)
        assert agent.tools["add"].read_only and not agent.tools["fail"].read_only
        async with agent:
            result = await agent.handle("add up")
    finally:
        await manager.stop_all()
    [run] = result["code_runs"]
    # (0+1) + (1+1) + (2+1) + (3+1) + (4+1) = 15
    assert "total 15" in run["stdout"] and "fail offered: False" in run["stdout"]
    assert [c["status"] for c in run["calls"]] == ["ok"] * 5
    assert run["reconciliation"]["ok"], run["reconciliation"]
    records = [json.loads(row) for row in Path("audit.log").read_text().splitlines()]
    # the agent's gate and the MCP client's gate each saw every call
    assert sum(r["resource"] == "add" and r["decision"] == "allow" for r in records) == 5
    assert sum(r["resource"] == "tiny/add" and r["decision"] == "allow" for r in records) == 5
