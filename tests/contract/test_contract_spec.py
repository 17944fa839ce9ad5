"""SPEC.md's code blocks, as users were shown them, run against the real thing.

Each test is one block of SPEC.md, with ``await`` added where the original forgot it and
file paths pointed into a temporary folder.  What SPEC shows but this installation cannot
provide (the namespace and WASM sandboxes, an OTLP exporter) must fail with a clear
``MissingPluginError`` naming the ``pip install`` command.
"""

from __future__ import annotations

import importlib.util
import json
import logging
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


def installed(module: str) -> bool:
    """Whether the plugin's import package is installed (then its block must really run)."""
    return importlib.util.find_spec(module) is not None


#: A WASI module whose ``_start`` writes ``hi\n`` to stdout with ``fd_write`` (151 bytes,
#: compiled from a 9-line WAT text: memory, the data "hi\n", one iovec, one call).
HELLO_WASM = bytes.fromhex(
    "0061736d01000000010c0260047f7f7f7f017f60000002230116776173695f736e617073686f745f70"
    "726576696577310866645f77726974650000030201010503010001071302066d656d6f727902000"
    "65f737461727400010a1d011b004100411036020041044103360200410141004101410810001a0b0b"
    "09010041100b0368690a0012046e616d65010b01000866645f7772697465"
)


@pytest.mark.anyio
async def test_spec_1_namespace_sandbox(tmp_path: Path) -> None:
    from neuroflow.sandbox import NamespaceIsolator, SandboxConfig

    (tmp_path / "script.py").write_text("print('hello from the namespace')\n")
    config = SandboxConfig(work_dir=str(tmp_path), enable_network=False, enable_seccomp=True)
    if not installed("neuroflow_sandbox_namespace"):
        with pytest.raises(MissingPluginError, match=r"pip install 'neuroflow\[namespace\]'"):
            NamespaceIsolator(config)
        return
    isolator = NamespaceIsolator(config)
    try:
        result = await isolator.execute("python3", ["script.py"])
    finally:
        await isolator.aclose()
    assert result.exit_code == 0, result
    assert result.stdout == b"hello from the namespace\n"


@pytest.mark.anyio
async def test_spec_1_wasm_sandbox() -> None:
    from neuroflow.sandbox import WasmSandbox, WasmSandboxConfig

    config = WasmSandboxConfig(max_memory_bytes=64 * 1024 * 1024, timeout_seconds=30,
                               max_fuel=1_000_000)
    if not installed("neuroflow_sandbox_wasm"):
        with pytest.raises(MissingPluginError, match=r"pip install 'neuroflow\[wasm\]'"):
            WasmSandbox(config)
        return
    async with WasmSandbox(config) as sandbox:
        result = await sandbox.execute(HELLO_WASM)
    assert result.exit_code == 0, result
    assert result.output == b"hi\n"
    assert result.execution_time_ms > 0


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
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # a2a-sdk's server runs on asyncio
async def test_spec_3_a2a(anyio_backend: str) -> None:
    from neuroflow.a2a import (
        AgentRegistration,
        AgentRegistryService,
        CollaborationContext,
        CollaborativeOrchestratorV2,
    )
    from neuroflow.agent import AINativeAgent, LLMConfig

    # The model SPEC leaves undefined: a scripted one that asks the researcher, then reports.
    llm_orchestrator = AINativeAgent("orchestrator", LLMConfig("scripted", extra={"script": [
        {"tool": "ask_researcher", "arguments": {"message": "AI trends"}},
        "Report: {last_tool_result}",
    ]}))
    researcher_agent = AINativeAgent("researcher", LLMConfig("scripted", extra={
        "script": ["findings on {last_user_message}"]}))
    server = None
    if installed("neuroflow_a2a"):  # the researcher really answers at localhost:8081
        from neuroflow.a2a import serve_agent

        server = await serve_agent(researcher_agent, host="127.0.0.1", port=8081)

    registry = AgentRegistryService(backend="memory")
    await registry.start()
    agent = AgentRegistration(
        id="researcher",
        name="Research Agent",
        description="Professional research assistant",
        endpoint="http://localhost:8081",
        capabilities=["web_search", "research"],
    )
    await registry.register(agent)
    researchers = await registry.discover_by_capability("web_search")
    assert [r.id for r in researchers] == ["researcher"]

    orchestrator = CollaborativeOrchestratorV2(
        llm_orchestrator=llm_orchestrator,
        agent_registry_service=registry,
        max_depth=5,        # maximum collaboration depth
        timeout_ms=30000,
    )
    try:
        result = await orchestrator.execute_with_collaboration(
            user_message="Research AI trends and write a report",
        )
    finally:
        await orchestrator.aclose()
        if server is not None:
            await server.aclose()
    print(result.collaborating_agents)
    print(result.response)
    assert CollaborationContext.root("x", 5, 30).depth_left == 5
    if server is None:
        assert result.collaborating_agents == ()
        assert "pip install 'neuroflow[a2a]'" in result.response
        return
    assert result.collaborating_agents == ("researcher",)
    assert result.response == "Report: findings on AI trends"
    assert [(t["caller"], t["callee"], t["status"]) for t in result.trace] == [
        ("orchestrator", "researcher", "ok")]


@pytest.mark.anyio
async def test_spec_5_observability(caplog: pytest.LogCaptureFixture) -> None:
    from neuroflow.observability import (
        JsonFormatter,
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

    caplog.set_level(logging.INFO, logger="neuroflow")
    logger = StructuredLogger("neuroflow")
    logger.info("Request received", request_id="123", method="GET")
    try:
        raise TimeoutError("upstream")
    except TimeoutError as e:
        logger.error("Request failed", exc_info=e, request_id="123")
    # as the JSON lines a user sees (pytest's log capture holds the records)
    formatter = JsonFormatter()
    records = [json.loads(formatter.format(r)) for r in caplog.records if r.name == "neuroflow"]
    assert [(r["level"], r["message"], r["fields"]) for r in records] == [
        ("INFO", "Request received", {"request_id": "123", "method": "GET"}),
        ("ERROR", "Request failed", {"request_id": "123"}),
    ]
    assert records[1]["exception"]["type"] == "TimeoutError"
    assert records[1]["exception"]["message"] == "upstream"


@pytest.mark.anyio
async def test_spec_5_exporter_endpoint_needs_the_otel_plugin() -> None:
    from neuroflow.observability import SpanKind, TracingService

    if not installed("neuroflow_otel"):
        with pytest.raises(MissingPluginError, match="needs the OpenTelemetry tracer") as err:
            TracingService(service_name="my-agent", exporter_endpoint="http://localhost:4317")
        assert "pip install 'neuroflow[otel]'" in str(err.value)
        return
    # No collector listens there: exporting must not break the traced code.
    tracing = TracingService(service_name="my-agent", exporter_endpoint="http://localhost:4317")
    assert tracing.backend_name == "otel"
    await tracing.start()
    with tracing.span("tool_execution", kind=SpanKind.CLIENT) as span:
        span.set_attribute("tool_name", "search")
        span.set_attribute("result.success", True)
    await tracing.stop()
    assert len(span.trace_id) == 32 and int(span.trace_id, 16) != 0


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
