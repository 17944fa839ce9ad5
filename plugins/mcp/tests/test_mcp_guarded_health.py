"""Tool calls pass the security gate and the audit log; the health monitor notices a dead
server, reconnects it with backoff and never replays a call that may have run."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from mcp_helpers import eventually, kill_group, tiny

from neuroflow import create_backend
from neuroflow.config import reload_config
from neuroflow.errors import SecurityError
from neuroflow.mcp import MCPHealthMonitor, MCPServerManager

pytestmark = pytest.mark.anyio

KEY = "k" * 32
SECURITY = f"""
[security.audit]
file = "audit.log"
key = "{KEY}"

[[security.tools.rules]]
name = "no-echo"
effect = "deny"
agent = "*"
tool = "guarded/echo"
"""


def audit_rows() -> list[dict]:
    return [json.loads(line) for line in Path("audit.log").read_text().splitlines()]


async def test_a_rule_denying_an_mcp_tool_stops_the_call_and_is_audited() -> None:
    Path("neuroflow.toml").write_text(SECURITY)
    reload_config()
    manager = MCPServerManager(actor="agent-7")  # the gate built from [security]
    try:
        await manager.start_server(**tiny("guarded", timeout_seconds=0.5))
        with pytest.raises(SecurityError, match="no-echo"):
            await manager.execute_tool("guarded", "echo", {"text": "secret"})
        assert manager.get_all_statuses()["guarded"].calls == 0  # nothing reached the server
        assert (await manager.execute_tool("guarded", "add", {"a": 1, "b": 2}))["result"] == {
            "sum": 3}
        timed_out = await manager.execute_tool("guarded", "slow", {"seconds": 2})
        assert timed_out["timed_out"]
    finally:
        await manager.stop_all()
    rows = [json.dumps(row) for row in audit_rows()]
    denied = [r for r in rows if "guarded/echo" in r]
    assert denied and all("deny" in r and "mcp_tool" in r and "agent-7" in r for r in denied)
    assert any("guarded/add" in r and "success" in r for r in rows)
    assert any("guarded/slow" in r and "timeout" in r for r in rows)


async def test_the_monitor_reconnects_a_dead_server_and_never_replays_a_call(tmp_path) -> None:
    marker = tmp_path / "ran"
    manager = MCPServerManager(gate=False)
    monitor = MCPHealthMonitor(interval=0.2, failure_threshold=2, ping_timeout=5,
                               backoff_seconds=0.2)
    try:
        first = await manager.start_server(**tiny())
        await monitor.start_monitoring(manager)
        assert monitor.get_statistics()["healthy"] == ["tiny"]
        outcome: dict = {}

        async def in_flight() -> None:
            outcome.update(await manager.execute_tool(
                "tiny", "slow", {"seconds": 3, "marker": str(marker)}, timeout=20))

        async with anyio.create_task_group() as tg:
            tg.start_soon(in_flight)
            await anyio.sleep(0.5)
            kill_group(first.pid)
        assert outcome["is_error"]  # the call died with the server; it is not retried

        def recovered() -> bool:
            stats = monitor.get_statistics()
            return stats["restarts"] >= 1 and stats["healthy"] == ["tiny"]

        await eventually(recovered, timeout=30, what="the monitor to reconnect 'tiny'")
        status = manager.get_all_statuses()["tiny"]
        assert status.connected and status.pid != first.pid
        assert (await manager.execute_tool("tiny", "echo", {"text": "back"}))["result"] == "back"
        await anyio.sleep(3)
        assert not marker.exists(), "the call that was in flight was replayed"
        stats = monitor.get_statistics()
        assert stats["calls"] >= 2 and stats["errors"] >= 1
        assert stats["latency_ms"]["p50"] is not None and stats["servers"]["tiny"]["pings"] > 1
    finally:
        await monitor.stop_monitoring()
        await manager.stop_all()


async def test_the_monitor_marks_a_server_unhealthy_when_it_cannot_come_back() -> None:
    manager = create_backend("mcp", gate=False)
    monitor = MCPHealthMonitor(interval=0.1, failure_threshold=2, backoff_seconds=5,
                               reconnect=False)
    try:
        status = await manager.start_server(**tiny())
        await monitor.start_monitoring(manager)
        kill_group(status.pid)
        await eventually(
            lambda: monitor.get_statistics()["servers"]["tiny"]["consecutive_failures"] >= 3,
            what="three failed pings")
        stats = monitor.get_statistics()
        assert stats["unhealthy"] == ["tiny"] and stats["healthy"] == []
        assert stats["restarts"] == 0 and not monitor.is_healthy("tiny")
        assert "killed by signal 9" in stats["servers"]["tiny"]["last_error"]
    finally:
        await monitor.stop_monitoring()
        await manager.aclose()
