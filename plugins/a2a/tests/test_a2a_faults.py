"""A peer that is down, silent or answers garbage gives a clear error within the timeout,
on every binding, and an orchestrator turns it into a failed delegation, not a crash."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from neuroflow import create_backend
from neuroflow.a2a import (
    A2AError,
    AgentRegistration,
    AgentRegistryService,
    AgentTimeoutError,
    AgentUnavailableError,
    CollaborativeOrchestratorV2,
)
from neuroflow.agent import AINativeAgent, LLMConfig

pytestmark = pytest.mark.anyio


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class RawServer:
    """A TCP server on loopback that answers every connection with ``reply`` (or holds it
    open and says nothing when ``reply`` is ``None``)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.reply is None:
                self.held.append(conn)
                continue
            try:
                conn.settimeout(2)
                conn.recv(65536)
                conn.sendall(self.reply)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[RawServer]:
    server = RawServer(None)
    yield server
    server.close()


@pytest.fixture
def garbage() -> Iterator[RawServer]:
    body = b"<html>not an agent</html>"
    server = RawServer(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                       + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    yield server
    server.close()


@pytest.mark.parametrize("binding", ["jsonrpc", "http-json", "grpc"])
async def test_a_peer_that_is_down(binding: str) -> None:
    port = closed_port()
    endpoint = f"grpc://127.0.0.1:{port}" if binding == "grpc" else f"http://127.0.0.1:{port}"
    started = time.monotonic()
    async with create_backend("transport", binding, gate=False) as transport:
        with pytest.raises(AgentUnavailableError, match=f"agent down at {endpoint}: "
                                                        f"{binding} call failed"):
            await transport.send(endpoint, "hi", timeout=3, agent_id="down")
    assert time.monotonic() - started < 3.5


@pytest.mark.parametrize("binding", ["jsonrpc", "http-json", "grpc"])
async def test_a_peer_that_never_answers(binding: str, silent: RawServer) -> None:
    endpoint = (f"grpc://127.0.0.1:{silent.port}" if binding == "grpc"
                else f"http://127.0.0.1:{silent.port}")
    started = time.monotonic()
    async with create_backend("transport", binding, gate=False) as transport:
        with pytest.raises((AgentTimeoutError, AgentUnavailableError),
                           match="agent mute at"):
            await transport.send(endpoint, "hi", timeout=1.0, agent_id="mute")
    assert time.monotonic() - started < 1.0 + 2.5  # the timeout, plus the cancel attempt


async def test_a_silent_http_peer_times_out(silent: RawServer) -> None:
    async with create_backend("transport", "jsonrpc", gate=False) as transport:
        with pytest.raises(AgentTimeoutError, match=r"agent mute at .*: no answer within 1 s"):
            await transport.send(f"http://127.0.0.1:{silent.port}", "hi", timeout=1.0,
                                 agent_id="mute")


@pytest.mark.parametrize("binding", ["jsonrpc", "http-json"])
async def test_a_peer_that_answers_garbage(binding: str, garbage: RawServer) -> None:
    started = time.monotonic()
    async with create_backend("transport", binding, gate=False) as transport:
        with pytest.raises(AgentUnavailableError, match=f"agent junk at http://127.0.0.1:"
                                                        f"{garbage.port}: {binding} call "
                                                        f"failed"):
            await transport.send(f"http://127.0.0.1:{garbage.port}", "hi", timeout=3,
                                 agent_id="junk")
        with pytest.raises(A2AError, match="is not a valid A2A agent card"):
            await transport.fetch_card(f"http://127.0.0.1:{garbage.port}/.well-known/"
                                       "agent-card.json")
    assert time.monotonic() - started < 3.5


async def test_registering_a_card_url_that_is_down_says_so() -> None:
    port = closed_port()
    async with AgentRegistryService(backend="memory") as registry:
        with pytest.raises(AgentUnavailableError, match=f"agent card at http://127.0.0.1:"
                                                        f"{port}/.well-known/agent-card.json"):
            await registry.register_card(f"http://127.0.0.1:{port}")


async def test_the_orchestrator_reports_a_down_peer_as_a_failed_delegation(
        silent: RawServer) -> None:
    async with AgentRegistryService(backend="memory") as registry:
        await registry.register(AgentRegistration(
            id="gone", endpoint=f"http://127.0.0.1:{closed_port()}"))
        await registry.register(AgentRegistration(
            id="mute", endpoint=f"http://127.0.0.1:{silent.port}"))
        model = AINativeAgent("boss", LLMConfig("scripted", extra={"script": [
            {"tool_calls": [{"name": "ask_gone", "arguments": {"message": "hi"}},
                            {"name": "ask_mute", "arguments": {"message": "hi"}}]},
            "{tool_results}"]}), gate=False)
        started = time.monotonic()
        async with CollaborativeOrchestratorV2(model, registry, timeout_ms=1500,
                                               gate=False) as orchestrator:
            result = await orchestrator.execute_with_collaboration("hi")
    assert time.monotonic() - started < 5
    assert [(t["callee"], t["status"]) for t in result.trace] == [
        ("gone", "error"), ("mute", "timeout")]
    assert "AgentUnavailableError: agent gone at" in result.response
    assert "AgentTimeoutError: agent mute at" in result.response
    assert result.collaborating_agents == ()
