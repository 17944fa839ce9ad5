"""Code mode: the model writes one program that calls many tools, inside a sandbox.

With ``AINativeAgent(..., code_mode=CodeMode())`` the model is offered one tool,
``run_code``.  The program it writes runs in a sandbox backend that can run code with host
tools (``wasm-python`` by default); inside, the agent's tools are Python functions
(``from host import tools; tools.search(query="...")``, ``help(tools.search)`` for the
definition).  Every call the program makes comes back to the host and goes the same way as
a direct tool call: the guards, the audit log, a child span of the ``run_code`` span, the
tool's timeout.  The program sees only the result, or the message of a failed or refused
call; the tools' source never enters the sandbox and the program's output is never
evaluated on the host.

Bounds: tool calls per run, request and response bytes, the time of each call and of the
whole run, the output handed back to the model.  Only tools registered with
``read_only=True`` are offered unless ``write_tools`` names others.

After each run the calls the sandbox's runtime saw, the calls the host ran and the audit
records written for them are reconciled; :class:`CodeRun` reports any mismatch or
abandoned call.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs

from neuroflow.agent.llm import ToolCall
from neuroflow.agent.tools import Tool
from neuroflow.errors import AgentError, ConfigError
from neuroflow.sandbox.host_tools import HostCallRecord, HostTool, HostToolError, HostTools
from neuroflow.units import ByteSize, size_converter

#: The name of the one tool the model is offered in code mode.
RUN_CODE = "run_code"

#: Outcomes of the sandbox runtime's record for calls that reached the host.
_REACHED_HOST = frozenset({"ok", "denied", "tool_error", "timeout", "cancelled"})


def _positive(field: str, value: Any, kind: type | tuple[type, ...] = (int, float)) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{field}: expected {what} > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class CodeMode:
    """How code mode runs the model's programs (also ``[llm.code_mode]`` in neuroflow.toml,
    which turns code mode on for agents built without ``code_mode=``).

    Attributes:
        backend: the isolation backend that runs them; it must accept
            ``run_code(..., host_tools=...)`` (``"wasm-python"``: CPython in WebAssembly).
        sandbox_options: that backend's options (``None``: ``[sandbox.<backend>]``).
        max_tool_calls: tool calls one program may make.
        max_request_bytes: the largest JSON encoding of one call's arguments.
        max_response_bytes: the largest JSON encoding of one call's result.
        tool_timeout_seconds: how long one tool call may run.
        timeout_seconds: how long one program may run, its tool calls included.
        max_output_bytes: how much of the program's stdout and of its stderr the model sees.
        write_tools: tools offered although they were not registered ``read_only=True``.
    """

    backend: str = "wasm-python"
    sandbox_options: Any = None
    max_tool_calls: int = 50
    max_request_bytes: ByteSize = attrs.field(default=64 * 1024,
                                         converter=size_converter("max_request_bytes"))
    max_response_bytes: ByteSize = attrs.field(default=256 * 1024,
                                          converter=size_converter("max_response_bytes"))
    tool_timeout_seconds: float = 10.0
    timeout_seconds: float = 60.0
    max_output_bytes: ByteSize = attrs.field(default=16 * 1024,
                                        converter=size_converter("max_output_bytes"))
    write_tools: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.backend, str) or not self.backend:
            raise ConfigError(f"backend: expected a sandbox backend name, got {self.backend!r}")
        _positive("max_tool_calls", self.max_tool_calls, int)
        for field in ("max_request_bytes", "max_response_bytes", "max_output_bytes"):
            _positive(field, getattr(self, field), int)
        _positive("tool_timeout_seconds", self.tool_timeout_seconds)
        _positive("timeout_seconds", self.timeout_seconds)
        for name in self.write_tools:
            if not isinstance(name, str) or not name:
                raise ConfigError(f"write_tools: expected tool names, got {name!r}")


@attrs.frozen
class LLMSettings:
    """``[llm]`` settings beside the provider's own table.

    Attributes:
        code_mode: ``[llm.code_mode]``: when set, agents built without ``code_mode=`` run
            in code mode with these settings.
    """

    code_mode: CodeMode | None = None


def offered_tools(tools: Mapping[str, Tool], mode: CodeMode) -> dict[str, Tool]:
    """The tools a program may call: the read-only ones and those ``write_tools`` names."""
    allowed = set(mode.write_tools)
    return {name: tool for name, tool in tools.items()
            if name != RUN_CODE and (tool.read_only or name in allowed)}


def _signature(tool: Tool) -> str:
    properties = tool.parameters.get("properties") or {}
    required = set(tool.parameters.get("required") or ())
    names = [name if name in required else f"{name}=..." for name in properties]
    return f"{tool.name}({', '.join(names)})"


def run_code_description(tools: Mapping[str, Tool], mode: CodeMode) -> str:
    """What the model reads about ``run_code``: how to call tools, and one line per tool."""
    lines = [
        "Run a Python program in a sandbox and return what it printed. Inside the program "
        "the tools below are Python functions: `from host import tools`, then "
        "`tools.NAME(arg=value, ...)` with keyword arguments; `help(tools.NAME)` prints a "
        "tool's full definition. Process data inside the program (loops, filters, "
        "variables) and print only what you need to see.",
        f"Limits: {mode.max_tool_calls} tool calls, {mode.timeout_seconds:g} s per program, "
        f"{mode.tool_timeout_seconds:g} s per call; a failed or refused call raises an "
        "exception carrying its message.",
        "Tools:" if tools else "No tools are available in the program.",
    ]
    for tool in tools.values():
        summary = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
        lines.append(f"- {_signature(tool)}: {summary}" if summary else f"- {_signature(tool)}")
    return "\n".join(lines)


def _docstring(tool: Tool) -> str:
    """The tool's description and an ``Args:`` section, the guest's ``help()`` text."""
    lines = [tool.description.strip() or tool.name]
    properties = tool.parameters.get("properties") or {}
    if properties:
        lines += ["", "Args:"]
        for name, schema in properties.items():
            what = schema.get("description", "") if isinstance(schema, Mapping) else ""
            kind = schema.get("type", "") if isinstance(schema, Mapping) else ""
            lines.append(f"    {name} ({kind}): {what}".rstrip(": ") if kind else
                         f"    {name}: {what}".rstrip(": "))
    return "\n".join(lines)


@attrs.frozen
class Reconciliation:
    """How the sandbox's record of calls, the host's and the audit log's compare.

    Attributes:
        ok: nothing disagrees and no call was abandoned.
        problems: one line per disagreement.
        abandoned: calls the guest was answered for while they still ran on the host.
        audited: whether audit records were checked (``False``: no audit log to read).
    """

    ok: bool
    problems: tuple[str, ...] = ()
    abandoned: int = 0
    audited: bool = False


@attrs.define
class CodeRun:
    """One program run by ``run_code``: what it printed and every tool call it made.

    Attributes:
        code: the program.
        exit_code, reason, stdout, stderr: how it ended (``reason`` as the sandbox says).
        calls: the host's record of each call: ``seq``, ``name``, ``status`` (``"ok"``,
            ``"denied"``, ``"error"``, ``"timeout"``, ``"cancelled"``, ``"refused"``),
            ``error``, ``duration_ms``, ``audit_seq``.
        sandbox_calls: the sandbox runtime's record of each call.
        reconciliation: how those records and the audit log agree.
    """

    code: str
    exit_code: int | None = None
    reason: str = ""
    stdout: str = ""
    stderr: str = ""
    calls: list[dict[str, Any]] = attrs.field(factory=list)
    sandbox_calls: tuple[HostCallRecord, ...] = ()
    reconciliation: Reconciliation | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return attrs.asdict(self, recurse=True)


class ToolBroker:
    """Runs the calls of one program on the host, through the agent's guarded tool path."""

    def __init__(self, agent: Any, mode: CodeMode, tools: Mapping[str, Tool], run: CodeRun,
                 *, session: str, trace_id: str, run_id: str) -> None:
        self._agent = agent
        self._mode = mode
        self._tools = dict(tools)
        self._run = run
        self._session = session
        self._trace_id = trace_id
        self._run_id = run_id
        self._deadline = time.monotonic() + mode.timeout_seconds
        self._scopes: set[anyio.CancelScope] = set()
        self._idle = anyio.Event()
        self._idle.set()
        self._parent = _current_span()

    def host_tools(self) -> HostTools:
        """The :class:`HostTools` handed to the sandbox."""
        specs = tuple(HostTool(name=t.name, description=_docstring(t),
                               input_schema=dict(t.parameters),
                               timeout_seconds=self._mode.tool_timeout_seconds)
                      for t in self._tools.values())
        return HostTools(tools=specs, call=self.call, max_calls=self._mode.max_tool_calls,
                         max_request_bytes=self._mode.max_request_bytes,
                         max_response_bytes=self._mode.max_response_bytes)

    def _refuse(self, name: str, kind: str, message: str) -> HostToolError:
        self._run.calls.append({"seq": len(self._run.calls) + 1, "name": name,
                                "status": "refused", "error": message, "kind": kind,
                                "duration_ms": 0.0, "audit_seq": None})
        return HostToolError(kind, message)

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Run one call from the program; return its JSON-ready result.

        Raises:
            HostToolError: the call was refused, denied, failed or timed out (its
                message is all the program sees).
        """
        tool = self._tools.get(name)
        if tool is None:
            raise HostToolError("unknown_tool", f"no tool named {name!r}")
        if len(self._run.calls) >= self._mode.max_tool_calls:
            raise self._refuse(name, "budget_exceeded",
                               f"max_tool_calls={self._mode.max_tool_calls} used up")
        if time.monotonic() >= self._deadline:
            raise self._refuse(name, "budget_exceeded",
                               f"timeout_seconds={self._mode.timeout_seconds:g} passed")
        try:
            size = len(json.dumps(arguments, separators=(",", ":")).encode())
        except (TypeError, ValueError):
            raise self._refuse(name, "invalid_arguments", "arguments are not JSON") from None
        if size > self._mode.max_request_bytes:
            raise self._refuse(name, "too_large", f"request of {size} bytes is over "
                               f"max_request_bytes={self._mode.max_request_bytes}")
        try:
            tool.prepare(arguments)
        except AgentError as exc:
            raise self._refuse(name, "invalid_arguments", str(exc)) from None
        seq = len(self._run.calls) + 1
        entry: dict[str, Any] = {"seq": seq, "name": name, "status": "running"}
        self._run.calls.append(entry)
        call = ToolCall(f"{self._run_id}.{seq}", name, arguments)
        record = await self._guarded(call)
        entry.update(status=record["status"], error=record.get("error"),
                     duration_ms=record["duration_ms"], audit_seq=record.get("audit_seq"))
        return self._answer(name, record, entry)

    async def _guarded(self, call: ToolCall) -> dict[str, Any]:
        remaining = self._deadline - time.monotonic()
        timeout = max(0.001, min(self._mode.tool_timeout_seconds, remaining))
        self._idle = anyio.Event() if not self._scopes else self._idle
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                with _use_span(self._parent):
                    return dict(await self._agent._run_tool(
                        call, self._session, self._trace_id, tools=self._tools,
                        timeout=timeout, component="agent.code_mode"))
            finally:
                self._scopes.discard(scope)
                if not self._scopes:
                    self._idle.set()
        return {"status": "cancelled", "error": "the program ended during the call",
                "duration_ms": 0.0}

    def _answer(self, name: str, record: dict[str, Any], entry: dict[str, Any]) -> Any:
        status = record["status"]
        if status == "ok":
            try:
                encoded = json.dumps(record["result"], default=str, separators=(",", ":"))
            except (TypeError, ValueError) as exc:
                entry.update(status="error", error=f"result is not JSON: {exc}")
                raise HostToolError("tool_error", f"{name}: result is not JSON") from None
            if len(encoded.encode()) > self._mode.max_response_bytes:
                message = (f"{name}: result of {len(encoded.encode())} bytes is over "
                           f"max_response_bytes={self._mode.max_response_bytes}")
                entry.update(status="refused", error=message, kind="too_large")
                raise HostToolError("too_large", message)
            return json.loads(encoded)
        error = str(record.get("error") or status)
        kinds = {"denied": "denied", "timeout": "timeout", "cancelled": "cancelled"}
        raise HostToolError(kinds.get(status, "tool_error"), error)

    async def close(self) -> None:
        """Cancel calls still running after the program ended and wait for them."""
        for scope in list(self._scopes):
            scope.cancel()
        with anyio.move_on_after(5, shield=True):
            await self._idle.wait()


def _current_span() -> Any:
    from opentelemetry import trace

    return trace.get_current_span()


def _use_span(span: Any) -> Any:
    from opentelemetry import trace

    return trace.use_span(span, end_on_exit=False)


def reconcile(run: CodeRun, audit_lines: Sequence[Mapping[str, Any]] | None) -> Reconciliation:
    """Compare the sandbox's record of calls with the host's and with the audit records.

    Calls the runtime refused by itself (unknown tool, invalid arguments, over its own
    bounds) never reach the host and need no audit record; every other call must appear in
    the same order in both records, and each call the guards decided must have its
    decision, and (when allowed) its outcome, in the audit log.
    """
    problems: list[str] = []
    reached = [c for c in run.sandbox_calls if c.outcome in _REACHED_HOST]
    hosted = list(run.calls)
    if len(reached) != len(hosted):
        problems.append(f"the sandbox saw {len(reached)} call(s) reach the host, the host "
                        f"ran {len(hosted)}")
    for sandbox_call, host_call in zip(reached, hosted, strict=False):
        if sandbox_call.tool != host_call["name"]:
            problems.append(f"call {host_call['seq']}: the sandbox says {sandbox_call.tool!r}, "
                            f"the host ran {host_call['name']!r}")
        elif (sandbox_call.outcome == "ok") != (host_call["status"] == "ok") and not (
                sandbox_call.outcome == "timeout" and host_call["status"] in ("timeout",
                                                                            "cancelled")):
            problems.append(f"call {host_call['seq']} ({host_call['name']}): the sandbox "
                            f"says {sandbox_call.outcome}, the host {host_call['status']}")
    for host_call in hosted:
        if host_call["status"] == "running":
            problems.append(f"call {host_call['seq']} ({host_call['name']}) never ended")
    abandoned = sum(1 for c in run.sandbox_calls if c.abandoned)
    if abandoned:
        problems.append(f"{abandoned} call(s) abandoned: the program was answered while "
                        "the tool still ran")
    audited = audit_lines is not None
    if audit_lines is not None:
        problems += _audit_problems(hosted, audit_lines)
    return Reconciliation(ok=not problems, problems=tuple(problems), abandoned=abandoned,
                          audited=audited)


def _audit_problems(hosted: Sequence[Mapping[str, Any]],
                    lines: Sequence[Mapping[str, Any]]) -> list[str]:
    by_seq = {line.get("seq"): line for line in lines}
    outcomes: dict[str, int] = {}
    for line in lines:
        if (line.get("event") == "action_outcome" and line.get("action") == "tool"
                and line.get("outcome") != "cancelled"):
            outcomes[str(line.get("resource"))] = outcomes.get(str(line.get("resource")), 0) + 1
    expected: dict[str, int] = {}
    problems: list[str] = []
    for call in hosted:
        if call["status"] in ("refused", "cancelled"):
            continue  # refused before the guards; cancelled calls leave no result
        seq = call.get("audit_seq")
        label = f"call {call['seq']} ({call['name']})"
        if seq is None:
            problems.append(f"{label}: no audit record of its guard decision")
            continue
        line = by_seq.get(seq)
        if line is None:
            problems.append(f"{label}: audit record {seq} is not in the log")
            continue
        decision = "deny" if call["status"] == "denied" else "allow"
        if line.get("resource") != call["name"] or line.get("decision") != decision:
            problems.append(f"{label}: audit record {seq} says {line.get('decision')} "
                            f"{line.get('resource')!r}")
        if decision == "allow":
            expected[call["name"]] = expected.get(call["name"], 0) + 1
    for name, count in expected.items():
        if outcomes.get(name, 0) != count:
            problems.append(f"{name}: {count} allowed call(s), {outcomes.get(name, 0)} "
                            "outcome record(s) in the audit log")
    return problems


def audit_log_of(gate: Any) -> Path | None:
    """The audit log file ``gate`` writes to, when it writes one."""
    if gate is None:
        return None
    audit = getattr(gate, "audit", None)
    if audit is None and type(gate).__name__ == "DefaultGate":
        from neuroflow.security.manager import get_default_gate

        audit = getattr(get_default_gate(), "audit", None)
    path = getattr(audit, "path", None)
    return Path(path) if path is not None else None


def audit_offset(path: Path | None) -> int | None:
    """The current size of the audit log (where this run's records will start)."""
    if path is None:
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_audit_since(path: Path | None, offset: int | None, trace_id: str,
                     limit: int = 16 * 1024 * 1024) -> list[dict[str, Any]] | None:
    """This trace's audit records written after ``offset`` (``None`` when unreadable or
    rotated meanwhile: the audit part of the reconciliation is then skipped)."""
    if path is None or offset is None:
        return None
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() < offset:
                return None  # rotated during the run
            handle.seek(offset)
            data = handle.read(limit)
    except OSError:
        return None
    records: list[dict[str, Any]] = []
    for raw in data.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("trace_id") == trace_id:
            records.append(record)
    return records


def render_for_model(run: CodeRun) -> str:
    """What the model reads of a run: how it ended and what it printed (capped)."""
    parts = [f"exit_code: {run.exit_code}" + (f" ({run.reason})" if run.reason != "exited"
                                               else "")]
    if run.stdout:
        parts.append("stdout:\n" + run.stdout)
    if run.stderr and (run.exit_code != 0 or not run.stdout):
        parts.append("stderr:\n" + run.stderr)
    failed = [c for c in run.calls if c.get("status") != "ok"]
    parts.append(f"tool calls: {len(run.calls)}" + (f" ({len(failed)} failed or refused)"
                                                     if failed else ""))
    return "\n".join(parts)


def _cut(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return text + (f"\n... ({len(data) - limit} more bytes cut)" if len(data) > limit else "")


async def run_program(agent: Any, sandbox: Any, mode: CodeMode, code: str, *, session: str,
                      trace_id: str, run_id: str) -> CodeRun:
    """Run ``code`` in ``sandbox`` with the agent's offered tools; reconcile the records."""
    tools = offered_tools(agent.tools, mode)
    run = CodeRun(code=code)
    broker = ToolBroker(agent, mode, tools, run, session=session, trace_id=trace_id,
                        run_id=run_id)
    log_path = audit_log_of(agent.gate)
    offset = audit_offset(log_path)
    try:
        result = await sandbox.run_code(code, "python", timeout=mode.timeout_seconds,
                                        host_tools=broker.host_tools())
    finally:
        await broker.close()
    run.exit_code = result.exit_code
    run.reason = str(getattr(result.reason, "value", result.reason))
    run.stdout = _cut(result.stdout, mode.max_output_bytes)
    run.stderr = _cut(result.stderr, mode.max_output_bytes)
    run.sandbox_calls = tuple(result.host_calls)
    run.reconciliation = reconcile(run, read_audit_since(log_path, offset, trace_id))
    return run
