"""The agent behind the real security gate: a denied tool never runs and is audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroflow.agent import AINativeAgent, LLMConfig
from neuroflow.security.audit import AuditLogger
from neuroflow.security.guards.tools import ToolRule, ToolsConfig, ToolsGuard
from neuroflow.security.manager import SecurityManager

pytestmark = pytest.mark.anyio


async def test_security_manager_denies_a_tool_and_the_audit_log_shows_it(
    tmp_path: Path,
) -> None:
    rules = ToolsConfig(rules=(ToolRule(name="no-delete", effect="deny", tool="delete"),))
    audit = AuditLogger(output_file=tmp_path / "audit.log")
    gate = SecurityManager([("tools", ToolsGuard(rules))], audit=audit)
    ran: list[str] = []
    agent = AINativeAgent("ops", LLMConfig("scripted", extra={"script": [
        {"tool_calls": [{"name": "delete", "arguments": {"path": "/etc"}},
                        {"name": "read", "arguments": {"path": "/tmp/x"}}]},
        "{tool_results}",
    ]}), gate=gate)

    @agent.tool
    def delete(path: str) -> str:
        """Delete a file."""
        ran.append("delete")
        return "deleted"

    @agent.tool
    def read(path: str) -> str:
        """Read a file."""
        ran.append("read")
        return "contents"

    result = await agent.handle("tidy up", session_id="s1")
    audit.close()

    assert ran == ["read"]
    assert result["tool_calls"][0]["error"] == (
        "denied by tools.no-delete: agent 'ops' may not call tool 'delete'")
    assert result["response"].startswith("error: denied by tools.no-delete")
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    summary = [(r["event"], r["resource"], r["decision"], r["rule"], r["outcome"])
               for r in records]
    assert summary == [
        ("guard_decision", "delete", "deny", "tools.no-delete", None),
        ("guard_decision", "read", "allow", "level.standard", None),
        ("action_outcome", "read", None, None, "success"),
    ]
    assert {r["trace_id"] for r in records} == {result["trace_id"]}
    assert all(r["actor"] == "ops" and r["action"] == "tool" for r in records)
    assert records[0]["details"]["session_id"] == "s1"
