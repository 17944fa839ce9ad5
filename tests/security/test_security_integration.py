"""The gate in front of the real process sandbox and the real agent runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from security_helpers import KEY

from neuroflow.errors import SecurityError
from neuroflow.security import SecurityManager, verify_audit_log
from neuroflow.security.audit import AuditLogger
from neuroflow.security.guards.allowlist import AllowlistConfig, AllowlistGuard
from neuroflow.security.guards.tools import ToolRule, ToolsConfig, ToolsGuard
from neuroflow.security.rules import Effect


def make_gate(log: Path) -> SecurityManager:
    tools = ToolsConfig(rules=(ToolRule(name="no-delete", effect=Effect.DENY, tool="delete_*"),))
    return SecurityManager(
        [("allowlist", AllowlistGuard(AllowlistConfig(deny=("touch",)))),
         ("tools", ToolsGuard(tools))],
        audit=AuditLogger(log, key=KEY),
    )


def rows(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.anyio
async def test_process_sandbox_refuses_a_denied_command_before_it_runs(tmp_path: Path) -> None:
    from neuroflow.sandbox import SandboxIsolator

    log = tmp_path / "audit.log"
    gate = make_gate(log)
    sandbox = SandboxIsolator(gate=gate, actor="agent-1")
    marker = tmp_path / "marker"
    with pytest.raises(SecurityError, match=r"allowlist\.deny"):
        await sandbox.execute("touch", [str(marker)])
    assert not marker.exists()
    # (By name: as root, the run drops to a uid that cannot execute the host's own
    # interpreter under /root; `python3` resolves to one it may execute.)
    result = await sandbox.execute("python3", ["-c", "print('hi')"])
    assert result.exit_code == 0
    records = rows(log)
    assert [(r["resource"].rsplit("/", 1)[-1], r["decision"], r["outcome"]) for r in records] == [
        ("touch", "deny", None),
        ("python3", "allow", None),
        ("python3", None, "success"),
    ]
    assert all(r["actor"] == "agent-1" for r in records)
    assert verify_audit_log(log, KEY).ok


@pytest.mark.anyio
async def test_agent_tool_denied_by_rule_is_never_called(tmp_path: Path) -> None:
    from neuroflow.agent import AINativeAgent, ScriptedProvider

    log = tmp_path / "audit.log"
    called: list[str] = []
    provider = ScriptedProvider(steps=[{"tool": "delete_all", "arguments": {}}, "done"])
    agent = AINativeAgent("janitor", provider=provider, gate=make_gate(log))

    @agent.tool(name="delete_all")
    async def delete_all() -> str:
        """Delete everything."""
        called.append("delete_all")
        return "deleted"

    result = await agent.handle("clean up")
    assert called == []
    (record,) = rows(log)
    assert (record["actor"], record["action"], record["resource"]) == (
        "janitor", "tool", "delete_all")
    assert (record["decision"], record["rule"]) == ("deny", "tools.no-delete")
    assert record["trace_id"] == result.get("trace_id")
