"""The client under trio: its sessions live in the nursery of ``async with client``."""

from __future__ import annotations

import pytest
from mcp_helpers import eventually, group_members, tiny

from neuroflow import create_backend
from neuroflow.mcp import MCPHealthMonitor, MCPServerError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_the_client_works_under_trio_inside_async_with() -> None:
    pytest.importorskip("trio", reason="trio is not installed")
    async with create_backend("mcp", gate=False) as mcp:
        status = await mcp.start_server(**tiny())
        monitor = MCPHealthMonitor(interval=0.05)
        await monitor.start_monitoring(mcp)  # runs in the client's nursery
        result = await mcp.execute_tool("tiny", "slow", {"seconds": 5}, timeout=0.3)
        assert result["timed_out"]
        assert (await mcp.execute_tool("tiny", "echo", {"text": "trio"}))["result"] == "trio"
        await eventually(lambda: monitor.get_statistics()["servers"]["tiny"]["pings"] > 2,
                         what="pings in the background")
        await monitor.stop_monitoring()
        assert monitor.get_statistics()["healthy"] == ["tiny"]
    assert not group_members(status.pid)


async def test_without_async_with_trio_gets_a_clear_error() -> None:
    pytest.importorskip("trio", reason="trio is not installed")
    mcp = create_backend("mcp", gate=False)
    with pytest.raises(MCPServerError, match="async with"):
        await mcp.start_server(**tiny())
