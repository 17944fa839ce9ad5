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
    actions = [r for r in records if r.get("decision") or r.get("outcome")]
    assert len(actions) == 5 and all(r["trace_id"] == result["trace_id"] for r in actions)

    spans = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    _assert_one_agent_trace(spans, result["trace_id"])

    text = "\n".join(lines)
    assert "denied by tools.researcher-no-shell" in text
    assert "chain intact" in text
    assert "research:Research WebAssembly sandboxes" in text  # what memory holds
    assert f"    invoke_agent {AGENT}  " in text  # the span tree, printed


def _assert_one_agent_trace(spans: list[dict], trace_id: str) -> None:
    """One trace: invoke_agent at the root; chat and execute_tool under it; the research
    tool's own span under its execute_tool span; guard decisions and token use recorded."""
    # Reading memory back after the run is a trace of its own.
    after = [s for s in spans if s["trace_id"] != trace_id]
    assert [(s["name"], s["parent_span_id"]) for s in after] == [("search_memories", None)]
    spans = [s for s in spans if s["trace_id"] == trace_id]
    by_id = {s["span_id"]: s for s in spans}
    [root] = [s for s in spans if s["parent_span_id"] is None]
    assert root["name"] == f"invoke_agent {AGENT}"
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_agent"

    def parent(span: dict) -> str:
        return by_id[span["parent_span_id"]]["name"]

    chats = [s for s in spans if s["name"].startswith("chat")]
    assert len(chats) == 3 and {parent(s) for s in chats} == {root["name"]}
    assert all(s["kind"] == "client" for s in chats)
    assert chats[0]["attributes"]["gen_ai.response.model"] == "scripted (not a real model)"
    assert "gen_ai.input.messages" not in chats[0]["attributes"]  # content is not captured
    tools = {s["attributes"]["gen_ai.tool.name"]: s for s in spans
             if s["name"].startswith("execute_tool ")}
    assert set(tools) == {"shell", "research"}
    assert {parent(s) for s in tools.values()} == {root["name"]}
    assert tools["shell"]["attributes"]["neuroflow.guard.decision"] == "deny"
    assert tools["research"]["attributes"]["neuroflow.guard.decision"] == "allow"
    [research] = [s for s in spans if s["name"] == "research_tool"]
    assert research["parent_span_id"] == tools["research"]["span_id"]
    assert research["attributes"]["topic"] == "Research WebAssembly sandboxes"
    sandboxed = [s for s in spans if s["name"].startswith("execute_sandbox ")]
    assert sandboxed and {parent(s) for s in sandboxed} == {"research_tool"}
    stored = [s for s in spans if s["name"] == "store_memory"]
    assert stored and {parent(s) for s in stored} == {"research_tool"}
    assert len(spans) == 7 + len(sandboxed) + len(stored)


@pytest.mark.anyio
async def test_any_opentelemetry_exporter_sees_the_same_trace(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from neuroflow.observability import add_span_processor, remove_span_processor, span_to_dict

    exporter = InMemorySpanExporter()
    assert add_span_processor(exporter, SimpleSpanProcessor(exporter)) is not None
    try:
        result = await run_research_agent("Research WebAssembly sandboxes", workdir=tmp_path,
                                          echo=lambda line: None)
    finally:
        remove_span_processor(exporter)
    spans = [span_to_dict(s) for s in exporter.get_finished_spans()]
    _assert_one_agent_trace(spans, result["trace_id"])


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
