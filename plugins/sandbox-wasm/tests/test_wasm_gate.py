"""Every execution passes the security gate first and its outcome is recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wat_modules as wat

from neuroflow.errors import SecurityError
from neuroflow_sandbox_wasm.sandbox import WasmSandbox

pytestmark = pytest.mark.anyio


class RecordingGate:
    """An ActionGate that allows (or denies) everything and remembers what it saw."""

    def __init__(self, allow: bool = True) -> None:
        self.allow = allow
        self.asked: list[Any] = []
        self.outcomes: list[tuple[Any, str, dict[str, Any]]] = []

    async def authorize(self, action: Any, context: Any) -> None:
        self.asked.append((action, context))
        if not self.allow:
            raise SecurityError(f"denied {action.target}")

    async def record_outcome(self, action: Any, context: Any, outcome: str,
                             details: dict[str, Any] | None = None) -> None:
        self.outcomes.append((action, outcome, dict(details or {})))


async def test_a_denying_gate_stops_the_execution(make_config: Callable[..., Any],
                                                   tmp_path: Path) -> None:
    gate = RecordingGate(allow=False)
    config = make_config(preopens=[(tmp_path, "/data", False)])
    async with WasmSandbox(config, gate=gate) as sandbox:
        with pytest.raises(SecurityError, match="denied wasm:"):
            await sandbox.execute(wat.open_file("made.txt", write=True))
    assert not (tmp_path / "made.txt").exists()  # nothing ran
    [(action, context)] = gate.asked
    assert action.kind == "command" and context.component == "sandbox.wasm"
    assert action.resources == {"paths": (str(tmp_path),)}
    assert gate.outcomes == []


async def test_outcomes_are_recorded(make_config: Callable[..., Any], tmp_path: Path) -> None:
    gate = RecordingGate()
    path = tmp_path / "exit3.wasm"
    path.write_bytes(wat.exit_with(3))
    async with WasmSandbox(make_config(max_fuel=10_000), gate=gate, actor="agent-7") as sb:
        ok = await sb.execute(wat.HELLO, ["one"])
        await sb.execute(str(path))
        await sb.execute(wat.SPIN)
    assert ok.ok
    targets = [action.target for action, _ in gate.asked]
    assert targets == [f"wasm:{hashlib.sha256(wat.HELLO).hexdigest()[:16]}", str(path),
                       f"wasm:{hashlib.sha256(wat.SPIN).hexdigest()[:16]}"]
    assert gate.asked[0][0].arguments == ["one"] and gate.asked[0][0].actor == "agent-7"
    assert [outcome for _, outcome, _ in gate.outcomes] == ["success", "error", "cpu_limit"]
    assert gate.outcomes[1][2]["exit_code"] == 3


async def test_a_failure_to_run_is_recorded_as_an_error(
        make_config: Callable[..., Any]) -> None:
    gate = RecordingGate()
    async with WasmSandbox(make_config(), gate=gate) as sandbox:
        with pytest.raises(Exception, match="not a valid"):
            await sandbox.execute(b"\0asm\x01\0\0\0junk")
    [(_, outcome, details)] = gate.outcomes
    assert outcome == "error" and "not a valid" in details["error"]


async def test_the_default_gate_is_used_when_none_is_given(
        make_config: Callable[..., Any]) -> None:
    from neuroflow.security.manager import DefaultGate, set_default_gate

    gate = RecordingGate(allow=False)
    set_default_gate(gate)
    try:
        sandbox = WasmSandbox(make_config())
        assert isinstance(sandbox._gate, DefaultGate)
        with pytest.raises(SecurityError):
            await sandbox.execute(wat.HELLO)
    finally:
        set_default_gate(None)
    assert len(gate.asked) == 1
