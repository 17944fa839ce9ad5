"""Executions bounded by a small fuel budget run on the event loop itself (no thread hop);
the loop is held only briefly, and a module that would sleep moves to a worker thread."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
import wat_modules as wat

from neuroflow_sandbox_wasm.result import WasmEndReason
from neuroflow_sandbox_wasm.sandbox import INLINE_MAX_FUEL, INLINE_YIELD_SECONDS, WasmSandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every call of ``anyio.to_thread.run_sync`` (a hop to a worker thread)."""
    calls: list[Any] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return calls


async def test_small_fuel_runs_inline(make_config: Callable[..., Any], hops: list[Any]) -> None:
    text = f"inline {uuid.uuid4().hex}\n"  # a module no other test compiled
    module = wat.write_text(text)
    async with WasmSandbox(make_config(max_fuel=INLINE_MAX_FUEL), gate=False) as sandbox:
        first = await sandbox.execute(module)  # compiled in a worker thread
        compiled_hops = len(hops)
        results = [await sandbox.execute(module) for _ in range(20)]
    assert first.ok and compiled_hops == 1
    assert len(hops) == compiled_hops, "a cached module under a small fuel budget hopped"
    assert all(r.stdout == text.encode() and r.ok for r in results)


@pytest.mark.parametrize("fields", [
    {"max_fuel": INLINE_MAX_FUEL + 1},  # too much fuel to hold the loop
    {"max_fuel": None},  # no fuel: no bound
])
async def test_unbounded_runs_use_a_worker(make_config: Callable[..., Any], hops: list[Any],
                                           fields: dict[str, Any]) -> None:
    async with WasmSandbox(make_config(**fields), gate=False) as sandbox:
        await sandbox.execute(wat.HELLO)
        before = len(hops)
        assert (await sandbox.execute(wat.HELLO)).ok
    assert len(hops) == before + 1


async def test_host_files_use_a_worker(make_config: Callable[..., Any], hops: list[Any],
                                       tmp_path: Path) -> None:
    config = make_config(max_fuel=INLINE_MAX_FUEL, preopens=[(tmp_path, "/data")])
    async with WasmSandbox(config, gate=False) as sandbox:
        await sandbox.execute(wat.HELLO)
        before = len(hops)
        await sandbox.execute(wat.HELLO)
        await sandbox.execute(wat.HELLO, files={"in.txt": b"x"})
    assert len(hops) == before + 2


async def test_a_module_that_sleeps_moves_to_a_worker(make_config: Callable[..., Any],
                                                      hops: list[Any]) -> None:
    """It is stopped at its sleep and run again in a worker: output once, sleep honoured."""
    from suite_programs import _Wat

    module = _Wat().write(1, "before\n").sleep(0.2).write(1, "after\n").compile()
    async with WasmSandbox(make_config(max_fuel=INLINE_MAX_FUEL), gate=False) as sandbox:
        await sandbox.execute(wat.HELLO)
        await sandbox.execute(module)  # compile it
        before = len(hops)
        started = time.monotonic()
        result = await sandbox.execute(module)
        elapsed = time.monotonic() - started
    assert result.ok and result.stdout == b"before\nafter\n", result
    assert len(hops) == before + 1
    assert elapsed >= 0.2


@pytest.mark.parametrize("window_passes", [True, False])
async def test_the_loop_is_held_only_briefly(make_config: Callable[..., Any],
                                             monkeypatch: pytest.MonkeyPatch,
                                             window_passes: bool) -> None:
    """An inline execution holds the loop for one fuel-bounded run (a module spinning
    forever stops at exactly INLINE_MAX_FUEL), and back-to-back executions give the loop's
    other tasks a turn once INLINE_YIELD_SECONDS of inline work has passed.

    No wall-clock judgement: the clock the sandbox reads for its yields is replaced by one
    that moves a whole window per reading (every execution then "takes" the window: a task
    on the loop must run between every two) or not at all (executions back to back need not
    yield: the watcher's turns then come only from the hops the test itself makes)."""
    from neuroflow_sandbox_wasm import sandbox as sandbox_module

    readings = iter(range(1, 10**6))
    step = 2 * INLINE_YIELD_SECONDS if window_passes else 0.0
    monkeypatch.setattr(sandbox_module, "_clock", lambda: next(readings) * step)
    watcher_turns = 0
    at_each_start: list[int] = []

    async def watch() -> None:
        nonlocal watcher_turns
        while True:
            await anyio.lowlevel.checkpoint()
            watcher_turns += 1

    async with WasmSandbox(make_config(max_fuel=INLINE_MAX_FUEL), gate=False) as sandbox:
        await sandbox.execute(wat.SPIN)  # compiled (in a worker) and cached
        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            await anyio.lowlevel.checkpoint()  # the watcher is running
            results = []
            for _ in range(50):
                at_each_start.append(watcher_turns)
                results.append(await sandbox.execute(wat.SPIN))
            at_each_start.append(watcher_turns)
            group.cancel_scope.cancel()
    assert all(r.wasm_reason is WasmEndReason.OUT_OF_FUEL for r in results)
    assert all(r.fuel_consumed == INLINE_MAX_FUEL for r in results)
    if window_passes:
        # The watcher never falls more than one turn behind the executions (Trio runs the
        # tasks ready at one checkpoint in either order, so a turn may show one execution
        # late); were the loop held throughout, it would have had no turn at all.
        behind = [k - (turns - at_each_start[0]) for k, turns in enumerate(at_each_start)]
        assert max(behind) <= 1, at_each_start
    else:
        assert at_each_start[-1] == at_each_start[0], at_each_start  # no needless yields
