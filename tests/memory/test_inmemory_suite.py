"""The conformance suite against the built-in in-memory and tiered stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.memory.tiered import TieredStore
from neuroflow.testing import MemoryStoreSuite


class TestInMemoryStore(MemoryStoreSuite):
    """The short-term store."""

    @pytest.fixture
    def memory_store(self) -> Any:
        return InMemoryStore()


class TestTieredOverInMemory(MemoryStoreSuite):
    """The tiered cache logic, over a second in-memory store as the persistent tier."""

    @pytest.fixture
    def memory_store(self) -> Any:
        return TieredStore(InMemoryStore(), hot_entries=3)


def test_tiered_over_sqlite_persists(tmp_path: Path) -> None:
    """A tiered store's writes are in its persistent tier, readable without the cache."""
    import anyio

    sqlite = pytest.importorskip("neuroflow_memory_sqlite.store",
                                 reason="needs neuroflow-memory-sqlite installed")

    async def main() -> None:
        from neuroflow.testing.memory import Clock, make_manager

        url = f"sqlite:///{tmp_path}/tiered.db"
        clock = Clock()
        tiered = make_manager(TieredStore(sqlite.SqlStore(sqlite.SqliteStoreConfig(url=url)),
                                          hot_entries=2), clock)
        for i in range(5):
            await tiered.store_memory("a", f"k{i}", {"i": i})
        assert (await tiered.retrieve_memory("a", "k4")).value == {"i": 4}
        await tiered.aclose()
        plain = make_manager(sqlite.SqlStore(sqlite.SqliteStoreConfig(url=url)), clock)
        assert [e.key for e in await plain.list_memories("a")] == [f"k{i}" for i in range(5)]
        await plain.aclose()

    anyio.run(main)
