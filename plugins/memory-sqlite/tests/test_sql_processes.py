"""Several processes, one store: visibility, no lost writes, durability across SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from neuroflow.memory import MemoryConfig, MemoryManager
from neuroflow_memory_sqlite.store import SqliteStoreConfig, SqlStore

WRITER = str(Path(__file__).with_name("memory_writer.py"))


def writer(url: str, prefix: str, mode: str, worker: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WRITER, url, prefix, mode, worker, str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def manager_for(url: str, prefix: str = "nf_memory_") -> MemoryManager:
    store = SqlStore(SqliteStoreConfig(url=url, table_prefix=prefix))
    return MemoryManager(MemoryConfig(max_entries=None), store=store, embedder="lexical")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, sqlite_url: str) -> tuple[str, str]:
    """(url, table prefix) of a store several processes share."""
    if request.param == "sqlite":
        return sqlite_url, "nf_memory_"
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("pg_prefix")


def test_memory_written_by_one_process_is_found_by_another(shared_url: tuple[str, str]) -> None:
    url, prefix = shared_url
    proc = writer(url, prefix, "keys", "w1", 3)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err

    async def read() -> None:
        async with manager_for(url, prefix) as manager:
            found = await manager.search_memories("agent-w1", tags=["w1"], limit=10)
            assert sorted(e.key for e in found) == ["w1-0", "w1-1", "w1-2"]
            assert (await manager.retrieve_memory("agent-w1", "w1-2")).value["i"] == 2

    anyio.run(read)


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(shared_url: tuple[str, str]) -> None:
    url, prefix = shared_url
    # Create the schema first so the writers race on data, not on CREATE TABLE.
    anyio.run(lambda: manager_for(url, prefix).stats())
    procs = [writer(url, prefix, "keys", f"w{n}", 150) for n in range(3)]
    procs += [writer(url, prefix, "counter", f"c{n}", 40) for n in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    async def check() -> None:
        async with manager_for(url, prefix) as manager:
            stats = await manager.stats()
            assert {a: n for a, n in stats["agents"].items() if a.startswith("agent-")} == {
                "agent-w0": 150, "agent-w1": 150, "agent-w2": 150}
            counter = await manager.retrieve_memory("shared", "counter")
            assert counter.value == 120 and counter.version == 120
            history = await manager.history("shared", "counter")
            assert [h.version for h in history] == list(range(1, 121))

    anyio.run(check)


def test_sigkill_mid_write_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    proc = writer(url, "nf_memory_", "forever", "k", 0)
    acknowledged = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acknowledged.append(line.strip())
        if len(acknowledged) >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # The line being read when the kill landed may name one more acknowledged write; every
    # line read so far was printed only after its commit returned.
    raw = sqlite3.connect(tmp_path / "killed.db")
    assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    raw.close()

    async def check() -> None:
        async with manager_for(url) as manager:
            stored = {e.key for e in await manager.list_memories("agent-k", limit=None)}
            assert set(acknowledged) <= stored
            found = await manager.search_memories("agent-k", "pad", limit=5)
            assert len(found) == 5

    anyio.run(check)


def test_search_sees_writes_made_by_another_process_after_caching(sqlite_url: str) -> None:
    """The SQLite column cache is rebuilt when any other connection commits."""

    async def main() -> None:
        async with manager_for(sqlite_url) as manager:
            await manager.store_memory("agent-w9", "mine", {"text": "local"}, tags=["w9"])
            first = await manager.search_memories("agent-w9", "pad", limit=10)
            assert [e.key for e in first] == ["mine"]
            proc = writer(sqlite_url, "nf_memory_", "keys", "w9", 2)
            _, err = await anyio.to_thread.run_sync(proc.communicate)
            assert proc.returncode == 0, err
            again = await manager.search_memories("agent-w9", "pad", limit=10)
            assert sorted(e.key for e in again) == ["mine", "w9-0", "w9-1"]
            assert again[0].explain is None and again[0].key in ("w9-0", "w9-1")

    anyio.run(main)


@pytest.mark.anyio
async def test_write_waiting_for_the_lock_does_not_block_the_event_loop(sqlite_url: str) -> None:
    manager = manager_for(sqlite_url)
    await manager.store_memory("a", "first", 1)  # creates the schema
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    ticks = 0
    stored = anyio.Event()

    async def write() -> None:
        await manager.store_memory("a", "second", 2)
        stored.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(write)
        while ticks < 20:  # the loop keeps running while the write waits
            await anyio.sleep(0.01)
            ticks += 1
        assert not stored.is_set()
        holder.execute("COMMIT")
        with anyio.fail_after(30):
            await stored.wait()
    holder.close()
    assert (await manager.retrieve_memory("a", "second")).value == 2
    await manager.aclose()
