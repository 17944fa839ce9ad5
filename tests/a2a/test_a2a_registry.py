"""The agent registry in core: registration, discovery over capabilities, skills and tags,
heartbeats and time to live, cards from served agents, and clear errors."""

from __future__ import annotations

import time

import attrs
import pytest

from neuroflow.a2a import (
    AgentNotFoundError,
    AgentRegistration,
    AgentRegistryService,
    MemoryRegistryConfig,
)
from neuroflow.errors import ConfigError

pytestmark = pytest.mark.anyio


async def test_register_and_discover_by_capability_skill_and_tag() -> None:
    registry = AgentRegistryService(backend="memory")
    await registry.start()
    await registry.register(AgentRegistration(
        id="researcher", name="Research Agent", endpoint="http://localhost:8081",
        capabilities=["web_search", "research"]))
    await registry.register(AgentRegistration(
        id="writer", endpoint="http://localhost:8082", skills=["write_report"],
        tags=["Writing"]))
    await registry.register(AgentRegistration(
        id="coder", endpoint="http://localhost:8083", capabilities=["code"],
        tags=["research"]))
    assert [a.id for a in await registry.discover_by_capability("web_search")] == ["researcher"]
    assert [a.id for a in await registry.discover_by_capability("RESEARCH")] == [
        "coder", "researcher"]
    assert [a.id for a in await registry.discover_by_capability("write_report")] == ["writer"]
    assert [a.id for a in await registry.discover_by_capability("writing")] == ["writer"]
    assert await registry.discover_by_capability("cooking") == []
    assert [a.id for a in await registry.list_agents()] == ["coder", "researcher", "writer"]
    await registry.stop()


async def test_replacing_a_registration_reindexes_it() -> None:
    async with AgentRegistryService(backend="memory") as registry:
        await registry.register(AgentRegistration(id="a", capabilities=["old"]))
        await registry.register(AgentRegistration(id="a", capabilities=["new"]))
        assert await registry.discover_by_capability("old") == []
        assert [a.id for a in await registry.discover_by_capability("new")] == ["a"]
        assert await registry.unregister("a") is True
        assert await registry.unregister("a") is False
        assert await registry.discover_by_capability("new") == []
        with pytest.raises(AgentNotFoundError, match="no registered agent has id 'a'"):
            await registry.get("a")


async def test_an_agent_without_heartbeats_drops_out_and_a_heartbeat_keeps_it() -> None:
    async with AgentRegistryService(backend="memory") as registry:
        await registry.register(AgentRegistration(id="short", capabilities=["x"],
                                                  ttl_seconds=0.3))
        await registry.register(AgentRegistration(id="kept", capabilities=["x"],
                                                  ttl_seconds=0.3))
        await registry.register(AgentRegistration(id="forever", capabilities=["x"]))
        import anyio

        await anyio.sleep(0.2)
        await registry.heartbeat("kept")
        await anyio.sleep(0.2)
        assert [a.id for a in await registry.discover_by_capability("x")] == ["forever", "kept"]
        assert [a.id for a in await registry.list_agents()] == ["forever", "kept"]
        assert (await registry.get("short")).id == "short"  # still stored until purged
        assert await registry.purge_expired() == 1
        with pytest.raises(AgentNotFoundError):
            await registry.get("short")
        with pytest.raises(AgentNotFoundError):
            await registry.heartbeat("short")


async def test_the_registry_default_ttl_comes_from_its_options() -> None:
    registry = AgentRegistryService(backend="memory",
                                    options=MemoryRegistryConfig(default_ttl_seconds=0.2))
    async with registry:
        await registry.register(AgentRegistration(id="a", capabilities=["x"]))
        await registry.register(AgentRegistration(id="b", capabilities=["x"], ttl_seconds=60))
        import anyio

        await anyio.sleep(0.3)
        assert [a.id for a in await registry.discover_by_capability("x")] == ["b"]


async def test_register_takes_a_mapping_and_stamps_last_seen() -> None:
    async with AgentRegistryService(backend="memory") as registry:
        before = time.time()
        stored = await registry.register({"id": "m", "endpoint": "http://h:1",
                                          "capabilities": ["c"], "last_seen": 0})
        assert stored.last_seen >= before
        assert (await registry.get("m")).endpoint == "http://h:1"
        with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\]"):
            await registry.register({"id": "n", "colour": "red"})


@pytest.mark.parametrize(("fields", "message"), [
    ({"id": ""}, "id: expected 1-128 letters"),
    ({"id": "a b"}, "id: expected 1-128 letters"),
    ({"id": "a", "endpoint": "ftp://x"}, "endpoint: expected an http"),
    ({"id": "a", "capabilities": "web_search"}, "expected a list of strings, got the string"),
    ({"id": "a", "capabilities": ["ok", 3]}, "got 3 in it"),
    ({"id": "a", "ttl_seconds": 0}, "ttl_seconds: expected a number of seconds > 0"),
])
def test_a_bad_registration_names_its_field(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgentRegistration(**fields)


async def test_discovery_rejects_an_empty_capability() -> None:
    async with AgentRegistryService(backend="memory") as registry:
        with pytest.raises(ConfigError, match="capability: expected a non-empty string"):
            await registry.discover_by_capability("  ")


async def test_register_by_card_of_an_agent_served_in_process() -> None:
    from neuroflow.a2a import serve_agent
    from neuroflow.agent import AINativeAgent, LLMConfig

    agent = AINativeAgent("summarizer", LLMConfig("scripted", extra={"script": ["ok"]}),
                          gate=False)

    @agent.tool
    def summarize(text: str) -> str:
        """Summarize a text."""
        return text[:10]

    async with await serve_agent(agent, transport="in-process",
                                 capabilities=["summaries"]) as handle:
        async with AgentRegistryService(backend="memory") as registry:
            first = await registry.register_card(handle.url, ttl_seconds=30)
            assert (first.id, first.endpoint, first.transport) == (
                "summarizer", "local://summarizer", "in-process")
            assert first.skills == ("summarize",)
            assert set(first.tags) == {"summaries", "summarize"}
            assert first.card_url == "local://summarizer/.well-known/agent-card.json"
            found = await registry.discover_by_capability("summaries")
            assert [a.id for a in found] == ["summarizer"]
            # a second registration revalidates the cached card by its ETag
            cached_etag = registry._cards[first.card_url][0]
            fetched = await registry._transports.for_card(first.card_url).fetch_card(
                first.card_url, etag=cached_etag)
            assert fetched.not_modified and fetched.card is None
            again = await registry.register_card(handle.url)
            assert attrs.evolve(again, last_seen=0) == attrs.evolve(first, last_seen=0)
            assert again.last_seen >= first.last_seen


def test_without_the_plugin_the_network_parts_say_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroflow import create_backend
    from neuroflow.config import reload_config
    from neuroflow.errors import MissingPluginError
    from neuroflow.plugins import set_plugin_manager

    monkeypatch.setenv("NEUROFLOW_BLOCK_PLUGINS", "a2a")
    set_plugin_manager(None)
    reload_config()
    for kind, name in (("transport", "jsonrpc"), ("transport", "grpc"),
                       ("transport", "http-json"), ("registry", "sql")):
        with pytest.raises(MissingPluginError,
                           match=r"neuroflow-a2a: pip install 'neuroflow\[a2a\]'"):
            create_backend(kind, name)
    with pytest.raises(MissingPluginError, match=r"pip install 'neuroflow\[a2a\]'"):
        AgentRegistryService(backend="sql")._backend_name and create_backend("registry", "sql")
    import anyio

    from neuroflow.a2a import serve_agent
    from neuroflow.agent import AINativeAgent

    async def serve() -> None:
        await serve_agent(AINativeAgent("a", gate=False))

    with pytest.raises(MissingPluginError, match=r"pip install 'neuroflow\[a2a\]'"):
        anyio.run(serve)
