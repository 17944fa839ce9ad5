"""Every sandbox run is an ``execute_sandbox`` span, and the sandboxed program sees that
span's ``TRACEPARENT``: the process backend, a wrapped third-party backend, a denial."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from neuroflow.errors import SecurityError
from neuroflow.observability import TracingService, add_span_processor, remove_span_processor
from neuroflow.sandbox import SandboxConfig, SandboxIsolator
from neuroflow.sandbox.guarded import GuardedBackend
from neuroflow.sandbox.result import SandboxResult, TerminationReason
from neuroflow.security.manager import get_default_gate

PRINT_TRACEPARENT = "import os; print(os.environ['TRACEPARENT'])"


class _Owner:
    """Keeps the in-memory exporter attached while the test runs."""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    owner, memory = _Owner(), InMemorySpanExporter()
    assert add_span_processor(owner, SimpleSpanProcessor(memory)) is not None
    yield memory
    remove_span_processor(owner)


def _sandbox_spans(exporter: InMemorySpanExporter) -> list:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("execute_sandbox")]


@pytest.mark.anyio
async def test_a_sandboxed_program_sees_the_traceparent_of_the_span_that_ran_it(
    exporter: InMemorySpanExporter,
) -> None:
    tracing = TracingService("sandbox-test", backend="noop")
    async with SandboxIsolator(SandboxConfig(allow_weaker_isolation=True)) as sandbox:
        with tracing.span("agent step") as outer:
            result = await sandbox.execute("python3", ["-c", PRINT_TRACEPARENT])
    assert result.ok, result.stderr
    [span] = _sandbox_spans(exporter)
    version, trace_id, span_id, _flags = result.stdout.decode().strip().split("-")
    assert version == "00"
    assert trace_id == f"{span.context.trace_id:032x}" == outer.trace_id
    assert span_id == f"{span.context.span_id:016x}"  # the sandbox span, not the outer one
    assert span.parent.span_id == int(outer.span_id, 16)
    assert span.name == "execute_sandbox python3" and span.kind is SpanKind.INTERNAL
    attrs = span.attributes
    assert attrs["neuroflow.sandbox.backend"] == "process"
    assert attrs["neuroflow.sandbox.command"] == "python3"
    assert attrs["process.exit.code"] == 0
    assert attrs["neuroflow.sandbox.reason"] == "exited"
    assert attrs["neuroflow.sandbox.wall_time_ms"] > 0
    assert attrs["neuroflow.guard.decision"] == "allow"
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.anyio
async def test_a_root_sandbox_run_starts_its_own_trace_and_failures_are_errors(
    exporter: InMemorySpanExporter,
) -> None:
    async with SandboxIsolator(SandboxConfig(allow_weaker_isolation=True)) as sandbox:
        result = await sandbox.execute("python3", ["-c", PRINT_TRACEPARENT + "; exit(3)"])
    assert result.exit_code == 3
    [span] = _sandbox_spans(exporter)
    assert span.parent is None
    assert result.stdout.decode().split("-")[1] == f"{span.context.trace_id:032x}"
    assert span.attributes["process.exit.code"] == 3
    assert span.status.status_code is StatusCode.ERROR


@pytest.mark.anyio
async def test_a_denied_command_is_a_span_with_the_denial(
    exporter: InMemorySpanExporter,
) -> None:
    Path("neuroflow.toml").write_text(
        "[security]\nguards = ['allowlist']\n[security.allowlist]\ndeny = ['sh']\n")
    async with SandboxIsolator(SandboxConfig(allow_weaker_isolation=True)) as sandbox:
        with pytest.raises(SecurityError):
            await sandbox.execute("sh", ["-c", "true"])
    [span] = _sandbox_spans(exporter)
    assert span.attributes["neuroflow.guard.decision"] == "deny"
    assert span.attributes["error.type"] == "SecurityError"
    assert span.status.status_code is StatusCode.ERROR
    assert "process.exit.code" not in span.attributes


class EnvEcho:
    """A third-party backend without ``gate=``: it reports the environment it was given."""

    def __init__(self) -> None:
        self.envs: list[dict[str, str]] = []

    async def execute(self, command: str, args: Sequence[str] = (), *,
                      stdin: bytes | None = None, env: Mapping[str, str] | None = None,
                      timeout: float | None = None) -> SandboxResult:
        self.envs.append(dict(env or {}))
        return SandboxResult(exit_code=0, stdout=b"", stderr=b"", wall_time_ms=1.0,
                             reason=TerminationReason.EXITED)

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_a_wrapped_backend_gets_the_traceparent_in_env(
    exporter: InMemorySpanExporter,
) -> None:
    inner = EnvEcho()
    backend = GuardedBackend(inner, get_default_gate(), component="sandbox.echo")
    await backend.execute("tool", ["x"], env={"KEEP": "1"})
    await backend.execute("tool", env={"TRACEPARENT": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    first, _second = _sandbox_spans(exporter)
    assert inner.envs[0]["KEEP"] == "1"
    assert inner.envs[0]["TRACEPARENT"].split("-")[1:3] == [
        f"{first.context.trace_id:032x}", f"{first.context.span_id:016x}"]
    assert inner.envs[1]["TRACEPARENT"].startswith("00-" + "1" * 32)  # the caller's wins
    assert first.attributes["neuroflow.sandbox.backend"] == "echo"


@pytest.mark.anyio
async def test_the_span_names_the_audit_record_of_the_guard_decision(
    exporter: InMemorySpanExporter,
) -> None:
    import json

    async with SandboxIsolator(SandboxConfig(allow_weaker_isolation=True)) as sandbox:
        assert (await sandbox.execute("/bin/echo", ["x"])).ok
    [span] = _sandbox_spans(exporter)
    records = [json.loads(line) for line in
               Path(".neuroflow/audit.log").read_text().splitlines()]
    [decision] = [r for r in records if r.get("decision") == "allow"]
    assert span.attributes["neuroflow.audit.seq"] == decision["seq"]


@pytest.mark.anyio
async def test_a_denied_command_s_span_names_the_audit_record_of_the_denial(
    exporter: InMemorySpanExporter,
) -> None:
    import json

    Path("neuroflow.toml").write_text("[security.allowlist]\ndeny = ['echo']\n")
    async with SandboxIsolator(SandboxConfig(allow_weaker_isolation=True)) as sandbox:
        with pytest.raises(SecurityError):
            await sandbox.execute("/bin/echo", ["x"])
    [span] = _sandbox_spans(exporter)
    records = [json.loads(line) for line in
               Path(".neuroflow/audit.log").read_text().splitlines()]
    [decision] = [r for r in records if r.get("decision") == "deny"]
    assert span.attributes["neuroflow.guard.decision"] == "deny"
    assert span.attributes["neuroflow.audit.seq"] == decision["seq"]
