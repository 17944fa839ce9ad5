"""The SQL agent registry on SQLite and on the system PostgreSQL behaves as the memory one:
discovery over capabilities, skills and tags, replacement, heartbeats and time to live;
two services on one database share it; bad options name their field."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from neuroflow import create_backend
from neuroflow.a2a import AgentNotFoundError, AgentRegistration, AgentRegistryService
from neuroflow.errors import ConfigError

pytestmark = pytest.mark.anyio
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_up() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def postgres() -> str:
    """The system PostgreSQL (started if it is stopped)."""
    if not _pg_up():
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"],
                       check=False, capture_output=True)
        for _ in range(50):
            if _pg_up():
                break
            time.sleep(0.2)
        else:
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is not running and could not be started")
    return PG_URL


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def options(request: pytest.FixtureRequest, tmp_path: Path
                  ) -> AsyncIterator[tuple[str, dict]]:
    """A backend name and options on a database no other test uses."""
    if request.param == "memory":
        yield "memory", {}
        return
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    if request.param == "sqlite":
        yield "sql", {"url": f"sqlite:///{tmp_path / 'agents.db'}", "table_prefix": prefix}
        return
    url = request.getfixturevalue("postgres")
    yield "sql", {"url": url, "table_prefix": prefix}
    import asyncpg

    connection = await asyncpg.connect(url)
    await connection.execute(f"DROP TABLE IF EXISTS {prefix}agent_terms, {prefix}agents")
    await connection.close()


async def test_discovery_replacement_and_removal(options) -> None:
    backend, opts = options
    async with AgentRegistryService(backend=backend, options=opts) as registry:
        await registry.register(AgentRegistration(
            id="researcher", name="Research Agent", endpoint="http://localhost:8081",
            capabilities=["web_search", "research"], metadata={"team": "blue"}))
        await registry.register(AgentRegistration(id="writer", skills=["write_report"],
                                                  tags=["Writing"]))
        await registry.register(AgentRegistration(id="coder", tags=["research"]))
        assert [a.id for a in await registry.discover_by_capability("Research")] == [
            "coder", "researcher"]
        assert [a.id for a in await registry.discover_by_capability("writing")] == ["writer"]
        found = (await registry.discover_by_capability("web_search"))[0]
        assert (found.name, found.endpoint, found.capabilities, dict(found.metadata)) == (
            "Research Agent", "http://localhost:8081", ("web_search", "research"),
            {"team": "blue"})
        await registry.register(AgentRegistration(id="coder", tags=["rust"]))
        assert [a.id for a in await registry.discover_by_capability("research")] == [
            "researcher"]
        assert await registry.unregister("coder") is True
        assert await registry.unregister("coder") is False
        assert [a.id for a in await registry.list_agents()] == ["researcher", "writer"]
        with pytest.raises(AgentNotFoundError):
            await registry.get("coder")


async def test_heartbeats_and_time_to_live(options) -> None:
    backend, opts = options
    async with AgentRegistryService(backend=backend, options=opts) as registry:
        for agent_id in ("short", "kept"):
            await registry.register(AgentRegistration(id=agent_id, capabilities=["x"],
                                                      ttl_seconds=0.4))
        await registry.register(AgentRegistration(id="forever", capabilities=["x"]))
        await anyio.sleep(0.25)
        await registry.heartbeat("kept")
        await anyio.sleep(0.25)
        assert [a.id for a in await registry.discover_by_capability("x")] == [
            "forever", "kept"]
        assert await registry.purge_expired() == 1
        with pytest.raises(AgentNotFoundError):
            await registry.heartbeat("short")


async def test_two_services_on_one_database_share_it(tmp_path: Path, postgres: str) -> None:
    for opts in ({"url": f"sqlite:///{tmp_path / 'shared.db'}"},
                 {"url": postgres, "table_prefix": f"t{uuid.uuid4().hex[:10]}_"}):
        async with AgentRegistryService(backend="sql", options=opts) as one, \
                AgentRegistryService(backend="sql", options=opts) as other:
            await one.register(AgentRegistration(id="a", capabilities=["shared"]))
            assert [a.id for a in await other.discover_by_capability("shared")] == ["a"]
            await other.unregister("a")
            assert await one.discover_by_capability("shared") == []
        if "table_prefix" in opts:
            import asyncpg

            connection = await asyncpg.connect(postgres)
            prefix = opts["table_prefix"]
            await connection.execute(f"DROP TABLE {prefix}agent_terms, {prefix}agents")
            await connection.close()


@pytest.mark.parametrize(("opts", "message"), [
    ({"url": "mysql://x"}, r"registry\.sql\.url: expected a sqlite:/// or postgresql:// URL"),
    ({"url": "sqlite:///a.db", "table_prefix": "Bad-Prefix"},
     r"registry\.sql\.table_prefix: expected lower-case letters"),
    ({"url": "sqlite:///a.db", "default_ttl_seconds": -1},
     r"registry\.sql\.default_ttl_seconds: expected a number > 0"),
    ({"uri": "sqlite:///a.db"}, r"registry\.sql\.uri"),
])
def test_bad_options_name_their_field(opts: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_backend("registry", "sql", opts)
