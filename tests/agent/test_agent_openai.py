"""The ``openai`` provider against a real OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

import email.utils
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from neuroflow.agent import AINativeAgent, LLMConfig, OpenAIConfig, OpenAIProvider
from neuroflow.agent.openai import retry_delay
from neuroflow.errors import AgentError

pytestmark = pytest.mark.anyio


def config(server: Any, **fields: Any) -> LLMConfig:
    extra = {"backoff_seconds": 0.001, **fields.pop("extra", {})}
    return LLMConfig(provider="openai", model="local-test-model", base_url=server.url,
                     api_key="sk-test-123", extra=extra, **fields)


async def test_spec_section_7_against_the_local_server(openai_server: Any) -> None:
    async with AINativeAgent(name="researcher", llm_config=config(openai_server)) as agent:

        @agent.tool(name="research")
        async def research(topic: str) -> str:
            """Research a topic

            Args:
                topic: the subject to research.
            """
            return f"3 papers about {topic}"

        result = await agent.handle("Research AI trends")

    assert result["response"] == "Here is what I found: 3 papers about Research AI trends"
    [call] = result["tool_calls"]
    assert (call["name"], call["arguments"], call["result"]) == (
        "research", {"topic": "Research AI trends"}, "3 papers about Research AI trends")
    assert result["model"] == "local-test-model" and result["steps"] == 2
    assert result["usage"] == {"prompt_tokens": 22, "completion_tokens": 14, "total_tokens": 36}

    first, second = openai_server.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["Authorization"] == "Bearer sk-test-123"
    body = first["body"]
    assert body["model"] == "local-test-model" and body["tool_choice"] == "auto"
    assert body["tools"] == [{"type": "function", "function": {
        "name": "research", "description": "Research a topic",
        "parameters": {"type": "object", "additionalProperties": False, "required": ["topic"],
                       "properties": {"topic": {"type": "string",
                                                "description": "the subject to research."}}},
    }}]
    assert body["messages"] == [{"role": "user", "content": "Research AI trends"}]
    assistant, tool = second["body"]["messages"][1:]
    assert assistant["role"] == "assistant" and assistant["content"] is None
    assert assistant["tool_calls"] == [{"id": "call_0", "type": "function", "function": {
        "name": "research", "arguments": '{"topic": "Research AI trends"}'}}]
    assert tool == {"role": "tool", "tool_call_id": "call_0",
                    "content": "3 papers about Research AI trends"}


async def test_a_session_continues_over_http(openai_server: Any) -> None:
    async with AINativeAgent("chat", config(openai_server), system_prompt="Be kind.") as agent:
        await agent.handle("hello", session_id="s")
        result = await agent.handle("and more", session_id="s")
    assert result["response"] == "You said: and more"
    assert openai_server.requests[1]["body"]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "You said: hello"},
        {"role": "user", "content": "and more"},
    ]
    assert "tools" not in openai_server.requests[0]["body"]


async def test_429_with_retry_after_and_500_are_retried(openai_server: Any) -> None:
    server = openai_server
    server.replies += [
        server.Reply({"error": {"message": "slow down"}}, 429, {"Retry-After": "0"}),
        server.Reply({"error": {"message": "boom"}}, 500),
        server.Reply(server.completion("finally")),
    ]
    async with AINativeAgent("a", config(server)) as agent:
        result = await agent.handle("hi")
    assert result["response"] == "finally"
    assert len(server.requests) == 3


async def test_gives_up_after_max_retries_naming_the_last_error(openai_server: Any) -> None:
    server = openai_server
    server.replies += [server.Reply({"error": {"message": "overloaded"}}, 503)] * 3
    async with AINativeAgent("a", config(server, max_retries=1)) as agent:
        with pytest.raises(AgentError, match=r"after 2 attempt\(s\) \(max_retries=1\): "
                                             r"HTTP 503: overloaded"):
            await agent.handle("hi")
    assert len(server.requests) == 2


async def test_401_is_an_auth_error_at_once(openai_server: Any) -> None:
    server = openai_server
    server.replies.append(server.Reply({"error": {"message": "Incorrect API key"}}, 401))
    async with AINativeAgent("a", config(server)) as agent:
        with pytest.raises(AgentError) as info:
            await agent.handle("hi")
    message = str(info.value)
    assert "HTTP 401: Incorrect API key" in message
    assert "check OPENAI_API_KEY / llm.openai.api_key" in message
    assert "sk-test-123" not in message
    assert len(server.requests) == 1


async def test_other_4xx_fail_at_once_with_a_hint(openai_server: Any) -> None:
    server = openai_server
    server.replies.append(server.Reply({"error": {"message": "model not found"}}, 404))
    async with AINativeAgent("a", config(server)) as agent:
        with pytest.raises(AgentError, match=re.escape("HTTP 404: model not found (does base_url "
                                                       "end with /v1?")):
            await agent.handle("hi")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>oops</html>", "the body is not JSON: '<html>oops</html>'"),
        ({"id": "x"}, "missing field 'choices'"),
        ({"choices": []}, "missing field 'choices.0'"),
        ({"choices": [{"index": 0}]}, "missing field 'choices.0.message'"),
        ({"choices": [{"message": {"content": None, "tool_calls": [{"id": "c"}]}}]},
         "missing field 'function'"),
        ({"choices": [{"message": {"content": 5}}]}, "content is int, expected a string"),
    ],
)
async def test_malformed_responses_name_what_is_missing(
    openai_server: Any, body: Any, message: str
) -> None:
    openai_server.replies.append(openai_server.Reply(body))
    async with AINativeAgent("a", config(openai_server)) as agent:
        with pytest.raises(AgentError, match=r"malformed response from http://127\.0") as info:
            await agent.handle("hi")
    assert message in str(info.value)


async def test_bad_tool_call_json_becomes_an_error_the_model_sees(openai_server: Any) -> None:
    server = openai_server
    server.replies += [
        server.Reply(server.completion(None, [
            server.tool_call("c1", "lookup", '{"key": "a"'),
            server.tool_call("c2", "lookup", "[1, 2]"),
            server.tool_call("c3", "lookup", {"key": "b"}),
        ])),
        server.Reply(server.completion("sorry about that")),
    ]
    async with AINativeAgent("a", config(server)) as agent:

        @agent.tool
        def lookup(key: str) -> str:
            """Look a key up."""
            return f"value of {key}"

        result = await agent.handle("look up a")

    assert result["response"] == "sorry about that"
    first, second, third = result["tool_calls"]
    assert first["status"] == "error" and "not valid JSON (Expecting" in first["error"]
    assert first["arguments"] == '{"key": "a"'
    assert "expected a JSON object, got '[1, 2]'" in second["error"]
    assert third["result"] == "value of b"
    replies = [m for m in server.requests[1]["body"]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in replies] == ["c1", "c2", "c3"]
    assert replies[0]["content"].startswith("error: arguments of 'lookup' are not valid:")
    # the assistant message is sent back with the arguments exactly as the model wrote them
    sent = server.requests[1]["body"]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert sent == '{"key": "a"'


async def test_a_slow_server_times_out(openai_server: Any) -> None:
    openai_server.replies.append(openai_server.slow())
    llm = config(openai_server, timeout_seconds=0.2, max_retries=0)
    async with AINativeAgent("a", llm) as agent:
        with pytest.raises(AgentError, match=r"no reply within timeout_seconds=0.2"):
            await agent.handle("hi")


async def test_an_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens
    llm = LLMConfig(provider="openai", model="m", base_url=f"http://127.0.0.1:{port}/v1",
                    max_retries=0)
    async with AINativeAgent("a", llm) as agent:
        with pytest.raises(AgentError, match=f"cannot reach http://127.0.0.1:{port}/v1"):
            await agent.handle("hi")


async def test_environment_variables_supply_url_key_and_model(
    openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    async with AINativeAgent("a", LLMConfig(provider="openai-compatible")) as agent:
        await agent.handle("hi")
    request = openai_server.requests[0]
    assert request["headers"]["Authorization"] == "Bearer sk-from-env"
    assert request["body"]["model"] == "env-model"


async def test_configuration_file_selects_and_configures_the_provider(
    openai_server: Any,
) -> None:
    Path("neuroflow.toml").write_text(
        '[llm]\nbackend = "openai"\n'
        f'[llm.openai]\nbase_url = "{openai_server.url}"\nmodel = "toml-model"\n'
        'api_key = "sk-toml"\ntemperature = 0.2\nmax_tokens = 64\n'
        '[llm.openai.headers]\nX-Team = "research"\n'
    )
    async with AINativeAgent("a") as agent:
        await agent.handle("hi")
    # an LLMConfig's fields win over the file's, the file fills in the rest
    async with AINativeAgent("b", LLMConfig(provider="openai", model="gpt-4")) as agent:
        await agent.handle("hi")
    first, second = (r["body"] for r in openai_server.requests)
    assert (first["model"], first["temperature"], first["max_tokens"]) == ("toml-model", 0.2, 64)
    assert openai_server.requests[0]["headers"]["X-Team"] == "research"
    assert openai_server.requests[0]["headers"]["Authorization"] == "Bearer sk-toml"
    assert second["model"] == "gpt-4"
    assert openai_server.requests[1]["headers"]["Authorization"] == "Bearer sk-toml"


async def test_configuration_errors_name_the_field() -> None:
    from neuroflow.errors import ConfigError

    Path("neuroflow.toml").write_text('[llm]\nbackend = "openai"\n'
                                      '[llm.openai]\nmax_retries = "many"\n')
    with pytest.raises(ConfigError, match=r"llm\.openai\.max_retries: expected an integer"):
        AINativeAgent("a").provider  # noqa: B018 - building the provider is the test


async def test_missing_model_and_missing_key_are_explained() -> None:
    with pytest.raises(AgentError, match=re.escape("needs a model: LLMConfig(model=...)")):
        OpenAIProvider(OpenAIConfig())
    provider = OpenAIProvider(OpenAIConfig(model="gpt-4o"))
    with pytest.raises(AgentError, match=re.escape("set OPENAI_API_KEY or llm.openai.api_key")):
        await provider.complete([{"role": "user", "content": "hi"}], [])


async def test_api_keys_never_appear_in_reprs() -> None:
    llm = LLMConfig(provider="openai", model="m", api_key="sk-secret")
    options = OpenAIConfig(model="m", api_key="sk-secret")
    provider = OpenAIProvider(options)
    for text in (repr(llm), repr(options), repr(provider)):
        assert "sk-secret" not in text


def test_retry_delay_respects_retry_after_and_backs_off_with_jitter() -> None:
    assert retry_delay(1, "2", 0.5, 30) == 2.0
    assert retry_delay(1, "120", 0.5, 30) == 30  # capped
    future = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3 <= retry_delay(1, future, 0.5, 30) <= 5
    for attempt, full in ((1, 0.5), (2, 1.0), (3, 2.0), (10, 30.0)):
        delays = {retry_delay(attempt, None, 0.5, 30) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1  # jittered
    assert 0.25 <= retry_delay(1, "soon", 0.5, 30) <= 0.5  # unparseable: plain backoff


def test_provider_url_handling() -> None:
    assert OpenAIProvider(OpenAIConfig(model="m", base_url="http://h:1/v1/")).url == (
        "http://h:1/v1/chat/completions")
    full = "http://h:1/custom/chat/completions"
    assert OpenAIProvider(OpenAIConfig(model="m", base_url=full)).url == full
    body = OpenAIProvider(OpenAIConfig(model="m", extra_body={"seed": 7}))._body(
        [{"role": "user", "content": "x"}], [])
    assert json.loads(json.dumps(body)) == {"model": "m", "seed": 7,
                                            "messages": [{"role": "user", "content": "x"}]}


async def test_neuroflow_environment_variables_select_the_provider(
    openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROFLOW_LLM__BACKEND", '"openai"')
    monkeypatch.setenv("NEUROFLOW_LLM__OPENAI__BASE_URL", openai_server.url)
    monkeypatch.setenv("NEUROFLOW_LLM__OPENAI__MODEL", "env-section-model")
    async with AINativeAgent("a") as agent:
        result = await agent.handle("hi")
    assert result["response"] == "You said: hi"
    assert openai_server.requests[0]["body"]["model"] == "env-section-model"
