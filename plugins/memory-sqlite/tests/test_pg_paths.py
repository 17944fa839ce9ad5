"""The two PostgreSQL search paths beyond the conformance suite: the pgvector index gives
the exact search's results, the per-agent cache stays within its bounds, batches, the
switch between paths, configuration errors."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from neuroflow.config import structure
from neuroflow.errors import ConfigError, MemoryStoreError
from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.testing.memory import Clock, make_manager
from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqliteStoreConfig, SqlStore

pytestmark = pytest.mark.postgres


def corpus(n: int, agents: int = 1, seed: int = 5) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    vocab = [f"w{i}" for i in range(400)]
    return [{"agent_id": f"agent{i % agents}", "key": f"k{i}",
             "value": {"text": " ".join(rnd.choice(vocab) for _ in range(6))},
             "tags": [f"t{rnd.randrange(4)}"], "importance": round(rnd.random(), 2)}
            for i in range(n)]


def searches(seed: int = 9) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(25):
        q = " ".join(f"w{rnd.randrange(400)}" for _ in range(rnd.choice([1, 2, 3])))
        extra = rnd.choice([{}, {}, {"tags": ["t1", "t2"]}, {"min_importance": 0.5},
                            {"filter": {"importance": {"$lt": 0.8}}}])
        out.append({"query": q, "limit": rnd.choice([1, 5, 10]), **extra})
    return out


async def results(manager: Any, agent: str, spec: dict[str, Any]) -> list[tuple[str, float]]:
    found = await manager.search_memories(agent, **spec)
    return [(e.key, round(e.score, 9)) for e in found]


def test_pgvector_index_search_equals_exact_search(pgvector_url: str, pgv_prefix: str) -> None:
    """Index candidates, exactly re-ranked, give what the in-memory store's exact search
    gives (keys, order and scores), with and without pre-filters."""
    data = corpus(1500)

    async def main() -> None:
        clock = Clock()
        store = SqlStore(PostgresStoreConfig(url=pgvector_url, table_prefix=pgv_prefix,
                                             vector_search="pgvector", index_min_entries=1))
        ours = make_manager(store, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        for manager in (ours, exact):
            await manager.store_many(data, batch_size=500)
        for spec in searches():
            assert await results(ours, "agent0", spec) == await results(exact, "agent0", spec)
        assert store.search_paths["pgvector"] >= 25
        # Most searches were decided by the index candidates alone.
        assert store.search_paths["cache"] < 10, store.search_paths
        await ours.aclose()

    anyio.run(main)


def test_small_agents_are_searched_exactly_from_the_cache(
        pgvector_url: str, pgv_prefix: str) -> None:
    async def main() -> None:
        clock = Clock()
        store = SqlStore(PostgresStoreConfig(url=pgvector_url, table_prefix=pgv_prefix,
                                             index_min_entries=100))
        manager = make_manager(store, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        data = corpus(150, agents=3)  # 50 entries each
        for m in (manager, exact):
            await m.store_many(data)
        spec = searches()[0]
        assert await results(manager, "agent1", spec) == await results(exact, "agent1", spec)
        assert store.search_paths == {"cache": 1}
        for m in (manager, exact):
            await m.store_many(corpus(100, seed=8, agents=1))  # agent0: 150 entries now
        assert await results(manager, "agent0", spec) == await results(exact, "agent0", spec)
        assert store.search_paths["pgvector"] == 1
        await manager.aclose()

    anyio.run(main)


def test_pgvector_index_exists_and_is_used(pgvector_url: str, pgv_prefix: str) -> None:
    async def main() -> None:
        store = SqlStore(PostgresStoreConfig(url=pgvector_url, table_prefix=pgv_prefix))
        manager = make_manager(store, Clock(), max_entries=None)
        await manager.store_many(corpus(300), batch_size=300)
        assert (await store.describe())["vector_search"] == "pgvector"
        rows = await anyio.to_thread.run_sync(
            store._rows, "SELECT indexdef FROM pg_indexes WHERE indexname = :n",
            {"n": f"{pgv_prefix}entries_vec256"})
        assert rows and "hnsw" in rows[0][0] and "WHERE (dim = 256)" in rows[0][0]
        plan = await anyio.to_thread.run_sync(
            store._rows,
            f"EXPLAIN SELECT id FROM {pgv_prefix}entries WHERE dim = 256 ORDER BY "
            f"vec::vector(256) <#> CAST(:q AS vector(256)) LIMIT 5",
            {"q": "[" + ",".join(["0.0625"] * 256) + "]"})
        assert any("entries_vec256" in r[0] for r in plan), plan
        await manager.aclose()

    anyio.run(main)


def test_cache_mode_table_switched_to_pgvector_is_backfilled(
        pgvector_url: str, pgv_prefix: str) -> None:
    data = corpus(200)

    async def main() -> None:
        clock = Clock()
        before = SqlStore(PostgresStoreConfig(url=pgvector_url, table_prefix=pgv_prefix,
                                              vector_search="cache"))
        first = make_manager(before, clock, max_entries=None)
        await first.store_many(data)
        assert (await before.describe())["vector_search"] == "cache"
        expected = [await results(first, "agent0", s) for s in searches()]
        await first.aclose()
        after = SqlStore(PostgresStoreConfig(url=pgvector_url, table_prefix=pgv_prefix,
                                             vector_search="pgvector", index_min_entries=1))
        second = make_manager(after, clock, max_entries=None)
        assert (await after.describe())["vector_search"] == "pgvector"
        assert [await results(second, "agent0", s) for s in searches()] == expected
        assert after.search_paths["pgvector"] >= 25
        await second.aclose()

    anyio.run(main)


def test_pgvector_required_but_missing_is_a_clear_error(postgres_url: str,
                                                        pg_prefix: str) -> None:
    store = SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix,
                                         vector_search="pgvector"))
    with pytest.raises(MemoryStoreError, match=r"memory\.postgres\.vector_search: 'pgvector'"):
        anyio.run(store.open)
    auto = SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix))
    assert anyio.run(auto.describe)["vector_search"] == "cache"
    anyio.run(auto.aclose)


def test_cache_is_incremental_and_bounded(postgres_url: str, pg_prefix: str) -> None:
    async def main() -> None:
        clock = Clock()
        store = SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix,
                                             cache_entries=70, vector_search="cache"))
        manager = make_manager(store, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        data = corpus(40, agents=1) + [dict(d, agent_id="other", key=f"o{i}")
                                       for i, d in enumerate(corpus(40, seed=6))]
        for m in (manager, exact):
            await m.store_many(data)
        for agent in ("agent0", "other"):
            for spec in searches()[:5]:
                assert await results(manager, agent, spec) == await results(exact, agent, spec)
        # Both agents (80 rows) do not fit in 70: the one searched least recently went.
        assert store._agents.entries() <= 70
        assert store._agents.get("agent0") is None and store._agents.get("other") is not None
        cached = store._agents.get("other")
        # A change reads only the changed row, into a new version of the columns (the
        # replaced and the removed rows are dead in it, alive in the one handed out).
        for m in (manager, exact):
            await m.store_memory("other", "o3", {"text": "w1 w2 w3"}, importance=0.9)
            await m.delete_memory("other", "o5")
        spec = {"query": "w1 w2", "limit": 10}
        assert await results(manager, "other", spec) == await results(exact, "other", spec)
        fresh = store._agents.get("other")
        assert fresh is not cached and fresh.live == 39 and cached.live == 40
        assert fresh.n == 41 and cached.n == 40 and cached.alive.all()
        # An agent larger than the cache is searched from the database.
        big = SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix,
                                           cache_entries=30, vector_search="cache"))
        bigm = make_manager(big, clock, max_entries=None)
        assert await results(bigm, "other", spec) == await results(exact, "other", spec)
        assert big.search_paths["cache"] == 0 and big._agents.entries() == 0
        await bigm.aclose()
        await manager.aclose()

    anyio.run(main)


def test_store_many_writes_a_batch_in_one_transaction(postgres_url: str, pg_prefix: str,
                                                      sqlite_url: str) -> None:
    async def main() -> None:
        for store in (SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix)),
                      SqlStore(SqliteStoreConfig(url=sqlite_url))):
            manager = make_manager(store, Clock(), max_entries=None)
            stored = await manager.store_many(corpus(120, agents=3), batch_size=50)
            assert [e.version for e in stored] == [1] * 120
            again = await manager.store_many(corpus(3, agents=3))
            assert [e.version for e in again] == [2, 2, 2]
            stats = await manager.stats()
            assert stats["agents"] == {"agent0": 40, "agent1": 40, "agent2": 40}
            assert [h.op for h in await manager.history("agent1", "k1")] == ["create", "update"]
            await manager.aclose()

    anyio.run(main)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="vector_search: expected one of auto, pgvector"):
        PostgresStoreConfig(vector_search="faiss")
    with pytest.raises(ConfigError, match="vector_index"):
        PostgresStoreConfig(vector_index="btree")
    with pytest.raises(ConfigError, match="hnsw_m: expected an integer greater than 0"):
        PostgresStoreConfig(hnsw_m=0)
    with pytest.raises(ConfigError, match=r"memory\.postgres\.cache_bytes"):
        structure({"cache_bytes": "lots"}, PostgresStoreConfig, path="memory.postgres")
    assert PostgresStoreConfig(cache_bytes="64M").cache_bytes == 64 * 1024 * 1024
