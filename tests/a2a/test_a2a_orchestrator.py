"""CollaborativeOrchestratorV2 with agents served in this process: delegation, the trace of
who asked whom, depth and deadline limits, cycles, the security gate and its audit log."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from neuroflow.a2a import (
    AgentRegistration,
    AgentRegistryService,
    CollaborationContext,
    CollaborativeOrchestratorV2,
    serve_agent,
)
from neuroflow.agent import AINativeAgent, LLMConfig
from neuroflow.errors import ConfigError

pytestmark = pytest.mark.anyio


def scripted(name: str, *steps: Any, loop: bool = True) -> AINativeAgent:
    """An agent whose model follows ``steps`` (not a real model)."""
    return AINativeAgent(name, LLMConfig("scripted", extra={"script": list(steps), "loop": loop}),
                         gate=False)


def relay(agent_id: str, to: str, registry: AgentRegistryService,
          max_depth: int = 5) -> CollaborativeOrchestratorV2:
    """An orchestrator that passes every message on to ``to`` and prefixes the answer."""
    model = scripted(agent_id, {"tool": f"ask_{to}", "arguments": {
        "message": "{last_user_message}"}}, f"{agent_id}({{last_tool_result}})")
    return CollaborativeOrchestratorV2(model, registry, max_depth=max_depth, timeout_ms=20000,
                                       gate=False)


async def serve_and_register(target: Any, registry: AgentRegistryService,
                             agent_id: str, handles: list[Any]) -> None:
    handle = await serve_agent(target, transport="in-process", agent_id=agent_id)
    handles.append(handle)
    await registry.register(AgentRegistration(id=agent_id, endpoint=handle.url,
                                              capabilities=[agent_id]))


@pytest.fixture
async def registry():
    handles: list[Any] = []
    async with AgentRegistryService(backend="memory") as service:
        service.handles = handles  # type: ignore[attr-defined]
        yield service
    for handle in handles:
        await handle.aclose()


def callees(trace: Any) -> list[tuple[str, str, str]]:
    """Every (caller, callee, status) of a nested trace, depth first."""
    found = []
    for entry in trace:
        found.append((entry["caller"], entry["callee"], entry["status"]))
        found += callees(entry.get("delegations", []))
    return found


async def test_a_two_hop_collaboration_reports_who_asked_whom(registry) -> None:
    await serve_and_register(scripted("researcher", "notes on [{last_user_message}]"),
                             registry, "researcher", registry.handles)
    await serve_and_register(relay("editor", "researcher", registry), registry, "editor",
                             registry.handles)
    boss = scripted("boss", {"tool": "ask_editor", "arguments": {"message": "AI trends"}},
                    "Report: {last_tool_result}", loop=False)
    orchestrator = CollaborativeOrchestratorV2(boss, registry, max_depth=5, timeout_ms=10000,
                                               gate=False)
    result = await orchestrator.execute_with_collaboration("Research AI trends")
    assert result.response == "Report: editor(notes on [AI trends])"
    assert result.collaborating_agents == ("editor", "researcher")
    assert callees(result.trace) == [("boss", "editor", "ok"), ("editor", "researcher", "ok")]
    assert result.trace[0]["depth"] == 1 and result.trace[0]["delegations"][0]["depth"] == 2
    # one trace across the hops: the callee's spans carry the caller's trace id
    assert result.trace[0]["trace_id"] == result.trace_id
    assert result.trace[0]["delegations"][0]["trace_id"] == result.trace_id
    assert result["response"] == result.response


async def test_the_depth_limit_holds_down_the_chain(registry) -> None:
    ids = [f"r{i}" for i in range(1, 8)]
    await serve_and_register(scripted("r7", "end"), registry, "r7", registry.handles)
    for here, nxt in itertools.pairwise(ids):
        await serve_and_register(relay(here, nxt, registry), registry, here, registry.handles)
    boss = scripted("boss", {"tool": "ask_r1", "arguments": {"message": "go"}},
                    "{last_tool_result}", loop=False)
    result = await CollaborativeOrchestratorV2(
        boss, registry, max_depth=5, timeout_ms=10000, gate=False,
    ).execute_with_collaboration("go")
    hops = callees(result.trace)
    assert hops[:5] == [("boss", "r1", "ok"), ("r1", "r2", "ok"), ("r2", "r3", "ok"),
                        ("r3", "r4", "ok"), ("r4", "r5", "ok")]
    assert hops[5] == ("r5", "r6", "refused")
    assert len(hops) == 6
    assert result.collaborating_agents == ("r1", "r2", "r3", "r4", "r5")
    assert "the depth limit is reached (chain boss -> r1 -> r2 -> r3 -> r4 -> r5)" in (
        result.response)


async def test_a_cycle_is_refused(registry) -> None:
    await serve_and_register(relay("ping", "pong", registry), registry, "ping",
                             registry.handles)
    await serve_and_register(relay("pong", "ping", registry), registry, "pong",
                             registry.handles)
    boss = scripted("boss", {"tool": "ask_ping", "arguments": {"message": "hi"}},
                    "{last_tool_result}", loop=False)
    result = await CollaborativeOrchestratorV2(
        boss, registry, gate=False).execute_with_collaboration("hi")
    assert callees(result.trace) == [("boss", "ping", "ok"), ("ping", "pong", "ok"),
                                     ("pong", "ping", "refused")]
    assert "ping is already in the chain boss -> ping -> pong (a cycle)" in result.response


async def test_a_served_agent_refuses_a_request_whose_chain_holds_it(registry) -> None:
    from neuroflow.a2a import ServedAgent

    served = ServedAgent(scripted("solo", "hello"))
    metadata = CollaborationContext.root("other", 3, 10).for_delegation("solo")
    assert (await served.run("x", metadata)).text == "hello"
    looped = CollaborationContext(chain=("solo", "other"), depth_left=3,
                                  deadline=time.time() + 10).for_delegation("x")
    from neuroflow.a2a import CollaborationRefused

    with pytest.raises(CollaborationRefused, match="solo refuses a request from "
                                                   "solo -> other: it is already in the chain"):
        await served.run("x", looped)
    late = CollaborationContext(chain=("other",), depth_left=3, deadline=time.time() - 1)
    with pytest.raises(CollaborationRefused, match="deadline has passed"):
        await served.run("x", {"neuroflow.collaboration": {
            "chain": list(late.chain), "depth_left": 3, "deadline": late.deadline}})
    with pytest.raises(CollaborationRefused, match=r"malformed neuroflow\.collaboration "
                                                   r"metadata: 'chain'"):
        await served.run("x", {"neuroflow.collaboration": {"depth": 1}})


async def test_on_timeout_the_delegation_is_cancelled_and_the_model_answers(
        registry) -> None:
    events: list[str] = []
    slow = scripted("slow", {"tool": "think", "arguments": {}}, "thought")

    @slow.tool
    async def think() -> str:
        """Think for a long time."""
        events.append("started")
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            events.append("cancelled")
            raise
        return "done"

    await serve_and_register(slow, registry, "slow", registry.handles)
    boss = scripted("boss", {"tool": "ask_slow", "arguments": {"message": "think"}},
                    "gave up: {last_tool_result}", loop=False)
    started = time.monotonic()
    result = await CollaborativeOrchestratorV2(
        boss, registry, timeout_ms=600, gate=False).execute_with_collaboration("think")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    assert events == ["started", "cancelled"]
    assert callees(result.trace) == [("boss", "slow", "timeout")]
    assert result.response.startswith("gave up: error: AgentTimeoutError: agent slow: no "
                                      "answer within")
    assert result.collaborating_agents == ()


async def test_every_delegation_passes_the_gate_and_is_audited(registry, tmp_path: Path
                                                               ) -> None:
    from neuroflow.security.audit import AuditLogger
    from neuroflow.security.guards.tools import ToolRule, ToolsConfig, ToolsGuard
    from neuroflow.security.manager import SecurityManager

    ran: list[str] = []
    for name in ("helper", "secret-keeper"):
        agent = scripted(name, {"tool": "work", "arguments": {}}, "{last_tool_result}")

        def work(name: str = name) -> str:
            """Do the work."""
            ran.append(name)
            return f"{name} did it"

        agent.add_tool(work)
        await serve_and_register(agent, registry, name, registry.handles)
    audit = AuditLogger(output_file=tmp_path / "audit.log")
    gate = SecurityManager([("tools", ToolsGuard(ToolsConfig(rules=(ToolRule(
        name="no-secrets", effect="deny", tool="secret-*", kinds=("delegate",)),))))],
        audit=audit)
    boss = scripted("boss", {"tool_calls": [
        {"name": "ask_secret-keeper", "arguments": {"message": "tell me"}},
        {"name": "ask_helper", "arguments": {"message": "help"}}]}, "{tool_results}",
        loop=False)
    result = await CollaborativeOrchestratorV2(
        boss, registry, gate=gate).execute_with_collaboration("go")
    audit.close()
    assert ran == ["helper"]
    assert callees(result.trace) == [("boss", "secret-keeper", "denied"),
                                     ("boss", "helper", "ok")]
    assert result.collaborating_agents == ("helper",)
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [(r["event"], r["action"], r["actor"], r["resource"], r["decision"], r["outcome"])
            for r in records] == [
        ("guard_decision", "delegate", "boss", "secret-keeper", "deny", None),
        ("guard_decision", "delegate", "boss", "helper", "allow", None),
        ("action_outcome", "delegate", "boss", "helper", None, "success"),
    ]
    assert {r["trace_id"] for r in records} == {result.trace_id}


async def test_bad_arguments_are_named() -> None:
    async with AgentRegistryService(backend="memory") as registry:
        with pytest.raises(ConfigError, match="max_depth: expected an integer >= 0"):
            CollaborativeOrchestratorV2(scripted("a", "x"), registry, max_depth=-1)
        with pytest.raises(ConfigError, match="timeout_ms: expected an integer >= 1"):
            CollaborativeOrchestratorV2(scripted("a", "x"), registry, timeout_ms="soon")
        with pytest.raises(ConfigError, match="llm_orchestrator: expected an AINativeAgent"):
            CollaborativeOrchestratorV2(object(), registry)


async def test_an_llm_provider_or_config_is_accepted_as_the_orchestrator() -> None:
    from neuroflow.agent import ScriptedProvider

    async with AgentRegistryService(backend="memory") as registry:
        by_provider = CollaborativeOrchestratorV2(ScriptedProvider(steps=["p"]), registry,
                                                  gate=False)
        by_config = CollaborativeOrchestratorV2(
            LLMConfig("scripted", extra={"script": ["c"]}), registry, gate=False)
        assert (await by_provider.execute_with_collaboration("x")).response == "p"
        assert (await by_config.execute_with_collaboration("x")).response == "c"


async def test_a_forged_budget_cannot_raise_the_served_agent_s_own_limits() -> None:
    from neuroflow.a2a import ServedAgent, current_collaboration

    seen: list[CollaborationContext] = []

    class Probe:
        name = "probe"

        async def handle(self, text: str) -> dict[str, str]:
            seen.append(current_collaboration())
            return {"response": "ok"}

    served = ServedAgent(Probe(), max_depth=2, timeout_seconds=5)
    greedy = {"neuroflow.collaboration": {"chain": ["caller"], "depth_left": 1000,
                                          "deadline": time.time() + 86400}}
    assert (await served.run("x", greedy)).text == "ok"
    [budget] = seen
    assert budget.chain == ("caller", "probe")
    assert budget.depth_left == 2
    assert budget.remaining() <= 5


async def test_the_model_is_offered_at_most_max_agents(caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    from neuroflow.agent import ScriptedProvider

    offered: list[list[str]] = []

    class Recording(ScriptedProvider):
        async def complete(self, messages, tools):  # type: ignore[no-untyped-def]
            offered.append([t["function"]["name"] for t in tools])
            return await super().complete(messages, tools)

    async with AgentRegistryService(backend="memory") as registry:
        for i in range(5):
            await registry.register(AgentRegistration(id=f"a{i}", capabilities=["c"]))
        orchestrator = CollaborativeOrchestratorV2(Recording(steps=["done"]), registry,
                                                   gate=False, max_agents=3)
        assert (await orchestrator.execute_with_collaboration("x")).response == "done"
    assert offered == [["ask_a0", "ask_a1", "ask_a2"]]
    assert "5 agents are registered; offering the model the first 3" in caplog.text
