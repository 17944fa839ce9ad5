"""The hop to a worker thread that Python runs and session turns take (hop.py)."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

from neuroflow_sandbox_wasm import hop

pytestmark = pytest.mark.anyio
HANG = 60
_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


async def test_results_errors_and_the_callers_context_cross_the_hop() -> None:
    limiter = anyio.CapacityLimiter(2)
    _SEEN.set("the caller's")

    def where() -> tuple[str, int]:
        return _SEEN.get(), threading.get_ident()

    seen, ident = await hop.run_sync(where, limiter=limiter)
    assert seen == "the caller's" and ident != threading.get_ident()

    def fail(message: str) -> None:
        raise LookupError(message)

    with pytest.raises(LookupError, match="from the worker"):
        await hop.run_sync(fail, "from the worker", limiter=limiter)
    assert limiter.borrowed_tokens == 0


async def test_an_idle_thread_takes_the_next_call() -> None:
    limiter = anyio.CapacityLimiter(1)
    idents = {await hop.run_sync(threading.get_ident, limiter=limiter) for _ in range(20)}
    assert len(idents) == 1


async def test_the_limiter_bounds_calls_at_once() -> None:
    limiter = anyio.CapacityLimiter(2)
    lock = threading.Lock()
    running = [0]
    most = [0]
    release = threading.Event()

    def hold() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(HANG)
        with lock:
            running[0] -= 1

    with anyio.fail_after(HANG):
        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(lambda: hop.run_sync(hold, limiter=limiter))
            while running[0] < 2:
                await anyio.sleep(0.01)
            assert limiter.borrowed_tokens == 2 and limiter.statistics().tasks_waiting == 3
            release.set()
    assert most[0] == 2 and limiter.borrowed_tokens == 0


async def test_a_cancelled_caller_stops_the_call_and_returns_at_once() -> None:
    """The caller's cancellation calls on_cancel (the call is told to stop), gives the
    token back and propagates while the call is still running."""
    limiter = anyio.CapacityLimiter(1)
    stop = threading.Event()
    started = threading.Event()
    finished = threading.Event()

    def blocked() -> None:
        started.set()
        stop.wait(HANG)
        finished.set()

    with anyio.fail_after(HANG):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: hop.run_sync(blocked, limiter=limiter,
                                                      on_cancel=stop.set))
                while not started.is_set():
                    await anyio.sleep(0.01)
                scope.cancel()
        assert scope.cancelled_caught and stop.is_set()
        assert limiter.borrowed_tokens == 0
        await anyio.to_thread.run_sync(finished.wait, HANG)


def test_idle_threads_do_not_hold_up_exit(tmp_path: Path) -> None:
    """The pool's threads are not daemon threads (a guest running at exit is waited for),
    but idle ones end at exit: a program that made a hop exits although its thread would
    otherwise wait an hour for its next call."""
    program = tmp_path / "hop_exit.py"
    program.write_text(
        "import anyio\n"
        "from neuroflow_sandbox_wasm import hop\n"
        "hop.IDLE_SECONDS = 3600\n"
        "async def main():\n"
        "    print(await hop.run_sync(lambda: 'done', limiter=anyio.CapacityLimiter(1)))\n"
        "anyio.run(main)\n")
    done = subprocess.run([sys.executable, str(program)], capture_output=True, text=True,
                          timeout=HANG)
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
