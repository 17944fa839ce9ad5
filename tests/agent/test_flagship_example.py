"""The flagship example (``examples/research_agent.py``, ``neuroflow demo``) end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neuroflow.examples.research_agent import AGENT, run_research_agent
from neuroflow.security import verify_audit_log

REPO = Path(__file__).resolve().parents[2]


def _records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.anyio
async def test_scripted_run_researches_in_the_sandbox_and_is_refused_the_shell(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    result = await run_research_agent("Research WebAssembly sandboxes", workdir=tmp_path,
                                      echo=lines.append)

    shell, research = result["tool_calls"]
    assert (shell["name"], shell["status"]) == ("shell", "denied")
    assert "tools.researcher-no-shell" in shell["error"]
    assert (research["name"], research["status"]) == ("research", "ok")
    assert "WebAssembly sandboxes" in research["result"]  # ranked first by the sandboxed script
    assert result["response"].endswith(research["result"])
    assert result["model"] == "scripted (not a real model)"

    report = verify_audit_log(tmp_path / "audit.log")
    assert report.ok, report.problem
    records = _records(tmp_path / "audit.log")
    denied = [r for r in records if r.get("decision") == "deny"]
    assert [(r["resource"], r["rule"], r["actor"]) for r in denied] == [
        ("shell", "tools.researcher-no-shell", AGENT)]
    commands = [r for r in records if r.get("resource") == "python3"]
    assert {r.get("decision") or r.get("outcome") for r in commands} == {"allow", "success"}
    assert all(r["trace_id"] == result["trace_id"] for r in records)

    spans = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    names = {s["name"] for s in spans if s["trace_id"] == result["trace_id"]}
    assert {"agent.handle", "agent.tool", "research_tool"} <= names

    text = "\n".join(lines)
    assert "denied by tools.researcher-no-shell" in text
    assert "chain intact" in text
    assert "research:Research WebAssembly sandboxes" in text  # what memory holds


@pytest.mark.anyio
async def test_a_configured_openai_compatible_model_drives_the_same_agent(
    tmp_path: Path, openai_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROFLOW_LLM__BACKEND", "openai")
    monkeypatch.setenv("NEUROFLOW_LLM__OPENAI__BASE_URL", openai_server.url)
    monkeypatch.setenv("NEUROFLOW_LLM__OPENAI__MODEL", "local-test-model")
    monkeypatch.setenv("NEUROFLOW_LLM__OPENAI__API_KEY", "sk-test")

    result = await run_research_agent("agents and tools", workdir=tmp_path,
                                      echo=lambda line: None)

    assert result["model"] == "local-test-model"
    [call] = result["tool_calls"]  # the local model calls the first tool with the question
    assert (call["name"], call["status"], call["arguments"]) == (
        "research", "ok", {"topic": "agents and tools"})
    assert result["response"] == f"Here is what I found: {call['result']}"
    offered = {t["function"]["name"] for t in openai_server.requests[0]["body"]["tools"]}
    assert offered == {"research", "shell"}
    assert verify_audit_log(tmp_path / "audit.log").ok


def test_neuroflow_demo_command_runs_the_example(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "neuroflow", "demo", "--workdir", str(tmp_path / "demo"),
         "Research", "AI", "trends"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "You asked: 'Research AI trends'" in proc.stdout
    assert "-> denied" in proc.stdout and "-> ok" in proc.stdout
    assert f"neuroflow audit verify {tmp_path / 'demo' / 'audit.log'}" in proc.stdout
    assert "not from a real model" in proc.stderr  # the scripted provider says so


def test_examples_research_agent_script_is_the_packaged_example() -> None:
    script = REPO / "examples" / "research_agent.py"
    packaged = REPO / "neuroflow_core" / "src" / "neuroflow" / "examples" / "research_agent.py"
    assert script.resolve() == packaged.resolve()
