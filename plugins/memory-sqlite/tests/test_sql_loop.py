"""SQLite: the event loop never waits for the reader connection a worker thread holds.

A worker thread holds the in-place reader (as while it builds an agent's column cache);
the lock is given back only when another task of the loop runs.  If a read blocked the
loop on that lock, the other task could not run and the holder would give up instead.
"""

from __future__ import annotations

import threading

import anyio
import pytest

from neuroflow.testing.memory import Clock, make_manager
from neuroflow_memory_sqlite.store import SqliteStoreConfig, SqlStore


@pytest.mark.anyio
async def test_reads_do_not_block_the_loop_on_a_busy_reader(sqlite_url: str) -> None:
    store = SqlStore(SqliteStoreConfig(url=sqlite_url))
    manager = make_manager(store, Clock(), max_entries=1000)
    for i in range(20):
        await manager.store_memory("a", f"k{i}", {"text": f"dark theme {i}"})
    await manager.search_memories("a", "dark")  # the column cache is fresh: searched in place
    for call in (
        lambda: manager.retrieve_memory("a", "k1"),
        lambda: manager.search_memories("a", "dark theme"),
        lambda: manager.store_memory("a", "new", 1),
    ):
        held, release = threading.Event(), threading.Event()
        outcome: dict[str, bool] = {}

        def hold(held: threading.Event = held, release: threading.Event = release,
                 outcome: dict[str, bool] = outcome) -> None:
            with store._reader_lock:
                held.set()
                outcome["released_by_the_loop"] = release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait()
        results: list[object] = []

        async def read(call: object = call, results: list[object] = results) -> None:
            results.append(await call())  # type: ignore[operator]

        async def other(release: threading.Event = release) -> None:
            release.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            tg.start_soon(other)
        await anyio.to_thread.run_sync(holder.join)
        assert outcome == {"released_by_the_loop": True}
        assert results and results[0]
    await manager.aclose()
