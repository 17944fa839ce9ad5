"""One hop to a worker thread and back for the sandbox's blocking Python calls.

A Python session turn (``print(1)``) takes about 0.6 ms, and ``anyio.to_thread.run_sync``
added 0.1-0.2 ms to it here: its capacity-limiter dance and two cancel-shielded
checkpoints (extra passes of the event loop) on the way out, its worker bookkeeping
(holding the GIL while the event loop wants it back) on the way back.  :func:`run_sync`
makes the same hop with less: the call runs on an idle thread of this module's pool (the
one that ran last, a new one when none is idle), in a copy of the caller's context, and
wakes the event loop once (``call_soon_threadsafe`` on asyncio, the Trio token's
``run_sync_soon`` on Trio) just before its thread waits for the next call.

Idle threads end after :data:`IDLE_SECONDS`, and at interpreter exit (before Python
joins its threads, as ``concurrent.futures`` does); they are not daemon threads, so a
guest still running at exit is waited for rather than killed inside wasmtime.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")

#: Seconds an idle thread waits for another call before it ends.
IDLE_SECONDS = 10.0

#: The idle threads' queues, the thread that ran last at the end.
_IDLE: list[queue.SimpleQueue[Callable[[], None] | None]] = []
_IDLE_LOCK = threading.Lock()
_EXIT_HOOKED = False
_EXITING = False


def _submit(call: Callable[[queue.SimpleQueue[Any]], None]) -> None:
    """Run ``call(its_queue)`` on an idle thread, or a new one."""
    global _EXIT_HOOKED
    with _IDLE_LOCK:
        jobs = _IDLE.pop() if _IDLE else None
        if not _EXIT_HOOKED:
            _EXIT_HOOKED = True
            register = getattr(threading, "_register_atexit", None)
            if register is not None:  # before Python joins its threads
                register(_stop_idle)
            else:  # pragma: no cover - Python < 3.9
                import atexit

                atexit.register(_stop_idle)
    if jobs is None:
        jobs = queue.SimpleQueue()
        threading.Thread(target=_serve, args=(jobs,), name="neuroflow-wasm-python",
                         daemon=False).start()
    jobs.put(lambda: call(jobs))


def _serve(jobs: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    while True:
        try:
            job = jobs.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with _IDLE_LOCK:
                if jobs in _IDLE:  # else a call was just handed to it: take it
                    _IDLE.remove(jobs)
                    return
            continue
        if job is None:
            return
        job()


def _stop_idle() -> None:
    global _EXITING
    with _IDLE_LOCK:
        _EXITING = True
        idle = list(_IDLE)
        _IDLE.clear()
    for jobs in idle:
        jobs.put(None)


def _idle_again(jobs: queue.SimpleQueue[Any]) -> None:
    """The thread of ``jobs`` takes calls again (before it wakes the loop, so that the
    caller's next call finds it)."""
    with _IDLE_LOCK:
        if _EXITING:
            jobs.put(None)  # the thread ends after this call
        else:
            _IDLE.append(jobs)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if not future.done():  # not cancelled meanwhile
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


async def run_sync(func: Callable[..., T], *args: Any, limiter: anyio.CapacityLimiter,
                   on_cancel: Callable[[], None] | None = None) -> T:
    """``func(*args)`` in a worker thread, holding a token of ``limiter`` meanwhile.

    If the caller is cancelled while it runs, ``on_cancel()`` is called (it should make
    ``func`` return soon), the token is given back and the cancellation propagates at once;
    the thread finishes by itself and its result is dropped.  (Cancelled before the call
    starts, the call still goes to the thread, with ``on_cancel()`` already called.)
    """
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        await limiter.acquire()
    try:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: Trio, the other backend anyio runs on
            loop = None
        if loop is not None:
            return await _on_asyncio(loop, func, args, on_cancel)
        return await _on_trio(func, args, on_cancel)
    finally:
        limiter.release()


async def _on_asyncio(loop: asyncio.AbstractEventLoop, func: Callable[..., T],
                      args: tuple[Any, ...], on_cancel: Callable[[], None] | None) -> T:
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def call(jobs: queue.SimpleQueue[Any]) -> None:
        try:
            ok, value = True, context.run(func, *args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            ok, value = False, exc
        _idle_again(jobs)
        try:
            loop.call_soon_threadsafe(_settle, future, ok, value)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    _submit(call)
    try:
        return await future
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        raise


async def _on_trio(func: Callable[..., T], args: tuple[Any, ...],
                   on_cancel: Callable[[], None] | None) -> T:
    import trio

    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    outcome: list[tuple[bool, Any]] = []
    context = contextvars.copy_context()

    def call(jobs: queue.SimpleQueue[Any]) -> None:
        try:
            outcome.append((True, context.run(func, *args)))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome.append((False, exc))
        _idle_again(jobs)
        try:
            token.run_sync_soon(done.set)
        except trio.RunFinishedError:  # the run has ended: nobody waits any more
            pass

    _submit(call)
    try:
        await done.wait()
    except trio.Cancelled:
        if on_cancel is not None:
            on_cancel()
        raise
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
