"""The A2A view lists the agents of the configured registry (a SQL one shared by processes)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from console_helpers import start_console

from neuroflow.a2a import AgentRegistration, AgentRegistryService
from neuroflow.config import reload_config


def test_the_a2a_view_lists_agents_another_process_registered(tmp_path: Path) -> None:
    pytest.importorskip("neuroflow_a2a", reason="the SQL registry needs neuroflow[a2a]")
    (tmp_path / "neuroflow.toml").write_text(
        '[registry]\nbackend = "sql"\n\n[registry.sql]\nurl = "sqlite:///agents.db"\n')
    os.chdir(tmp_path)
    reload_config()

    async def register() -> None:
        async with AgentRegistryService() as registry:
            await registry.register(AgentRegistration(
                id="researcher", name="Research Agent", description="finds things",
                endpoint="http://127.0.0.1:8081", capabilities=["web_search"]))

    anyio.run(register)
    console = start_console(tmp_path, "--db", str(tmp_path / "console.sqlite3"))
    try:
        view = console.get("/api/a2a").json()
    finally:
        console.stop()
    assert view["backend"] == "sql" and view["detail"] == ""
    [agent] = view["agents"]
    assert agent["id"] == "researcher" and agent["capabilities"] == ["web_search"]
