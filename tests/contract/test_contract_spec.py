"""SPEC.md's code blocks, as users were shown them, run against the real thing.

Each test is one block of SPEC.md, with ``await`` added where the original forgot it and
file paths pointed into a temporary folder.  What SPEC shows but this installation cannot
provide (the namespace and WASM sandboxes, an OTLP exporter) must fail with a clear
``MissingPluginError`` naming the ``pip install`` command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroflow.errors import MissingPluginError, UnsupportedLimitError


@pytest.mark.anyio
async def test_spec_1_process_sandbox(tmp_path: Path) -> None:
    from neuroflow.sandbox import SandboxConfig, SandboxIsolator

    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "script.py").write_text("print('hello from the sandbox')\n")
    config = SandboxConfig(
        work_dir=str(tmp_path / "sandbox"),
        cpu_time_limit=30,
        memory_limit=256 * 1024 * 1024,
    )
    isolator = SandboxIsolator(config)
    result = await isolator.execute("python3", ["script.py"])
    assert result.exit_code == 0
    assert result.stdout == b"hello from the sandbox\n"


def test_spec_1_namespace_and_wasm_say_what_to_install() -> None:
    from neuroflow.sandbox import NamespaceIsolator, SandboxConfig, WasmSandbox, WasmSandboxConfig

    config = SandboxConfig(work_dir="/tmp/sandbox", enable_network=False, enable_seccomp=True)
    try:
        import neuroflow_sandbox_namespace  # noqa: F401
    except ImportError:
        with pytest.raises(MissingPluginError, match="no installed plugin provides it"):
            NamespaceIsolator(config)
    try:
        import neuroflow_sandbox_wasm  # noqa: F401
    except ImportError:
        with pytest.raises(MissingPluginError, match=r"pip install 'neuroflow\[wasm\]'"):
            WasmSandbox(WasmSandboxConfig(max_memory_bytes=64 * 1024 * 1024,
                                          timeout_seconds=30, max_fuel=1_000_000))


@pytest.mark.anyio
async def test_spec_2_memory() -> None:
    from neuroflow.memory import MemoryConfig, MemoryManager

    config = MemoryConfig(max_entries=10000, gc_interval_seconds=300)
    manager = MemoryManager(config)

    await manager.store_memory(
        agent_id="user-123",
        key="preference:theme",
        value={"theme": "dark", "lang": "zh"},
        tags=["preference", "ui"],
        importance=0.8,
    )
    memory = await manager.retrieve_memory(agent_id="user-123", key="preference:theme")
    assert memory.value == {"theme": "dark", "lang": "zh"}
    memories = await manager.search_memories(
        agent_id="user-123", tags=["preference"], min_importance=0.5, limit=10,
    )
    assert [m.key for m in memories] == ["preference:theme"]
    await manager.delete_memory(agent_id="user-123", key="preference:theme")
    assert await manager.retrieve_memory(agent_id="user-123", key="preference:theme") is None


@pytest.mark.anyio
async def test_spec_5_observability(capsys: pytest.CaptureFixture[str]) -> None:
    from neuroflow.observability import (
        MetricsCollector,
        SpanKind,
        StructuredLogger,
        TracingService,
    )

    async def execute_tool() -> str:
        return "ok"

    tracing = TracingService(service_name="my-agent")
    await tracing.start()
    with tracing.span("tool_execution", kind=SpanKind.CLIENT) as span:
        span.set_attribute("tool_name", "search")
        result = await execute_tool()
        span.set_attribute("result.success", True)
    await tracing.stop()
    assert result == "ok" and len(span.trace_id) == 32
    [recorded] = tracing.tracer.finished_spans(span.trace_id)
    assert (recorded.name, dict(recorded.attributes)) == (
        "tool_execution", {"tool_name": "search", "result.success": True})

    metrics = MetricsCollector()
    metrics.increment("tool_invocations", tags={"tool": "search"})
    metrics.gauge("active_connections", 42)
    metrics.histogram("request_latency", 123.45, tags={"endpoint": "/api"})
    stats = metrics.get_summary()
    assert stats["counters"]["tool_invocations"] == 1

    logger = StructuredLogger("neuroflow")
    logger.info("Request received", request_id="123", method="GET")
    try:
        raise TimeoutError("upstream")
    except TimeoutError as e:
        logger.error("Request failed", exc_info=e, request_id="123")


def test_spec_5_exporter_endpoint_needs_the_otel_plugin() -> None:
    from neuroflow.observability import TracingService

    try:
        import neuroflow_otel  # noqa: F401
    except ImportError:
        with pytest.raises(MissingPluginError, match="OpenTelemetry tracer, which is not") as err:
            TracingService(service_name="my-agent", exporter_endpoint="http://localhost:4317")
        assert "pip install 'neuroflow[otel]'" in str(err.value)
    # With the plugin, SPEC §5 runs against a real OTLP receiver: plugins/otel/tests.


@pytest.mark.anyio
async def test_spec_6_security(tmp_path: Path) -> None:
    from neuroflow.sandbox import SandboxConfig, SandboxIsolator, SandboxSecurityLevel
    from neuroflow.security import AuditLogger, verify_audit_log

    config = SandboxConfig(
        security_level=SandboxSecurityLevel.STRICT,
        allowed_commands=["python3", "pip", "ls"],
        enable_seccomp=True,
        enable_network=False,
    )
    # The process backend can neither filter system calls nor cut the network: it refuses
    # instead of running with weaker isolation than asked for.
    with pytest.raises(UnsupportedLimitError, match="allow_weaker_isolation"):
        SandboxIsolator(config)

    logger = AuditLogger(output_file=str(tmp_path / "neuroflow" / "audit.log"))
    await logger.log_event(
        event_type="command_execution",
        agent_id="agent-1",
        details={"command": "python3 script.py"},
        result="success",
    )
    [record] = [json.loads(line) for line in
                (tmp_path / "neuroflow" / "audit.log").read_text().splitlines()]
    assert (record["event"], record["actor"], record["outcome"]) == (
        "command_execution", "agent-1", "success")
    assert verify_audit_log(tmp_path / "neuroflow" / "audit.log").ok


@pytest.mark.anyio
async def test_spec_7_research_agent(tmp_path: Path) -> None:
    from neuroflow import AINativeAgent, LLMConfig
    from neuroflow.memory import MemoryManager
    from neuroflow.observability import TracingService
    from neuroflow.sandbox import SandboxConfig, open_sandbox

    (tmp_path / "config.yaml").write_text("")  # SPEC §7's MCP config: MCP is not built yet
    agent = AINativeAgent(name="researcher", llm_config=LLMConfig(
        provider="scripted", model="gpt-4",
        extra={"script": [{"tool": "research", "arguments": {"topic": "AI trends"}},
                          "Done: {last_tool_result}"]}))
    # SPEC uses WasmSandbox; without the wasm plugin the configured sandbox takes its place.
    sandbox = open_sandbox(SandboxConfig(wall_timeout=60))
    memory = MemoryManager()
    tracing = TracingService(service_name="researcher")
    await tracing.start()

    @agent.tool(name="research")
    async def research(topic: str) -> str:
        """Research a topic"""
        with tracing.span("research_tool") as span:
            result = await sandbox.execute("python3", ["-c", "print('AI agents everywhere')"])
            await memory.store_memory(
                agent_id="researcher", key=f"research:{topic}",
                value={"result": result.output.decode()}, tags=["research"],
            )
            span.set_attribute("topic", topic)
            return result.output.decode()

    result = await agent.handle("Research AI trends")
    assert result["response"] == "Done: AI agents everywhere\n"

    await tracing.stop()
    stored = await memory.retrieve_memory(agent_id="researcher", key="research:AI trends")
    assert stored.value == {"result": "AI agents everywhere\n"}
    await sandbox.aclose()


@pytest.mark.anyio
async def test_spec_7_guards_apply_to_the_agent_by_default() -> None:
    from neuroflow import AINativeAgent, LLMConfig
    from neuroflow.security import verify_audit_log

    Path("neuroflow.toml").write_text(
        '[[security.tools.rules]]\nname = "no-shell"\neffect = "deny"\nagent = "*"\n'
        'tool = "shell"\n')
    agent = AINativeAgent(name="researcher", llm_config=LLMConfig(
        provider="scripted", extra={"script": [{"tool": "shell", "arguments": {"c": "ls"}},
                                               "{last_tool_result}"]}))
    ran: list[str] = []

    @agent.tool(name="shell")
    async def shell(c: str) -> str:
        """Run a shell command."""
        ran.append(c)
        return "ran"

    result = await agent.handle("list files")
    assert ran == []
    assert result["tool_calls"][0]["status"] == "denied"
    assert "tools.no-shell" in result["response"]
    records = [json.loads(line) for line in Path(".neuroflow/audit.log").read_text().splitlines()]
    assert [(r["resource"], r["decision"], r["rule"]) for r in records] == [
        ("shell", "deny", "tools.no-shell")]
    assert verify_audit_log(".neuroflow/audit.log").ok
