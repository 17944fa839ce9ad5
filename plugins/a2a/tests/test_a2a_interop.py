"""Interop with plain a2a-sdk: our orchestrator discovers and calls an a2a-sdk agent by its
card URL; a2a-sdk's client calls our agent (blocking, streaming, HTTP+JSON, gRPC); raw
JSON-RPC requests in the 1.0 and 0.3 forms; bearer-token and API-key authentication."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from neuroflow import create_backend
from neuroflow.a2a import (
    AgentRegistryService,
    CollaborativeOrchestratorV2,
    TransportConfig,
)
from neuroflow.agent import AINativeAgent, LLMConfig

pytestmark = pytest.mark.anyio


async def test_a_plain_a2a_sdk_agent_is_discovered_by_card_url_and_called(plain) -> None:
    async with AgentRegistryService(backend="memory") as registry:
        registration = await registry.register_card(plain.urls["plain"],
                                                    capabilities=["echoing"])
        assert (registration.id, registration.transport) == ("Plain-Echo", "jsonrpc")
        assert registration.endpoint == plain.urls["plain"] + "/"
        assert set(registration.skills) == {"echo", "Echo"}
        assert [a.id for a in await registry.discover_by_capability("translation")] == [
            "Plain-Echo"]
        model = AINativeAgent("boss", LLMConfig("scripted", extra={"script": [
            {"tool": "ask_Plain-Echo", "arguments": {"message": "bonjour"}},
            "It said: {last_tool_result}"]}), gate=False)
        async with CollaborativeOrchestratorV2(model, registry, gate=False) as orchestrator:
            result = await orchestrator.execute_with_collaboration("say bonjour")
    assert result.response == "It said: plain echo: bonjour"
    assert result.collaborating_agents == ("Plain-Echo",)
    # a plain agent returns no NeuroFlow trace of its own
    assert result.trace[0]["status"] == "ok" and "delegations" not in result.trace[0]


async def test_the_card_is_cached_with_its_etag(plain) -> None:
    card_url = plain.urls["plain"] + "/.well-known/agent-card.json"
    async with create_backend("transport", "jsonrpc", gate=False) as transport:
        first = await transport.fetch_card(card_url)
        assert first.card["name"] == "Plain Echo" and first.etag
        again = await transport.fetch_card(card_url, etag=first.etag)
    assert again.not_modified and again.card is None


async def _plain_client_call(card_url_base: str, text: str, *, binding: str = "JSONRPC",
                             streaming: bool = False, headers: dict[str, str] | None = None
                             ) -> list[Any]:
    import grpc
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
    from a2a.types import Message, Part, Role, SendMessageRequest

    async with httpx.AsyncClient(headers=headers or {}) as http:
        card = await A2ACardResolver(http, card_url_base).get_agent_card()
        config = ClientConfig(streaming=streaming, httpx_client=http,
                              supported_protocol_bindings=[binding],
                              grpc_channel_factory=grpc.aio.insecure_channel)
        client = ClientFactory(config).create(card)
        message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex,
                          parts=[Part(text=text)])
        return [event async for event in client.send_message(SendMessageRequest(
            message=message))]


def _final_text(events: list[Any]) -> str:
    task = events[-1].task
    return "".join(p.text for a in task.artifacts for p in a.parts)


async def test_a_plain_a2a_sdk_client_calls_our_agent(farms) -> None:
    from a2a.types import TaskState

    events = await _plain_client_call(farms["second"].urls["researcher"], "hello")
    assert len(events) == 1
    assert events[0].task.status.state == TaskState.TASK_STATE_COMPLETED
    assert _final_text(events) == "researcher heard: hello"


async def test_a_plain_client_streams_the_task_states_over_sse(farms) -> None:
    from a2a.types import TaskState

    events = await _plain_client_call(farms["second"].urls["researcher"], "stream",
                                      streaming=True)
    states = []
    for event in events:
        if event.HasField("task"):
            states.append(event.task.status.state)
        elif event.HasField("status_update"):
            states.append(event.status_update.status.state)
        elif event.HasField("artifact_update"):
            assert "".join(p.text for p in event.artifact_update.artifact.parts) == (
                "researcher heard: stream")
            states.append("artifact")
    assert states == [TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING,
                      "artifact", TaskState.TASK_STATE_COMPLETED]


async def test_a_plain_client_over_grpc(farms) -> None:
    events = await _plain_client_call(farms["second"].urls["researcher"], "over grpc",
                                      binding="GRPC")
    assert _final_text(events) == "researcher heard: over grpc"


@pytest.mark.parametrize("binding", ["jsonrpc", "http-json", "grpc"])
async def test_our_transports_call_our_agent_on_every_binding(farms, binding: str) -> None:
    from neuroflow.a2a.registry import registration_from_card

    base = farms["second"].urls["researcher"]
    async with create_backend("transport", binding, gate=False) as transport:
        fetched = await create_backend("transport", "jsonrpc", gate=False).fetch_card(
            base + "/.well-known/agent-card.json")
        registration = registration_from_card(fetched.card, base, transport=binding)
        reply = await transport.send(registration.endpoint, f"via {binding}", timeout=10,
                                     agent_id="researcher")
    assert (reply.state, reply.text) == ("completed", f"researcher heard: via {binding}")
    assert reply.task_id and reply.metadata["neuroflow.collaboration.result"]["agent"] == (
        "researcher")


async def test_a_raw_1_0_send_message_with_the_version_header(farms) -> None:
    url = farms["second"].urls["researcher"] + "/"
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
        "role": "ROLE_USER", "messageId": "m-1", "parts": [{"text": "one-oh"}]}}}
    async with httpx.AsyncClient() as http:
        response = await http.post(url, json=body, headers={"A2A-Version": "1.0"})
    task = response.json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["artifacts"][0]["parts"][0]["text"] == "researcher heard: one-oh"


async def test_a_0_3_style_message_send_is_answered(farms) -> None:
    url = farms["second"].urls["researcher"] + "/"
    body = {"jsonrpc": "2.0", "id": "x", "method": "message/send", "params": {"message": {
        "role": "user", "messageId": "m-2", "kind": "message",
        "parts": [{"kind": "text", "text": "old client"}]}}}
    async with httpx.AsyncClient() as http:
        response = await http.post(url, json=body)  # no A2A-Version header: 0.3
    result = response.json()["result"]
    assert result["kind"] == "task"
    assert result["status"]["state"] == "completed"
    assert result["artifacts"][0]["parts"][0] == {"kind": "text",
                                                  "text": "researcher heard: old client"}


async def test_a_protected_agent_refuses_unauthenticated_calls(farms) -> None:
    base = farms["first"].urls["guarded"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
        "role": "ROLE_USER", "messageId": "m-3", "parts": [{"text": "let me in"}]}}}
    async with httpx.AsyncClient() as http:
        card = await http.get(base + "/.well-known/agent-card.json")
        assert card.status_code == 200  # the card is public, and says how to authenticate
        assert card.json()["securitySchemes"]["bearer"]["httpAuthSecurityScheme"] == {
            "scheme": "Bearer"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"},
                        {"Authorization": "Basic czNjcmV0LXRva2Vu"}):
            refused = await http.post(base + "/", json=body,
                                      headers={"A2A-Version": "1.0", **headers})
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
        rest = await http.post(base + "/rest/message:send", json={"message": body["params"][
            "message"]}, headers={"A2A-Version": "1.0"})
        assert rest.status_code == 401
    denied = create_backend("transport", "jsonrpc", gate=False)
    from neuroflow.a2a import AgentUnavailableError

    with pytest.raises(AgentUnavailableError, match="HTTP Error 401"):
        await denied.send(base, "hi", timeout=5, agent_id="guarded")
    await denied.aclose()
    allowed = create_backend("transport", "jsonrpc",
                             TransportConfig(bearer_token="s3cret-token"), gate=False)
    reply = await allowed.send(base, "hi", timeout=5)
    await allowed.aclose()
    assert reply.text == "guarded heard: hi"
    events = await _plain_client_call(base, "with a token",
                                      headers={"Authorization": "Bearer s3cret-token"})
    assert _final_text(events) == "guarded heard: with a token"


def test_the_jsonrpc_and_http_json_transports_work_under_trio(plain, farms) -> None:
    import trio

    async def main() -> list[str]:
        texts = []
        async with create_backend("transport", "jsonrpc", gate=False) as transport:
            texts.append((await transport.send(plain.urls["plain"] + "/", "trio",
                                               timeout=10)).text)
            card = await transport.fetch_card(plain.urls["plain"] +
                                              "/.well-known/agent-card.json")
            texts.append(card.card["name"])
        async with create_backend("transport", "http-json", gate=False) as transport:
            texts.append((await transport.send(farms["second"].urls["researcher"] + "/rest",
                                               "trio rest", timeout=10)).text)
        return texts

    assert trio.run(main) == ["plain echo: trio", "Plain Echo", "researcher heard: trio rest"]


async def test_a_plain_client_cancels_a_running_task(farms, events_file) -> None:
    import anyio
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
    from a2a.types import (
        CancelTaskRequest,
        GetTaskRequest,
        Message,
        Part,
        Role,
        SendMessageConfiguration,
        SendMessageRequest,
        TaskState,
    )

    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, farms["first"].urls["slow"]).get_agent_card()
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
        message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex,
                          parts=[Part(text="think")])
        before = events_file.read_text().count("cancelled") if events_file.exists() else 0
        [event] = [e async for e in client.send_message(SendMessageRequest(
            message=message, configuration=SendMessageConfiguration(return_immediately=True)))]
        task_id = event.task.id
        with anyio.fail_after(10):
            while (await client.get_task(GetTaskRequest(id=task_id))).status.state != (
                    TaskState.TASK_STATE_WORKING):
                await anyio.sleep(0.05)
        canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        assert (await client.get_task(GetTaskRequest(id=task_id))).status.state == (
            TaskState.TASK_STATE_CANCELED)
    with anyio.fail_after(5):
        while events_file.read_text().count("cancelled") == before:
            await anyio.sleep(0.05)
