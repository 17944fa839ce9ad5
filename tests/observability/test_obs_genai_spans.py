"""The agent runtime's OpenTelemetry GenAI spans: names, kinds, token usage, tool spans,
and message content only when asked for."""

from __future__ import annotations

import json
from typing import Any

import pytest

from neuroflow import AINativeAgent
from neuroflow.agent.llm import Completion, LLMConfig, ToolCall
from neuroflow.observability import TracingService, span_to_dict


class CountingProvider:
    """A model that calls ``lookup`` once, then answers; it reports token usage."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, messages: list[dict[str, Any]], tools: list[Any]) -> Completion:
        self.calls += 1
        if self.calls == 1:
            return Completion(tool_calls=(ToolCall("c1", "lookup", {"key": "k"}),),
                              usage={"prompt_tokens": 12, "completion_tokens": 5},
                              model="m1-2026")
        return Completion(text="done", usage={"prompt_tokens": 20, "completion_tokens": 3},
                          model="m1-2026")


async def _run(capture: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list[dict]]:
    if capture:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    tracing = TracingService("genai")
    agent = AINativeAgent("helper", LLMConfig(provider="openai", model="m1"),
                          provider=CountingProvider(), gate=False, tracer=tracing)

    @agent.tool
    def lookup(key: str) -> str:
        """Look a key up.

        Args:
            key: the key.
        """
        return f"value of {key}"

    result = await agent.handle("secret question")
    spans = [span_to_dict(s) for s in tracing.tracer.finished_spans(result["trace_id"])]
    return result, spans


@pytest.mark.anyio
async def test_invoke_agent_chat_and_execute_tool_spans(monkeypatch) -> None:
    result, spans = await _run(False, monkeypatch)
    by_name: dict[str, list[dict]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    assert sorted(by_name) == ["chat m1", "execute_tool lookup", "invoke_agent helper"]
    [root], chats, [tool] = (by_name["invoke_agent helper"], by_name["chat m1"],
                             by_name["execute_tool lookup"])
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert root["attributes"]["gen_ai.conversation.id"] == result["session_id"]
    assert root["attributes"]["gen_ai.usage.input_tokens"] == 32
    assert root["attributes"]["gen_ai.usage.output_tokens"] == 8
    first = chats[0]["attributes"]
    assert chats[0]["kind"] == "client" and chats[0]["parent_span_id"] == root["span_id"]
    assert (first["gen_ai.provider.name"], first["gen_ai.request.model"],
            first["gen_ai.response.model"]) == ("openai", "m1", "m1-2026")
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (12, 5)
    assert first["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert chats[1]["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert tool["parent_span_id"] == root["span_id"]
    assert tool["attributes"]["gen_ai.tool.call.id"] == "c1"
    assert tool["attributes"]["tool.status"] == "ok"
    assert "neuroflow.guard.decision" not in tool["attributes"]  # gate=False: no guard
    assert "secret question" not in json.dumps(spans)  # content is not captured


@pytest.mark.anyio
async def test_message_content_is_captured_only_when_configured(monkeypatch) -> None:
    _, spans = await _run(True, monkeypatch)
    chat = next(s for s in spans if s["name"] == "chat m1")
    messages = json.loads(chat["attributes"]["gen_ai.input.messages"])
    assert messages[-1] == {"role": "user", "content": "secret question"}
    assert "gen_ai.output.messages" in chat["attributes"]
