"""The client under trio: its sessions live in the nursery of ``async with client``."""

from __future__ import annotations

import pytest

from conftest import group_members, tiny
from neuroflow import create_backend
from neuroflow.mcp import MCPServerError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_the_client_works_under_trio_inside_async_with() -> None:
    pytest.importorskip("trio", reason="trio is not installed")
    async with create_backend("mcp", gate=False) as mcp:
        status = await mcp.start_server(**tiny())
        result = await mcp.execute_tool("tiny", "slow", {"seconds": 5}, timeout=0.3)
        assert result["timed_out"]
        assert (await mcp.execute_tool("tiny", "echo", {"text": "trio"}))["result"] == "trio"
    assert not group_members(status.pid)


async def test_without_async_with_trio_gets_a_clear_error() -> None:
    pytest.importorskip("trio", reason="trio is not installed")
    mcp = create_backend("mcp", gate=False)
    with pytest.raises(MCPServerError, match="async with"):
        await mcp.start_server(**tiny())
