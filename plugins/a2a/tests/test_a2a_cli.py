"""``neuroflow a2a serve|card|call`` from the shell: a token is required unless ``--open``,
the served agent answers, its card is printed, a call is made and answered."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

AGENT = '''
from neuroflow.agent import AINativeAgent, LLMConfig

agent = AINativeAgent("shell-agent", LLMConfig("scripted", extra={
    "script": ["shell heard: {last_user_message}"], "loop": True}), gate=False)


@agent.tool
def shout(text: str) -> str:
    """Shout a text."""
    return text.upper()
'''


def neuroflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "neuroflow", *args]


@pytest.fixture
def agent_file(tmp_path: Path) -> Path:
    path = tmp_path / "shell_agent.py"
    path.write_text(AGENT)
    return path


def test_serve_needs_a_token_or_open(agent_file: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NEUROFLOW_A2A_TOKEN"}
    done = subprocess.run(neuroflow("a2a", "serve", f"{agent_file}:agent", "--port", "0"),
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert "set a token in NEUROFLOW_A2A_TOKEN" in done.stderr
    assert "--open" in done.stderr


def test_serve_card_and_call_from_the_shell(agent_file: Path) -> None:
    env = {**os.environ, "NEUROFLOW_A2A_TOKEN": "shell-token"}
    server = subprocess.Popen(
        neuroflow("a2a", "serve", f"{agent_file}:agent", "--port", "0", "--capability",
                  "shouting"), stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        while line and "serving" not in line:
            line = server.stderr.readline()
        match = re.search(r"serving (http://\S+) \(card: (\S+)\)", line)
        assert match, line
        url = match.group(1)
        card = subprocess.run(neuroflow("a2a", "card", url), capture_output=True, text=True,
                              timeout=60, env=env)
        assert card.returncode == 0, card.stderr
        assert '"name": "shell-agent"' in card.stdout and '"shouting"' in card.stdout
        refused = subprocess.run(neuroflow("a2a", "call", url, "hello"), capture_output=True,
                                 text=True, timeout=60, env=env)
        assert refused.returncode == 2
        assert "401" in refused.stderr
        config = Path(agent_file.parent / "neuroflow.toml")
        config.write_text('[a2a.jsonrpc]\nbearer_token = "shell-token"\n')
        answered = subprocess.run(neuroflow("a2a", "call", url, "hello"), capture_output=True,
                                  text=True, timeout=60, env=env, cwd=agent_file.parent)
        assert answered.returncode == 0, answered.stderr
        assert answered.stdout.strip() == "shell heard: hello"
    finally:
        server.terminate()
        server.wait(10)


def test_a_served_agent_registers_beats_and_drops_out_when_it_dies(
        agent_file: Path, tmp_path: Path) -> None:
    import signal

    import anyio

    from neuroflow.a2a import AgentRegistryService

    database = tmp_path / "agents.db"
    (agent_file.parent / "neuroflow.toml").write_text(
        f'[registry]\nbackend = "sql"\n\n[registry.sql]\nurl = "sqlite:///{database}"\n')
    server = subprocess.Popen(
        neuroflow("a2a", "serve", f"{agent_file}:agent", "--port", "0", "--open",
                  "--register", "--ttl", "1.5", "--capability", "shouting"),
        stderr=subprocess.PIPE, text=True, cwd=agent_file.parent)
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        while line and "registered" not in line:
            line = server.stderr.readline()
        assert "registered as shell-agent" in line, line

        async def found() -> list[str]:
            async with AgentRegistryService(
                    backend="sql", options={"url": f"sqlite:///{database}"}) as registry:
                return [a.id for a in await registry.discover_by_capability("shouting")]

        assert anyio.run(found) == ["shell-agent"]
        time.sleep(2.0)  # longer than the ttl: only heartbeats keep it there
        assert anyio.run(found) == ["shell-agent"]
        server.send_signal(signal.SIGKILL)  # dies without unregistering
        server.wait(10)
        time.sleep(2.0)
        assert anyio.run(found) == []
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
