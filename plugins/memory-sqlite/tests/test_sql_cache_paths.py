"""SQLite's per-agent cache at its edges: many winners read back by key, and the reads a
search does in place (on the event loop) stay small."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from neuroflow.testing.memory import Clock, make_manager
from neuroflow_memory_sqlite.agent_cache import VALUE_CHARS
from neuroflow_memory_sqlite.pg_search import LOOP_TAGGED_ROWS
from neuroflow_memory_sqlite.store import SqliteStoreConfig, SqlStore


def test_a_thousand_winners_too_long_to_cache_are_read_back(sqlite_url: str) -> None:
    """Values too long to keep in the cache are read by key when they win: 1 200 of them
    in one search (one condition a key: SQLite parses at most 1 000 ORs in a row)."""
    async def main() -> None:
        store = SqlStore(SqliteStoreConfig(url=sqlite_url))
        manager = make_manager(store, Clock())
        tail = "x" * (VALUE_CHARS + 10)
        await manager.store_many([{"agent_id": "a", "key": f"k{i}",
                                   "value": f"apple {i} {tail}"} for i in range(1200)])
        found = await manager.search_memories("a", "apple", limit=1200)
        assert sorted(e.key for e in found) == sorted(f"k{i}" for i in range(1200))
        assert all(e.value == f"apple {e.key[1:]} {tail}" for e in found)
        assert store.search_paths["cache"] > 0  # ranked from the cache, read back by key
        await manager.aclose()

    anyio.run(main, backend="asyncio")


@pytest.mark.parametrize("size", [200, LOOP_TAGGED_ROWS + 300])
def test_a_tagged_search_lists_its_ids_in_place_only_for_a_small_agent(
        sqlite_url: str, size: int) -> None:
    """The probe of a tagged search lists the ids that pass the tags; SQLite reads it in
    place (on the event loop) only for an agent of at most LOOP_TAGGED_ROWS entries."""
    async def main() -> None:
        store = SqlStore(SqliteStoreConfig(url=sqlite_url))
        manager = make_manager(store, Clock())
        await manager.store_many([{"agent_id": "a", "key": f"k{i}", "value": f"pear {i}",
                                   "tags": ["t"]} for i in range(size)])
        await manager.search_memories("a", "pear", tags=["t"])  # fills the cache
        in_place: list[str] = []
        real = store._in_place

        def spy(fn: Any, *args: Any) -> Any:
            if args and isinstance(args[0], str):
                in_place.append(args[0])
            return real(fn, *args)

        store._in_place = spy  # type: ignore[method-assign]
        found = await manager.search_memories("a", "pear 7", tags=["t"], limit=3)
        assert found[0].key == "k7"
        listed = [sql for sql in in_place if "SELECT 1, id" in sql]
        assert bool(listed) == (size <= LOOP_TAGGED_ROWS), in_place
        await manager.aclose()

    anyio.run(main, backend="asyncio")
