"""Repository-wide test setup: every test starts from a clean NeuroFlow environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _clean_neuroflow_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No NEUROFLOW_* variable or stray config file from the developer's shell leaks in."""
    for name in list(os.environ):
        if name.startswith("NEUROFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    from neuroflow.config import reload_config
    from neuroflow.plugins import set_plugin_manager

    reload_config()  # the configuration snapshot and the default gate
    set_plugin_manager(None)
    yield
    reload_config()
    set_plugin_manager(None)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test under asyncio and under trio."""
    return request.param
