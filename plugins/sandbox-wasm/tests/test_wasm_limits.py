"""Hostile modules end within their limit, with the right reason, and the host keeps
serving other executions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import wat_modules as wat

from neuroflow.sandbox import TerminationReason
from neuroflow_sandbox_wasm.result import TRAP_EXIT_CODE, WasmEndReason
from neuroflow_sandbox_wasm.sandbox import INLINE_MAX_FUEL, WasmSandbox

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024
#: No run here may take this long: a hang fails the test instead of blocking the suite.
HANG = 60


async def test_infinite_loop_ends_by_fuel(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(max_fuel=2_000_000, timeout_seconds=None),
                           gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.execute(wat.SPIN)
        smaller = await sandbox.execute(wat.SPIN, fuel=1000)
        assert (await sandbox.execute(wat.HELLO)).ok
    assert result.wasm_reason is WasmEndReason.OUT_OF_FUEL
    assert result.reason is TerminationReason.CPU_LIMIT
    assert result.fuel_consumed == 2_000_000
    assert result.limits_hit == ("fuel",)
    assert result.exit_code == TRAP_EXIT_CODE and not result.ok
    assert "fuel" in (result.trap or "")
    assert smaller.wasm_reason is WasmEndReason.OUT_OF_FUEL and smaller.fuel_consumed == 1000


async def test_infinite_loop_ends_by_timeout_without_fuel(
        make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(max_fuel=None, timeout_seconds=0.3),
                           gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.execute(wat.SPIN)
            shorter = await sandbox.execute(wat.SPIN, timeout=0.05)
        assert (await sandbox.execute(wat.HELLO)).ok
    for run in (result, shorter):
        assert run.wasm_reason is WasmEndReason.TIMED_OUT
        assert run.reason is TerminationReason.TIMED_OUT
        assert run.limits_hit == ("timeout",)
        assert run.fuel_consumed is None
    assert result.wall_time_ms >= 300  # it did run until the limit


async def test_sleeping_past_the_timeout_is_cut_short(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(timeout_seconds=0.3), gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.execute(wat.sleep_then_exit(3600))
        short = await sandbox.execute(wat.sleep_then_exit(0.01, code=4))
    assert result.wasm_reason is WasmEndReason.TIMED_OUT
    assert "timeout" in result.limits_hit
    assert short.wasm_reason is WasmEndReason.EXITED and short.exit_code == 4


async def test_the_loop_is_not_frozen_by_a_long_run(make_config: Callable[..., Any]) -> None:
    ticks = 0

    async def count() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with WasmSandbox(make_config(timeout_seconds=0.5), gate=False) as sandbox:
        async with anyio.create_task_group() as group:
            group.start_soon(count)
            result = await sandbox.execute(wat.SPIN)
            group.cancel_scope.cancel()
    assert result.wasm_reason is WasmEndReason.TIMED_OUT
    assert ticks >= 5  # the loop kept running while the module spun


async def test_memory_growth_past_the_limit(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(max_memory_bytes=2 * MiB), gate=False) as sandbox:
        result = await sandbox.execute(wat.GROW_UNTIL_REFUSED)
    assert result.wasm_reason is WasmEndReason.MEMORY_LIMIT
    assert result.reason is TerminationReason.MEMORY_LIMIT
    assert "memory" in result.limits_hit
    assert result.peak_memory_bytes == 2 * MiB  # grew to the limit, never past it


def _grow_once(pages: int, after: str) -> bytes:
    """One ``memory.grow(pages)``; when refused, ``after`` (WAT) runs; else exit 0."""
    return wat._module(f"""
      (func (export "_start")
        (if (i32.eq (memory.grow (i32.const {pages})) (i32.const -1))
          (then {after}))
        (call $proc_exit (i32.const 0)))""")


@pytest.mark.parametrize("after", [
    "(call $proc_exit (i32.const 1))",  # gives up with an error
    "(call $proc_exit (i32.const 0))",  # claims success
    "unreachable",  # aborts
    "(loop $forever (br $forever))",  # ignores the refusal and computes on
])
async def test_an_oversized_memory_grow_ends_the_run_as_memory_limit(
        make_config: Callable[..., Any], after: str) -> None:
    """A single memory.grow far past max_memory_bytes (64 MiB asked, 2 MiB allowed) is
    refused, recorded and ends the run ``memory_limit``, whatever the module does next."""
    async with WasmSandbox(make_config(max_memory_bytes=2 * MiB, timeout_seconds=30),
                           gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.execute(_grow_once(1024, after))
        fits = await sandbox.execute(_grow_once(16, after))  # 1 MiB more: allowed
    assert result.wasm_reason is WasmEndReason.MEMORY_LIMIT, result
    assert result.reason is TerminationReason.MEMORY_LIMIT
    assert result.limits_hit == ("memory",)
    assert result.exit_code == TRAP_EXIT_CODE and not result.ok
    assert result.peak_memory_bytes == 64 * 1024  # it never got the memory
    assert result.wall_time_ms < 20_000  # ended at its next check, not by the timeout
    assert fits.ok and fits.peak_memory_bytes == 17 * 64 * 1024


@pytest.mark.parametrize("fuel", [INLINE_MAX_FUEL, 50_000_000])
async def test_a_refused_grow_ends_as_memory_limit_even_when_fuel_runs_out_first(
        make_config: Callable[..., Any], fuel: int) -> None:
    """A module that ignores the refused memory.grow and spins until its fuel is gone (on
    the event loop with a small budget, in a worker with a larger one) ended because of
    the memory limit: that is its reason, fuel is only what stopped it."""
    spin = "(loop $forever (br $forever))"
    async with WasmSandbox(make_config(max_memory_bytes=2 * MiB, max_fuel=fuel,
                                       timeout_seconds=None), gate=False) as sandbox:
        with anyio.fail_after(HANG):
            result = await sandbox.execute(_grow_once(1024, spin))
            fits = await sandbox.execute(_grow_once(16, spin))
    assert result.wasm_reason is WasmEndReason.MEMORY_LIMIT, result
    assert result.reason is TerminationReason.MEMORY_LIMIT
    assert "memory" in result.limits_hit and not result.ok
    assert fits.ok, fits


async def test_the_memory_limit_counts_the_whole_store(make_config: Callable[..., Any]) -> None:
    """Growing within the limit, then past it in many small steps: refused at the limit."""
    async with WasmSandbox(make_config(max_memory_bytes=4 * MiB), gate=False) as sandbox:
        result = await sandbox.execute(_grow_once(63, "(call $proc_exit (i32.const 1))"))
        over = await sandbox.execute(_grow_once(64, "(call $proc_exit (i32.const 1))"))
    assert result.ok and result.peak_memory_bytes == 4 * MiB  # exactly the limit
    assert over.wasm_reason is WasmEndReason.MEMORY_LIMIT


async def test_initial_memory_over_the_limit_does_not_start(
        make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(max_memory_bytes=1 * MiB), gate=False) as sandbox:
        result = await sandbox.execute(wat.big_initial_memory(64))  # 4 MiB
        fits = await sandbox.execute(wat.big_initial_memory(16))  # 1 MiB
    assert result.wasm_reason is WasmEndReason.MEMORY_LIMIT
    assert "instantiation failed" in (result.trap or "")
    assert fits.ok


async def test_deep_recursion_traps(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        result = await sandbox.execute(wat.RECURSE)
        assert (await sandbox.execute(wat.HELLO)).ok
    assert result.wasm_reason is WasmEndReason.TRAPPED
    assert result.reason is TerminationReason.SIGNALLED
    assert "call stack exhausted" in (result.trap or "")


async def test_unreachable_traps(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        result = await sandbox.execute(wat.UNREACHABLE)
    assert result.wasm_reason is WasmEndReason.TRAPPED
    assert "unreachable" in (result.trap or "")


async def test_output_flood_is_capped(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(max_output_bytes=10_000, max_fuel=5_000_000),
                           gate=False) as sandbox:
        polite = await sandbox.execute(wat.flood(stop_on_error=True))
        with anyio.fail_after(HANG):
            hostile = await sandbox.execute(wat.flood(stop_on_error=False))
    assert polite.stdout == b"A" * 10_000 and polite.stdout_truncated
    assert polite.wasm_reason is WasmEndReason.OUTPUT_LIMIT
    assert polite.reason is TerminationReason.OUTPUT_LIMIT
    assert polite.exit_code == TRAP_EXIT_CODE
    # It ignores the failed writes: passing the cap ends it all the same (at its next epoch
    # check), long before its fuel runs out, with only what the cap allows.
    assert len(hostile.stdout) == 10_000 and hostile.stdout_truncated
    assert hostile.wasm_reason is WasmEndReason.OUTPUT_LIMIT, hostile
    assert hostile.limits_hit == ("output",)
    assert hostile.fuel_consumed is not None and hostile.fuel_consumed < 5_000_000


async def test_passing_the_cap_on_one_stream_ends_the_run(
        make_config: Callable[..., Any]) -> None:
    """A module that floods stderr, then writes to stdout or sleeps, gets no further: the
    run ends at the cap and nothing either stream gets afterwards is kept."""
    from suite_programs import _Wat

    after_flood = _Wat().repeat_write(2, "E" * 99 + "\n", 50).write(1, "survived\n").compile()
    sleeps = _Wat().repeat_write(2, "E" * 99 + "\n", 50).sleep(3600).write(1, "woke\n")
    async with WasmSandbox(make_config(max_output_bytes=1000, timeout_seconds=3600),
                           gate=False) as sandbox:
        with anyio.fail_after(HANG):
            written = await sandbox.execute(after_flood)
            slept = await sandbox.execute(sleeps.compile())
    for result in (written, slept):
        assert result.stderr == (b"E" * 99 + b"\n") * 10 and result.stderr_truncated
        assert result.stdout == b"", result
        assert result.wasm_reason is WasmEndReason.OUTPUT_LIMIT
    assert slept.wall_time_ms < 60_000  # the sleep was cut short at the cap


@pytest.fixture
def host_tree(tmp_path: Path) -> Path:
    """``tmp_path/granted/inside.txt`` and, outside the grant, ``tmp_path/secret.txt``."""
    (tmp_path / "granted").mkdir()
    (tmp_path / "granted" / "inside.txt").write_text("inside")
    (tmp_path / "secret.txt").write_text("host secret")
    return tmp_path


async def test_host_paths_outside_the_grant_cannot_be_read(
        make_config: Callable[..., Any], host_tree: Path) -> None:
    config = make_config(preopens=[(host_tree / "granted", "/data")])
    async with WasmSandbox(config, gate=False) as sandbox:
        inside = await sandbox.execute(wat.open_file("inside.txt"))
        attempts = [await sandbox.execute(wat.open_file(path)) for path in (
            "../secret.txt", str(host_tree / "secret.txt"), "/etc/passwd")]
    assert inside.stdout == b"inside" and inside.ok
    for result in attempts:
        assert result.wasm_reason is WasmEndReason.EXITED
        assert result.exit_code == wat.WASI_ERRNO["perm"], result
        assert b"secret" not in result.stdout and b"root:" not in result.stdout


async def test_nothing_is_reachable_without_a_grant(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        result = await sandbox.execute(wat.open_file("etc/passwd"))
    assert result.exit_code == wat.WASI_ERRNO["badf"]  # there is no fd 3 at all


async def test_read_only_grant_refuses_writes(make_config: Callable[..., Any],
                                              host_tree: Path) -> None:
    granted = host_tree / "granted"
    async with WasmSandbox(make_config(preopens=[(granted, "/data")]), gate=False) as sandbox:
        refused = await sandbox.execute(wat.open_file("new.txt", write=True))
        overwrite = await sandbox.execute(wat.open_file("inside.txt", write=True))
    assert refused.exit_code == wat.WASI_ERRNO["perm"]
    assert overwrite.exit_code == wat.WASI_ERRNO["perm"]
    assert not (granted / "new.txt").exists()
    assert (granted / "inside.txt").read_text() == "inside"
    writable = make_config(preopens=[(granted, "/data", False)])
    async with WasmSandbox(writable, gate=False) as sandbox:
        allowed = await sandbox.execute(wat.open_file("new.txt", write=True))
    assert allowed.ok and (granted / "new.txt").read_text() == "written"


async def test_links_cannot_lead_out_of_a_grant(make_config: Callable[..., Any],
                                               host_tree: Path) -> None:
    """Neither a link the module makes in a writable grant nor one planted on the host in a
    read-only grant lets it read outside: opening through either fails."""
    secret = host_tree / "secret.txt"
    writable = host_tree / "writable"
    writable.mkdir()
    (host_tree / "granted" / "planted").symlink_to(secret)
    async with WasmSandbox(make_config(preopens=[(writable, "/w", False)]),
                           gate=False) as sandbox:
        made = [await sandbox.execute(wat.make_symlink(target, f"link{i}"))
                for i, target in enumerate((str(secret), "../secret.txt"))]
        through = [await sandbox.execute(wat.open_file(f"link{i}")) for i in range(2)]
    async with WasmSandbox(make_config(preopens=[(host_tree / "granted", "/data")]),
                           gate=False) as sandbox:
        planted = await sandbox.execute(wat.open_file("planted"))
    for result in (*through, planted):
        assert result.exit_code != 0 and b"host secret" not in result.stdout, result
    assert all(r.wasm_reason is WasmEndReason.EXITED for r in made)


async def test_no_sockets(make_config: Callable[..., Any], host_tree: Path) -> None:
    async with WasmSandbox(make_config(preopens=[(host_tree / "granted", "/data")]),
                           gate=False) as sandbox:
        on_dir = await sandbox.execute(wat.accept_socket(3))
        on_stdin = await sandbox.execute(wat.accept_socket(0))
    # No socket is ever handed to a module: accept fails on every descriptor it has.
    assert on_dir.exit_code != 0 and on_stdin.exit_code != 0
    assert on_dir.wasm_reason is WasmEndReason.EXITED


async def test_a_cancelled_execution_stops_the_module(make_config: Callable[..., Any]) -> None:
    import threading

    before = threading.active_count()
    async with WasmSandbox(make_config(timeout_seconds=3600), gate=False) as sandbox:
        with anyio.move_on_after(0.3) as scope:
            await sandbox.execute(wat.SPIN)
        assert scope.cancelled_caught
        # The spinning module was stopped, not left running: the worker comes back and
        # serves the next execution (a leaked spinner would hold it for an hour).
        with anyio.fail_after(HANG):
            while threading.active_count() > before + 2:
                await anyio.sleep(0.05)
            assert (await sandbox.execute(wat.HELLO)).ok
