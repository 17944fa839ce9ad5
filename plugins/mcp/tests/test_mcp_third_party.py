"""Third-party servers from the registries, started by the tests: PyPI ``mcp-server-time``
and npm ``@modelcontextprotocol/server-filesystem`` (SPEC.md section 4, as written)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp_helpers import group_members

from neuroflow import create_backend

pytestmark = pytest.mark.anyio


async def test_mcp_server_time_from_pypi() -> None:
    pytest.importorskip("mcp_server_time", reason="mcp-server-time is not installed "
                        "(pip install 'neuroflow-mcp[test]')")
    async with create_backend("mcp", gate=False) as mcp:
        status = await mcp.start_server(name="time", command=sys.executable,
                                        args=["-m", "mcp_server_time"])
        assert status.connected and status.tool_count >= 2
        result = await mcp.execute_tool("time", "get_current_time", {"timezone": "UTC"})
        assert not result["is_error"] and result["result"]["timezone"] == "UTC"
        bad = await mcp.execute_tool("time", "get_current_time", {"timezone": "Mars/Base"})
        assert bad["is_error"] and "Mars/Base" in bad["result"]


SPEC_CONFIG = """\
servers:
  filesystem:
    command: npx
    args: ["-y", "@modelcontextprotocol/server-filesystem", "{root}"]
    startup_timeout_seconds: 180
"""


async def test_spec_section_4_runs_as_written_with_the_filesystem_server(tmp_path, npx) -> None:
    root = tmp_path.resolve()
    (root / "test.txt").write_text("from the test")
    Path("config.yaml").write_text(SPEC_CONFIG.format(root=root))
    from neuroflow.mcp import (
        MCPConfigParser,
        MCPHealthMonitor,
        MCPServerManager,
        RealMCPExecutor,
    )

    parser = MCPConfigParser()
    config = parser.parse_from_file("config.yaml")
    manager = MCPServerManager()
    await manager.start_from_config(config)

    statuses = manager.get_all_statuses()
    assert {name: status.connected for name, status in statuses.items()} == {
        "filesystem": True}, statuses

    result = await manager.execute_tool(
        server_name="filesystem", tool_name="read_file",
        arguments={"path": str(root / "test.txt")},
    )
    assert "from the test" in str(result["result"]) and not result["is_error"]

    executor = RealMCPExecutor()
    await executor.start_server(
        name="filesystem",
        server_type="filesystem",
        command="npx",
        args=["-y", "@modelcontextprotocol/server-filesystem", str(root)],
    )
    result = await executor.execute_tool(
        server_name="filesystem", tool_name="write_file",
        arguments={"path": str(root / "test.txt"), "content": "Hello"},
    )
    assert not result["is_error"] and (root / "test.txt").read_text() == "Hello"
    outside = await executor.execute_tool(
        server_name="filesystem", tool_name="read_file", arguments={"path": "/etc/hostname"})
    assert outside["is_error"]  # the server's own sandbox, reported in the one shape

    monitor = MCPHealthMonitor()
    await monitor.start_monitoring(executor)
    stats = monitor.get_statistics()
    assert stats["healthy"] == ["filesystem"] and stats["unhealthy"] == []

    groups = [s.pid for m in (manager, executor) for s in m.get_all_statuses().values()]
    assert all(len(group_members(pid)) >= 2 for pid in groups)  # npx and its node child
    await monitor.stop_monitoring()
    await executor.stop_all()
    await manager.stop_all()
    assert not [pid for pgid in groups for pid in group_members(pgid)]
