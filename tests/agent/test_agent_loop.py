"""The tool loop with the scripted provider: SPEC §7's shape, errors, limits, sessions, gates."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import neuroflow
from neuroflow.agent import AINativeAgent, LLMConfig, ScriptedProvider, SessionStore
from neuroflow.agent.scripted import MODEL_NAME, ScriptedConfig
from neuroflow.errors import AgentError, BackendNotFoundError, ConfigError, SecurityError
from neuroflow.security.model import Action, ActionContext, Verdict

pytestmark = pytest.mark.anyio


def scripted(*steps: Any, loop: bool = False) -> LLMConfig:
    return LLMConfig(provider="scripted", model="script", extra={"script": list(steps),
                                                                  "loop": loop})


async def test_spec_section_7_shape_with_the_scripted_provider() -> None:
    agent = AINativeAgent(
        name="researcher",
        llm_config=scripted(
            {"tool": "research", "arguments": {"topic": "{last_user_message}"}},
            "Report: {last_tool_result}",
        ),
    )
    stored: dict[str, Any] = {}

    @agent.tool(name="research")
    async def research(topic: str) -> str:
        """Research a topic"""
        stored[f"research:{topic}"] = {"result": f"findings about {topic}"}
        return f"findings about {topic}"

    result = await agent.handle("AI trends")
    assert result["response"] == "Report: findings about AI trends"
    assert stored == {"research:AI trends": {"result": "findings about AI trends"}}
    [call] = result["tool_calls"]
    assert call["name"] == "research" and call["arguments"] == {"topic": "AI trends"}
    assert call["status"] == "ok" and call["result"] == "findings about AI trends"
    assert "error" not in call and call["duration_ms"] >= 0
    assert re.fullmatch(r"[0-9a-f]{32}", result["trace_id"])
    assert result["steps"] == 2 and result["finish_reason"] == "stop"
    assert result["model"] == MODEL_NAME
    assert result["session_id"]


async def test_top_level_names_are_the_agent_package_names() -> None:
    assert neuroflow.AINativeAgent is AINativeAgent
    assert neuroflow.LLMConfig is LLMConfig


async def test_sync_tools_run_and_non_string_results_are_sent_as_json() -> None:
    seen: list[str] = []
    provider = ScriptedProvider(steps=[
        {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}},
                        {"name": "info", "arguments": {}}]},
        "{tool_results}",
    ])
    agent = AINativeAgent("calc", provider=provider)

    @agent.tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        seen.append(threading.current_thread().name)
        return a + b

    @agent.tool
    def info() -> dict[str, Any]:
        """Describe the calculator."""
        return {"name": "calc", "ops": ["add"]}

    result = await agent.handle("2 + 3?")
    assert [c["result"] for c in result["tool_calls"]] == [5, {"name": "calc", "ops": ["add"]}]
    assert result["response"] == '5\n{"name": "calc", "ops": ["add"]}'
    assert seen and seen[0] != threading.main_thread().name  # ran in a worker thread


async def test_a_raising_tool_becomes_an_error_result_the_model_sees() -> None:
    agent = AINativeAgent("a", scripted({"tool": "fail", "arguments": {"why": "disk full"}},
                                        "The tool said: {last_tool_result}"))

    @agent.tool
    async def fail(why: str) -> str:
        """Always fails."""
        raise OSError(why)

    result = await agent.handle("go")
    [call] = result["tool_calls"]
    assert call["status"] == "error" and call["error"] == "OSError: disk full"
    assert "result" not in call
    assert result["response"] == "The tool said: error: OSError: disk full"


async def test_unknown_tools_and_bad_arguments_become_error_results() -> None:
    agent = AINativeAgent("a", scripted(
        {"tool_calls": [{"name": "nope", "arguments": {}},
                        {"name": "echo", "arguments": {"text": 5}},
                        {"name": "echo", "arguments": {"text": "hi", "loud": True}}]},
        "{tool_results}",
    ))

    @agent.tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    result = await agent.handle("x")
    errors = [c["error"] for c in result["tool_calls"]]
    assert errors[0] == "unknown tool 'nope' (tools: echo)"
    assert "text: expected string, got 5" in errors[1]
    assert "loud: unknown argument (known: text)" in errors[2]
    assert result["response"].count("error: ") == 3


async def test_per_tool_timeout_for_async_and_sync_tools() -> None:
    release = threading.Event()
    agent = AINativeAgent("a", scripted(
        {"tool_calls": [{"name": "hang", "arguments": {}}, {"name": "block", "arguments": {}}]},
        "{tool_results}",
    ), tool_timeout_seconds=0.1)

    @agent.tool
    async def hang() -> str:
        """Never returns."""
        await anyio.sleep(60)
        return "never"

    @agent.tool
    def block() -> str:
        """Blocks its worker thread until released."""
        release.wait(30)
        return "late"

    try:
        result = await agent.handle("x")
    finally:
        release.set()
    statuses = [(c["status"], c["error"]) for c in result["tool_calls"]]
    assert statuses == [
        ("timeout", "tool 'hang' timed out after tool_timeout_seconds=0.1"),
        ("timeout", "tool 'block' timed out after tool_timeout_seconds=0.1"),
    ]
    assert result["finish_reason"] == "stop"


async def test_max_steps_stops_a_model_that_keeps_calling_tools() -> None:
    calls: list[int] = []
    agent = AINativeAgent("a", scripted({"tool": "tick", "arguments": {}}, loop=True),
                          max_steps=3)

    @agent.tool
    def tick() -> int:
        """Count."""
        calls.append(1)
        return len(calls)

    result = await agent.handle("loop forever")
    assert result["steps"] == 3 and len(calls) == 3
    assert result["finish_reason"] == "max_steps"
    assert "max_steps=3" in result["response"]
    # the turn is kept whole: each call has its reply, so the session can continue
    history = agent.sessions.history(result["session_id"])
    assert [m["role"] for m in history] == ["user"] + ["assistant", "tool"] * 3


async def test_deadline_raises_with_the_partial_result_and_keeps_no_turn() -> None:
    agent = AINativeAgent("a", scripted({"tool": "quick", "arguments": {}},
                                        {"tool": "slow", "arguments": {}}, "done"),
                          deadline_seconds=0.2, tool_timeout_seconds=30)

    @agent.tool
    def quick() -> str:
        """Fast."""
        return "ok"

    @agent.tool
    async def slow() -> str:
        """Slower than the deadline."""
        await anyio.sleep(30)
        return "never"

    with pytest.raises(AgentError, match=r"deadline_seconds=0.2 passed after 2 model call\(s\)"
                       ) as info:
        await agent.handle("x", session_id="s1")
    partial = info.value.result  # type: ignore[attr-defined]
    assert [c["name"] for c in partial["tool_calls"]] == ["quick"]
    assert partial["finish_reason"] == "deadline"
    assert "s1" not in agent.sessions


async def test_cancellation_propagates_into_the_tool_and_keeps_no_turn() -> None:
    started = anyio.Event()
    cancelled: list[bool] = []
    gate = RecordingGate(deny=set())
    agent = AINativeAgent("a", scripted({"tool": "wait", "arguments": {}}, "done"), gate=gate)

    @agent.tool
    async def wait() -> str:
        """Waits to be cancelled."""
        started.set()
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise
        return "never"

    async with anyio.create_task_group() as tg:
        tg.start_soon(agent.handle, "x", "s1")
        await started.wait()
        tg.cancel_scope.cancel()
    assert cancelled == [True]
    assert "s1" not in agent.sessions
    assert [(t, o) for t, o, _ in gate.outcomes] == [("wait", "cancelled")]


async def test_sessions_continue_and_are_separate() -> None:
    agent = AINativeAgent("a", scripted("first answer", "second answer"),
                          system_prompt="Be brief.")
    one = await agent.handle("hello", session_id="s1")
    two = await agent.handle("and again", session_id="s1")
    other = await agent.handle("hello", session_id="s2")
    assert (one["response"], two["response"], other["response"]) == (
        "first answer", "second answer", "first answer")
    assert [m["content"] for m in agent.sessions.history("s1")] == [
        "hello", "first answer", "and again", "second answer"]
    generated = await agent.handle("no id")
    assert generated["session_id"] not in ("s1", "s2")
    assert generated["trace_id"] != one["trace_id"]


async def test_scripted_provider_says_it_ran_out_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = AINativeAgent("a", scripted("only"))
    with caplog.at_level(logging.WARNING, logger="neuroflow.agent"):
        await agent.handle("1", session_id="s")
        result = await agent.handle("2", session_id="s")
    assert result["response"].startswith("[scripted model] the script has run out")
    assert "not a real model" in result["response"]
    warnings = [r for r in caplog.records if "not from a real model" in r.getMessage()]
    assert len(warnings) == 1


async def test_scripted_provider_from_a_json_file_through_configuration() -> None:
    Path("script.json").write_text(json.dumps([
        {"tool": "shout", "arguments": {"text": "{last_user_message}"}},
        {"text": "{last_tool_result}!"},
    ]))
    Path("neuroflow.toml").write_text('[llm]\nbackend = "scripted"\n'
                                      '[llm.scripted]\nscript = "script.json"\n')
    agent = AINativeAgent("a")

    @agent.tool
    def shout(text: str) -> str:
        """Upper-case."""
        return text.upper()

    assert (await agent.handle("hey"))["response"] == "HEY!"


async def test_bad_scripts_and_unknown_providers_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="step 0: unknown key"):
        ScriptedProvider(steps=[{"say": "x"}])
    with pytest.raises(ConfigError, match=r"step 1.tool_calls\[0\]"):
        ScriptedProvider(steps=["ok", {"tool_calls": [{"arguments": {}}]}])
    Path("bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match=re.escape("script: 'bad.json' is not valid JSON")):
        ScriptedProvider(ScriptedConfig(script="bad.json"))
    with pytest.raises(ConfigError, match=re.escape("script: cannot read 'missing.json'")):
        ScriptedProvider(ScriptedConfig(script="missing.json"))
    with pytest.raises(BackendNotFoundError, match="unknown LLM provider 'nope'"):
        await AINativeAgent("a", LLMConfig(provider="nope")).handle("x")
    with pytest.raises(ConfigError, match=re.escape("extra: 'temperature_x' is not an option")):
        await AINativeAgent("a", LLMConfig("scripted", extra={"temperature_x": 1})).handle("x")


async def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(AgentError, match="max_steps must be an integer >= 1, got 0"):
        AINativeAgent("a", max_steps=0)
    with pytest.raises(AgentError, match="deadline_seconds must be a number > 0"):
        AINativeAgent("a", deadline_seconds=-1)
    with pytest.raises(AgentError, match="llm_config must be an LLMConfig, got dict"):
        AINativeAgent("a", {"provider": "openai"})  # type: ignore[arg-type]
    with pytest.raises(AgentError, match="gate must be an ActionGate"):
        AINativeAgent("a", gate=object())
    with pytest.raises(AgentError, match="session_id must be a non-empty string, got 7"):
        await AINativeAgent("a").handle("x", session_id=7)  # type: ignore[arg-type]


def test_session_store_is_bounded() -> None:
    store = SessionStore(max_sessions=2, max_messages=4)
    store.append("a", [{"role": "user", "content": "1"}, {"role": "assistant", "content": "1"}])
    store.append("b", [{"role": "user", "content": "x"}])
    store.history("a")  # touch a: b becomes the least recently used
    store.append("c", [{"role": "user", "content": "y"}])
    assert "b" not in store and "a" in store and len(store) == 2
    store.append("a", [{"role": "user", "content": "2"},
                       {"role": "assistant", "content": None, "tool_calls": []},
                       {"role": "tool", "content": "r"}])
    # five messages > 4: the oldest whole turn goes, never half a turn
    assert [m["content"] for m in store.history("a")] == ["2", None, "r"]


# --- the gate ------------------------------------------------------------------------


class RecordingGate:
    """A minimal ActionGate: denies the tools named in ``deny``, records everything."""

    def __init__(self, deny: set[str]) -> None:
        self.deny = deny
        self.authorized: list[tuple[Action, ActionContext]] = []
        self.outcomes: list[tuple[str, str, Mapping[str, Any]]] = []

    async def authorize(self, action: Action, context: ActionContext) -> Verdict:
        self.authorized.append((action, context))
        if action.target in self.deny:
            verdict = Verdict.deny("tools.deny-delete", f"tool {action.target!r} is not allowed")
            error = SecurityError(f"{verdict.rule}: {verdict.reason}")
            error.verdict = verdict  # type: ignore[attr-defined]
            raise error
        return Verdict.allow("tools.allow")

    async def record_outcome(
        self, action: Action, context: ActionContext, outcome: str, details: Mapping[str, Any]
    ) -> None:
        self.outcomes.append((action.target, outcome, dict(details)))


async def test_gate_denial_becomes_an_error_result_and_outcomes_are_recorded() -> None:
    gate = RecordingGate(deny={"delete"})
    ran: list[str] = []
    agent = AINativeAgent("ops", scripted(
        {"tool_calls": [{"name": "delete", "arguments": {"path": "/etc"}},
                        {"name": "read", "arguments": {"path": "/tmp/x"}}]},
        "{tool_results}",
    ), gate=gate)

    @agent.tool
    def delete(path: str) -> str:
        """Delete a file."""
        ran.append("delete")
        return "deleted"

    @agent.tool
    def read(path: str) -> str:
        """Read a file."""
        ran.append("read")
        return "contents"

    result = await agent.handle("clean up", session_id="s9")
    assert ran == ["read"]
    denied, allowed = result["tool_calls"]
    assert denied["status"] == "denied"
    assert denied["error"] == "denied by tools.deny-delete: tool 'delete' is not allowed"
    assert allowed["status"] == "ok"
    assert result["response"] == (
        "error: denied by tools.deny-delete: tool 'delete' is not allowed\ncontents")
    action, context = gate.authorized[0]
    assert (action.kind.value, action.target, action.actor) == ("tool", "delete", "ops")
    assert action.arguments == {"path": "/etc"}
    assert (context.session_id, context.trace_id, context.component) == (
        "s9", result["trace_id"], "agent")
    assert [(t, o) for t, o, _ in gate.outcomes] == [("read", "success")]


async def test_a_bare_security_error_is_still_reported_as_denied() -> None:
    class Closed(RecordingGate):
        async def authorize(self, action: Action, context: ActionContext) -> Verdict:
            raise SecurityError("audit log cannot be written")

    agent = AINativeAgent("a", scripted({"tool": "t", "arguments": {}}, "{last_tool_result}"),
                          gate=Closed(set()))

    @agent.tool
    def t() -> str:
        """Never runs."""
        raise AssertionError("must not run")

    result = await agent.handle("x")
    assert result["response"] == "error: denied: audit log cannot be written"


# --- tracing -------------------------------------------------------------------------


class RecordingTracer:
    """Any object with span(name, attributes=...) will do."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
        record = {"name": name, **(attributes or {})}
        self.spans.append(record)
        tracer = self

        class Span:
            trace_id = "ab" * 16

            def set_attribute(self, key: str, value: Any) -> None:
                record[key] = value

        _ = tracer
        yield Span()


async def test_a_duck_typed_tracer_gets_spans_and_gives_the_trace_id() -> None:
    tracer = RecordingTracer()
    agent = AINativeAgent("a", scripted({"tool": "t", "arguments": {}}, "done"), tracer=tracer)

    @agent.tool
    def t() -> str:
        """Tool."""
        return "x"

    result = await agent.handle("x")
    assert result["trace_id"] == "ab" * 16
    names = [s["name"] for s in tracer.spans]
    assert names == ["invoke_agent a", "chat script", "execute_tool t", "chat script"]
    tool_span = tracer.spans[2]
    assert tool_span["tool.name"] == "t" and tool_span["tool.status"] == "ok"
    assert tracer.spans[0]["agent.finish_reason"] == "stop"


async def test_the_observability_tracing_service_nests_tool_spans_under_handle() -> None:
    from neuroflow.observability import TracingService

    tracing = TracingService(service_name="agent-test", backend="local", config={})
    await tracing.start()
    agent = AINativeAgent("a", scripted({"tool": "t", "arguments": {}}, "done"), tracer=tracing)

    @agent.tool
    async def t() -> str:
        """Opens its own span inside the tool span."""
        with tracing.span("inside_tool") as span:
            span.set_attribute("k", "v")
            return span.trace_id

    result = await agent.handle("x")
    await tracing.stop()
    assert result["tool_calls"][0]["result"] == result["trace_id"]


class EchoProvider:
    """A third-party provider: answers with the last user message."""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    async def complete(self, messages: Any, tools: Any) -> Any:
        from neuroflow.agent import Completion

        return Completion(text=f"echo: {messages[-1]['content']}", model="echo-1")


class EchoPlugin:
    """Registers ``echo`` through the same hook the built-in providers use."""

    @neuroflow.hookimpl
    def neuroflow_backends(self) -> list[neuroflow.BackendSpec]:
        return [neuroflow.BackendSpec(name="echo", kind="llm", factory=EchoProvider)]


async def test_a_plugin_provider_is_selected_by_name() -> None:
    neuroflow.get_plugin_manager().register(EchoPlugin(), name="echo-plugin")
    result = await AINativeAgent("a", LLMConfig(provider="echo", model="x")).handle("ping")
    assert (result["response"], result["model"]) == ("echo: ping", "echo-1")
