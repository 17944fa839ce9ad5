"""NeuroFlow agents in separate processes collaborate over A2A JSON-RPC on loopback: the
budget (depth, deadline, chain) holds across real hops, cycles are refused, and a timeout
cancels the remote task."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from neuroflow.a2a import AgentRegistryService, CollaborativeOrchestratorV2
from neuroflow.agent import AINativeAgent, LLMConfig

pytestmark = pytest.mark.anyio


def boss(*steps: Any) -> AINativeAgent:
    return AINativeAgent("boss", LLMConfig("scripted", extra={"script": list(steps)}),
                         gate=False)


def hops(trace: Any) -> list[tuple[str, str, str]]:
    found = []
    for entry in trace:
        found.append((entry["caller"], entry["callee"], entry["status"]))
        found += hops(entry.get("delegations", []))
    return found


@pytest.fixture
async def registry(farms, registry_url: str):
    async with AgentRegistryService(backend="sql", options={"url": registry_url}) as service:
        yield service


async def test_three_agents_in_three_processes_collaborate(registry) -> None:
    assert [a.id for a in await registry.discover_by_capability("web_search")] == [
        "researcher"]
    orchestrator = CollaborativeOrchestratorV2(
        boss({"tool": "ask_editor", "arguments": {"message": "AI trends"}},
             "Report: {last_tool_result}"),
        registry, max_depth=5, timeout_ms=30000, gate=False)
    async with orchestrator:
        result = await orchestrator.execute_with_collaboration("Research AI trends")
    assert result.response == "Report: editor(researcher heard: AI trends)"
    assert result.collaborating_agents == ("editor", "researcher")
    assert hops(result.trace) == [("boss", "editor", "ok"), ("editor", "researcher", "ok")]
    # the trace context crossed both processes: one trace id end to end
    nested = result.trace[0]["delegations"][0]
    assert result.trace[0]["trace_id"] == nested["trace_id"] == result.trace_id


async def test_depth_five_holds_across_real_hops(registry) -> None:
    orchestrator = CollaborativeOrchestratorV2(
        boss({"tool": "ask_r1", "arguments": {"message": "go"}}, "{last_tool_result}"),
        registry, max_depth=5, timeout_ms=30000, gate=False)
    async with orchestrator:
        result = await orchestrator.execute_with_collaboration("go")
    assert hops(result.trace) == [
        ("boss", "r1", "ok"), ("r1", "r2", "ok"), ("r2", "r3", "ok"), ("r3", "r4", "ok"),
        ("r4", "r5", "ok"), ("r5", "r6", "refused")]
    assert result.collaborating_agents == ("r1", "r2", "r3", "r4", "r5")
    assert "the depth limit is reached (chain boss -> r1 -> r2 -> r3 -> r4 -> r5)" in (
        result.response)


async def test_a_shallower_caller_limit_travels_with_the_request(registry) -> None:
    orchestrator = CollaborativeOrchestratorV2(
        boss({"tool": "ask_r1", "arguments": {"message": "go"}}, "{last_tool_result}"),
        registry, max_depth=2, timeout_ms=30000, gate=False)
    async with orchestrator:
        result = await orchestrator.execute_with_collaboration("go")
    assert hops(result.trace) == [("boss", "r1", "ok"), ("r1", "r2", "ok"),
                                  ("r2", "r3", "refused")]


async def test_a_cycle_across_processes_is_refused(registry) -> None:
    orchestrator = CollaborativeOrchestratorV2(
        boss({"tool": "ask_ping", "arguments": {"message": "hi"}}, "{last_tool_result}"),
        registry, gate=False)
    async with orchestrator:
        result = await orchestrator.execute_with_collaboration("hi")
    assert hops(result.trace) == [("boss", "ping", "ok"), ("ping", "pong", "ok"),
                                  ("pong", "ping", "refused")]
    assert "ping is already in the chain boss -> ping -> pong (a cycle)" in result.response


async def test_a_cycle_the_sender_does_not_check_is_refused_by_the_server(registry) -> None:
    from neuroflow import create_backend
    from neuroflow.a2a import CollaborationContext

    ping = await registry.get("ping")
    forged = CollaborationContext(chain=("ping", "x"), depth_left=3,
                                  deadline=time.time() + 30).for_delegation("y")
    async with create_backend("transport", "jsonrpc", gate=False) as transport:
        reply = await transport.send(ping.endpoint, "hi", metadata=forged, timeout=10)
    assert reply.state == "rejected"
    assert "ping refuses a request from ping -> x: it is already in the chain" in reply.text


async def test_the_timeout_holds_across_hops_and_cancels_the_remote_task(
        registry, events_file: Path) -> None:
    import anyio

    orchestrator = CollaborativeOrchestratorV2(
        boss({"tool": "ask_middle", "arguments": {"message": "think"}},
             "gave up: {last_tool_result}"),
        registry, timeout_ms=1500, gate=False)
    started = time.monotonic()
    async with orchestrator:
        result = await orchestrator.execute_with_collaboration("think")
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, elapsed
    assert hops(result.trace)[0][:2] == ("boss", "middle")
    assert hops(result.trace)[0][2] in ("timeout", "failed")
    assert result.response.startswith("gave up: error:")
    # the slow agent two processes away started and was cancelled, well before its 30 s
    with anyio.fail_after(5):
        while "cancelled" not in (events_file.read_text() if events_file.exists() else ""):
            await anyio.sleep(0.05)
    assert events_file.read_text().splitlines()[-2:] == ["started", "cancelled"]
