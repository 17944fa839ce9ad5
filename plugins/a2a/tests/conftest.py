"""Fixtures for the A2A plugin tests: agents served by other processes on loopback, a
plain a2a-sdk agent, and a shared SQLite registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """asyncio: uvicorn and a2a-sdk's server and client run on it."""
    return "asyncio"


class Peer:
    """A child process serving agents; ``urls`` maps agent id to base URL."""

    def __init__(self, process: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.process = process
        self.urls: dict[str, str] = info.get("ready") or {"plain": info.get("url", "")}
        self.grpc: dict[str, str | None] = info.get("grpc") or {}

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_peer(*args: str) -> Peer:
    """Run ``python <args>`` (a script of this folder) and wait for its JSON ready line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=HERE, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait()
        raise RuntimeError(f"peer {args} exited with {process.returncode} before it was ready")
    return Peer(process, json.loads(line))


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite registry every process of the module shares."""
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'agents.db'}"


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the slow agent writes ``started`` / ``cancelled``."""
    return tmp_path_factory.mktemp("events") / "slow.log"


@pytest.fixture(scope="module")
def farms(registry_url: str, events_file: Path) -> Iterator[dict[str, Peer]]:
    """Two processes of agents: ``researcher`` in one; relays, chains, a cycle and a slow
    agent in the other."""
    second = start_peer("farm.py", json.dumps({"registry": registry_url, "agents": [
        {"id": "researcher", "kind": "echo", "capabilities": ["web_search", "research"],
         "grpc": True},
    ]}))
    chain = [{"id": f"r{i}", "kind": "relay", "to": f"r{i + 1}"} for i in range(1, 7)]
    first = start_peer("farm.py", json.dumps({"registry": registry_url, "agents": [
        {"id": "editor", "kind": "relay", "to": "researcher"},
        *chain, {"id": "r7", "kind": "echo"},
        {"id": "ping", "kind": "relay", "to": "pong"},
        {"id": "pong", "kind": "relay", "to": "ping"},
        {"id": "slow", "kind": "slow", "events": str(events_file), "seconds": 30},
        {"id": "middle", "kind": "relay", "to": "slow"},
        {"id": "guarded", "kind": "echo", "token": "s3cret-token"},
    ]}))
    yield {"first": first, "second": second}
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def plain() -> Iterator[Peer]:
    """An agent written with plain a2a-sdk, in its own process."""
    peer = start_peer("plain_server.py")
    yield peer
    peer.stop()
