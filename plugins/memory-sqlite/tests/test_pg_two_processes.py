"""Two processes share one PostgreSQL store: one writes, the other searches.

Every write the writer acknowledged (printed after its commit returned) is found by the
searcher's next semantic search, and every acknowledged delete is gone from it (the writer
waits for the searcher between changes), on both PostgreSQL paths: the per-agent cache
(system PostgreSQL, no pgvector) and the pgvector index (a server the test starts).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from neuroflow.memory import MemoryConfig, MemoryManager
from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqlStore

WRITER = str(Path(__file__).with_name("memory_writer.py"))
COUNT = 60


@pytest.fixture(params=["cache", "pgvector"])
def path_and_url(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """(search path, url, table prefix)."""
    if request.param == "cache":
        return "cache", request.getfixturevalue("postgres_url"), \
            request.getfixturevalue("pg_prefix")
    return "pgvector", request.getfixturevalue("pgvector_url"), \
        request.getfixturevalue("pgv_prefix")


@pytest.mark.postgres
def test_every_acknowledged_write_is_found_by_the_next_search(
        path_and_url: tuple[str, str, str]) -> None:
    path, url, prefix = path_and_url
    # Every search of the (small) agent uses the index on the pgvector path.
    store = SqlStore(PostgresStoreConfig(url=url, table_prefix=prefix, index_min_entries=1))

    async def main() -> None:
        async with MemoryManager(MemoryConfig(max_entries=None), store=store,
                                 embedder="lexical") as manager:
            await manager.store_memory("agent-p", "mine", {"text": "a note of my own"})
            # The cache (or index) is in use before the other process writes.
            assert [e.key for e in await manager.search_memories("agent-p", "note")] == \
                ["mine"]
            assert store.vector_path == path
            proc = subprocess.Popen(
                [sys.executable, WRITER, url, prefix, "notes", "p", str(COUNT)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            assert proc.stdout is not None and proc.stdin is not None

            def go() -> None:  # let the writer make its next change
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()

            seen, deleted = 0, 0
            go()
            while True:
                line = (await anyio.to_thread.run_sync(proc.stdout.readline)).strip()
                if not line:
                    break
                if line.startswith("-"):
                    key = line[1:]
                    found = await manager.search_memories("agent-p", f"u{key.replace('-', 'x')}",
                                                          limit=10)
                    assert key not in [e.key for e in found], f"{key} deleted, still found"
                    deleted += 1
                    if seen < COUNT:
                        go()
                    continue
                i = int(line.split("-")[1])
                found = await manager.search_memories("agent-p", f"upx{i}", limit=3)
                assert found and found[0].key == line, (line, [e.key for e in found])
                seen += 1
                if seen < COUNT or seen % 5 == 0:
                    go()
            _, err = await anyio.to_thread.run_sync(proc.communicate)
            assert proc.returncode == 0, err
            assert (seen, deleted) == (COUNT, COUNT // 5)
            everything = await manager.search_memories("agent-p", "note number", limit=100)
            assert len(everything) == COUNT - COUNT // 5 + 1
        assert store.search_paths[path] > COUNT

    anyio.run(main)
