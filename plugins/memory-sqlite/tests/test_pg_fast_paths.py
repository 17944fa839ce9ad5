"""PostgreSQL's fast paths beyond the conformance suite: searches read on the event loop
(no worker thread once the cache is fresh), a connection the server dropped is replaced,
whole rows come with the candidates, batches are written set-based with the same result as
one put at a time, vectors reach pgvector bit for bit, and ``bulk_load`` builds the vector
index once at the end."""

from __future__ import annotations

import random
import threading
from functools import partial
from typing import Any

import anyio
import numpy as np
import pytest

from neuroflow.memory import MemoryEntry
from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.memory.tiered import TieredStore
from neuroflow.testing.memory import Clock, make_manager
from neuroflow_memory_sqlite.agent_cache import VALUE_CHARS, AgentColumns
from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqliteStoreConfig, SqlStore

pytestmark = pytest.mark.postgres


def corpus(n: int, agents: int = 1, seed: int = 5) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    vocab = [f"w{i}" for i in range(300)] + ["café", "naïve", "日本"]
    return [{"agent_id": f"agent{i % agents}", "key": f"k{i}",
             "value": {"text": " ".join(rnd.choice(vocab) for _ in range(6))},
             "tags": [f"t{rnd.randrange(4)}"], "importance": round(rnd.random(), 2)}
            for i in range(n)]


SEARCHES = [{"query": "w1 w2 w3", "limit": 10}, {"query": "café w7", "limit": 5},
            {"query": "日本", "limit": 3, "tags": ["t1"]},
            {"query": "w10 naïve", "limit": 10, "min_importance": 0.4}]


async def results(manager: Any, agent: str, spec: dict[str, Any]) -> list[tuple[Any, ...]]:
    found = await manager.search_memories(agent, **spec)
    return [(e.key, round(e.score, 9), e.value, e.tags, e.version) for e in found]


@pytest.fixture(params=["cache", "pgvector"])
def target(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """(search path, url, table prefix) on the system PostgreSQL or the pgvector one."""
    if request.param == "cache":
        return "cache", request.getfixturevalue("postgres_url"), \
            request.getfixturevalue("pg_prefix")
    return "pgvector", request.getfixturevalue("pgvector_url"), \
        request.getfixturevalue("pgv_prefix")


def make_store(target: tuple[str, str, str], **options: Any) -> SqlStore:
    path, url, prefix = target
    return SqlStore(PostgresStoreConfig(url=url, table_prefix=prefix, vector_search=path,
                                        index_min_entries=1, **options))


def test_a_fresh_search_uses_no_worker_thread(target: tuple[str, str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Under asyncio, once the cache is fresh (or on the index path), a search and its
    winners are read on the event loop: worker threads are refused and it still works."""
    data = corpus(300, agents=2)

    async def main() -> None:
        clock = Clock()
        store = make_store(target)
        ours = make_manager(store, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        for m in (ours, exact):
            await m.store_many(data, batch_size=100)
        for spec in SEARCHES:  # warms the cache (a refresh reads in a worker thread)
            await ours.search_memories("agent0", **spec)
        tried: list[str] = []
        real = anyio.to_thread.run_sync

        async def refuse(fn: Any, *args: Any, **kwargs: Any) -> Any:
            tried.append(getattr(fn, "__qualname__", repr(fn)))
            raise AssertionError("worker thread used")

        monkeypatch.setattr(anyio.to_thread, "run_sync", refuse)
        try:
            for spec in SEARCHES:
                assert await results(ours, "agent0", spec) == \
                    await results(exact, "agent0", spec)
            assert (await ours.retrieve_memory("agent1", "k1")).key == "k1"
        finally:
            monkeypatch.setattr(anyio.to_thread, "run_sync", real)
        assert tried == []
        await ours.aclose()

    anyio.run(main, backend="asyncio")


@pytest.mark.parametrize("path", ["cache", "pgvector"])
def test_a_search_after_a_few_writes_refreshes_on_the_event_loop(
        path: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few rows written since the cache was filled (by this store: one statement; by
    another: two) are brought in on the event loop; many go to a worker thread.  Every
    search equals the in-memory store's."""
    url = request.getfixturevalue("postgres_url" if path == "cache" else "pgvector_url")
    prefix = request.getfixturevalue("pg_prefix" if path == "cache" else "pgv_prefix")
    data = corpus(300, agents=2)

    def store() -> SqlStore:
        # pgvector: this agent is under index_min_entries, so its cached rows are scanned.
        return SqlStore(PostgresStoreConfig(url=url, table_prefix=prefix, vector_search=path))

    async def main() -> None:
        clock = Clock()
        ours_store, other_store = store(), store()
        ours = make_manager(ours_store, clock, max_entries=None)
        other = make_manager(other_store, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        for m in (ours, exact):
            await m.store_many(data, batch_size=100)
        for spec in SEARCHES:
            await ours.search_memories("agent0", **spec)
        statements: list[str] = []
        fetch = ours_store._fetch

        async def counted(sql: str, params: dict[str, Any], **options: Any) -> Any:
            statements.append(sql)
            return await fetch(sql, params, **options)

        monkeypatch.setattr(ours_store, "_fetch", counted)
        real = anyio.to_thread.run_sync

        async def refuse(fn: Any, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"worker thread used: {fn!r}")

        async def search_on_the_loop(writer: Any, statements_each: int) -> None:
            for spec in SEARCHES:
                statements.clear()
                monkeypatch.setattr(anyio.to_thread, "run_sync", refuse)
                try:
                    got = await results(ours, "agent0", spec)
                finally:
                    monkeypatch.setattr(anyio.to_thread, "run_sync", real)
                assert got == await results(exact, "agent0", spec)
                assert len(statements) == statements_each, statements
                # Something new again for the next search to bring in.
                for m in (writer, exact):
                    await m.store_memory("agent0", f"k{2 * len(got)}",
                                         {"text": f"w1 w{len(got)} café"}, tags=["t1"],
                                         importance=0.7)

        for m in (ours, exact):  # replaced, added, removed by this store
            await m.store_memory("agent0", "k2", {"text": "w1 w2 naïve"}, importance=0.95)
            await m.store_memory("agent0", "new", {"text": "w3 w10 日本"}, tags=["t1"])
            await m.delete_memory("agent0", "k4")
        await search_on_the_loop(ours, 1)
        await ours.search_memories("agent0", "w1")  # its own last write is read
        for m in (other, exact):  # written by another store (another process)
            await m.store_memory("agent0", "k6", {"text": "w7 café"}, importance=0.9)
            await m.delete_memory("agent0", "k8")
        await search_on_the_loop(other, 2)
        many = [dict(d, key=f"m{i}") for i, d in enumerate(corpus(60, seed=8))]
        for m in (other, exact):  # more rows than a search adds on the loop
            await m.store_many(many)
        before = ours_store._agents.get("agent0")
        for spec in SEARCHES:
            assert await results(ours, "agent0", spec) == await results(exact, "agent0", spec)
        cols = ours_store._agents.get("agent0")
        # 150 + "new" - k4 - k8 + the 60 "m" keys (the loop rewrote keys it had).
        assert cols is not before and cols.live == 150 + 1 - 2 + 60
        for m in (ours, other):
            await m.aclose()

    anyio.run(main, backend="asyncio")


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_a_refresh_that_compacts_runs_off_the_event_loop(
        backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compacting an agent's cached rows copies all of them: the refresh that does it
    runs in a worker thread, never on the event loop, whoever wrote the changes."""
    if backend == "postgres":
        def make() -> SqlStore:
            return SqlStore(PostgresStoreConfig(
                url=request.getfixturevalue("postgres_url"),
                table_prefix=request.getfixturevalue("pg_prefix"), vector_search="cache"))
    else:
        url = request.getfixturevalue("sqlite_url")

        def make() -> SqlStore:
            return SqlStore(SqliteStoreConfig(url=url))
    compacted: list[str] = []
    compact = AgentColumns._compact

    def spy(self: AgentColumns) -> None:
        compacted.append(threading.current_thread().name)
        compact(self)

    monkeypatch.setattr(AgentColumns, "_compact", spy)
    data = corpus(1200, seed=9)

    async def main() -> None:
        clock = Clock()
        ours = make_manager(make(), clock, max_entries=None)
        other = make_manager(make(), clock, max_entries=None)
        await ours.store_many(data, batch_size=400)
        await ours.search_memories("agent0", "w1 w2")
        loop_thread = threading.current_thread().name
        rnd = random.Random(2)
        for i in range(700):  # replaced rows die: compaction after about 300
            writer = ours if i % 2 else other
            await writer.store_memory("agent0", f"k{rnd.randrange(1200)}", {"text": f"w{i}"})
            await ours.search_memories("agent0", "w1 w2")
        assert compacted and loop_thread not in compacted, (loop_thread, compacted)
        await ours.aclose()
        await other.aclose()

    anyio.run(main, backend="asyncio")


def test_under_trio_searches_use_worker_threads(target: tuple[str, str, str]) -> None:
    pytest.importorskip("trio")
    data = corpus(120)

    async def main() -> None:
        clock = Clock()
        store = make_store(target)
        ours = make_manager(store, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        for m in (ours, exact):
            await m.store_many(data, batch_size=50)
        for spec in SEARCHES * 2:
            assert await results(ours, "agent0", spec) == await results(exact, "agent0", spec)
        assert store._loop_reader is not None and store._loop_reader._conn is None
        await ours.aclose()

    anyio.run(main, backend="trio")


def test_a_connection_the_server_dropped_is_replaced(target: tuple[str, str, str]) -> None:
    data = corpus(80)

    async def main() -> None:
        clock = Clock()
        store = make_store(target)
        ours = make_manager(store, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        for m in (ours, exact):
            await m.store_many(data)
        spec = SEARCHES[0]
        for _ in range(2):  # the second reads on the loop (the first fills the cache)
            await ours.search_memories("agent0", **spec)
        reader = store._loop_reader
        assert reader is not None and reader._conn is not None
        pid = reader._conn.info.backend_pid
        await anyio.to_thread.run_sync(
            store._rows, "SELECT pg_terminate_backend(:p)", {"p": pid})
        for _ in range(20):  # the server ends it asynchronously
            alive = await anyio.to_thread.run_sync(
                store._rows, "SELECT 1 FROM pg_stat_activity WHERE pid = :p", {"p": pid})
            if not alive:
                break
            await anyio.sleep(0.05)
        assert await results(ours, "agent0", spec) == await results(exact, "agent0", spec)
        assert reader._conn is not None and reader._conn.info.backend_pid != pid
        await ours.aclose()

    anyio.run(main, backend="asyncio")


def test_one_store_under_two_event_loops_in_turn(target: tuple[str, str, str]) -> None:
    clock = Clock()
    store = make_store(target)
    ours = make_manager(store, clock, max_entries=None)
    exact = make_manager(InMemoryStore(), clock, max_entries=None)

    async def load() -> None:
        for m in (ours, exact):
            await m.store_many(corpus(60))

    async def check() -> None:
        for spec in SEARCHES:
            assert await results(ours, "agent0", spec) == await results(exact, "agent0", spec)

    anyio.run(load, backend="asyncio")
    anyio.run(check, backend="asyncio")
    anyio.run(check, backend="asyncio")
    anyio.run(ours.aclose, backend="asyncio")
    assert store._loop_reader is None


def test_concurrent_searches_give_the_exact_results(target: tuple[str, str, str]) -> None:
    """Searches at once: one uses the loop connection, the others worker threads."""
    async def main() -> None:
        clock = Clock()
        ours = make_manager(make_store(target), clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        for m in (ours, exact):
            await m.store_many(corpus(200, agents=2))
        expected = [await results(exact, f"agent{i % 2}", SEARCHES[i % 4]) for i in range(24)]
        got: dict[int, Any] = {}

        async def one(i: int) -> None:
            got[i] = await results(ours, f"agent{i % 2}", SEARCHES[i % 4])

        async with anyio.create_task_group() as tg:
            for i in range(24):
                tg.start_soon(one, i)
        assert [got[i] for i in range(24)] == expected
        await ours.aclose()

    anyio.run(main, backend="asyncio")


def test_long_values_are_read_when_they_win(target: tuple[str, str, str]) -> None:
    """The cache keeps values up to VALUE_CHARS; a longer winner is read from the table."""
    async def main() -> None:
        clock = Clock()
        store = make_store(target)
        ours = make_manager(store, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        long = {"text": "w1 w2 " + "x" * (VALUE_CHARS + 10)}
        for m in (ours, exact):
            await m.store_many(corpus(30))
            await m.store_memory("agent0", "long", long, importance=1.0)
        for _ in range(2):  # the second search is answered from a fresh cache
            assert await results(ours, "agent0", SEARCHES[0]) == \
                await results(exact, "agent0", SEARCHES[0])
        found = await ours.search_memories("agent0", "w1 w2", limit=1)
        assert found[0].key == "long" and found[0].value == long
        await ours.aclose()

    anyio.run(main)


def test_cache_bytes_bound_counts_the_kept_texts(postgres_url: str, pg_prefix: str) -> None:
    """Vectors alone would fit the byte bound; with the values kept they do not, so the
    agent is not cached (and still searched exactly); a larger bound caches it."""
    values = [{"agent_id": "a", "key": f"k{i}", "value": {"text": f"w{i % 7} " + "y" * 3000}}
              for i in range(40)]

    async def main() -> None:
        clock = Clock()
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        await exact.store_many(values)
        for bound, cached in ((100_000, False), (1_000_000, True)):
            store = SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix,
                                                 vector_search="cache", cache_bytes=bound))
            ours = make_manager(store, clock, max_entries=None)
            if not cached:
                await ours.store_many(values)
            spec = {"query": "w3", "limit": 5}
            for _ in range(2):
                assert await results(ours, "a", spec) == await results(exact, "a", spec)
            assert (store._agents.entries() == 40) is cached
            assert store._agents.nbytes() <= bound
            if cached:
                assert store._agents.nbytes() > 40 * 3000
            await ours.aclose()

    anyio.run(main)


def test_vectors_reach_pgvector_bit_for_bit(pgvector_url: str, pgv_prefix: str) -> None:
    """One put, a batch and the back-fill all send float32 vectors that pgvector stores
    exactly (binary real[] parameters, no text formatting)."""
    rnd = np.random.default_rng(3)
    specials = np.array([1e-45, -0.0, 3.4e38, -1.17549435e-38, 0.1, 1 / 3], dtype=np.float32)

    def vector() -> Any:
        v = rnd.standard_normal(16).astype(np.float32) * np.float32(rnd.uniform(1e-6, 1e6))
        v[:6] = specials
        return v

    async def main() -> None:
        store = SqlStore(PostgresStoreConfig(url=pgvector_url, table_prefix=pgv_prefix,
                                             vector_search="pgvector"))
        sent: dict[str, Any] = {}
        entry = MemoryEntry(agent_id="a", key="one", value=1)
        sent["one"] = vector()
        await store.put(entry, words="one", vector=sent["one"], expected_version=None,
                        now=1.0, keep_history=False)
        batch = []
        for i in range(5):
            sent[f"b{i}"] = vector()
            batch.append((MemoryEntry(agent_id="a", key=f"b{i}", value=i), f"b{i}",
                          sent[f"b{i}"]))
        await store.put_many(batch, now=2.0, keep_history=True)
        rows = await anyio.to_thread.run_sync(
            store._rows, f"SELECT key, vec::text, embedding FROM {pgv_prefix}entries", {})
        assert {r[0] for r in rows} == set(sent)
        for key, text, blob in rows:
            stored = np.array([float(x) for x in text[1:-1].split(",")], dtype=np.float32)
            assert stored.tobytes() == sent[key].tobytes(), key
            assert blob == sent[key].tobytes()
        await store.aclose()

    anyio.run(main)


def test_a_batch_equals_one_put_at_a_time(target: tuple[str, str, str]) -> None:
    """New keys, live keys and expired (not yet swept) keys in one batch: rows, versions,
    change stamps, counters, tags and history as if put one by one, in batch order."""
    path, url, prefix = target

    async def main() -> None:
        clock = Clock()
        stores = [SqlStore(PostgresStoreConfig(url=url, table_prefix=p, vector_search=path))
                  for p in (prefix, prefix + "one_")]
        batched, single = (make_manager(s, clock, max_entries=None) for s in stores)
        first = corpus(40, agents=3)
        for i, item in enumerate(first):
            if i % 5 == 0:
                item["ttl"] = 10
        second = [dict(d, value={"text": "changed"}, tags=["t9", "t1"]) for d in first[::2]]
        second += corpus(10, agents=4, seed=9)[5:]  # five new keys
        for part in (first, second):
            await batched.store_many(part, batch_size=1000)
            for item in part:
                await single.store_many([item])  # a batch of one: the one-row path
            clock.now += 30  # the ttl=10 entries expire before the second batch

        def table(store: SqlStore, name: str, columns: str, order: str) -> Any:
            return store._rows(f"SELECT {columns} FROM {store.config.table_prefix}{name} "
                               f"ORDER BY {order}", {})

        for name, columns, order in (
                ("entries", "agent_id, key, value, tags, importance, created_at, "
                            "updated_at, expires_at, version, words, embedding, dim, model, "
                            "seq", "agent_id, key"),
                ("tags", "(SELECT key FROM {p}entries e WHERE e.id = entry_id), agent_id, tag",
                 "1, 2, 3"),
                ("history", "agent_id, key, version, op, at, value, tags, importance, "
                            "expires_at", "agent_id, key, seq"),
                ("counts", "scope, n, changes, deletes", "scope")):
            got = [await anyio.to_thread.run_sync(
                table, s, name, columns.replace("{p}", s.config.table_prefix), order)
                for s in stores]
            assert got[0] == got[1], name
        assert len(got[0]) == 4 + 1  # agents 0..3 and the total
        for m in (batched, single):
            await m.aclose()

    try:
        anyio.run(main)
    finally:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for name in ("entries", "tags", "history", "counts"):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}one_{name}")
        engine.dispose()


def test_batches_creating_the_same_keys_at_once(target: tuple[str, str, str]) -> None:
    """Two batches of the same new keys written at once: one creates them, the other
    (its insert finding them taken) runs again and updates them."""
    async def main() -> None:
        store = make_store(target)
        manager = make_manager(store, Clock(), max_entries=None)
        await manager.store_memory("agent0", "seed", 1)  # the tables exist
        data = corpus(300)

        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(partial(manager.store_many, data, batch_size=300))
        for d in data[::37]:
            entry = await manager.retrieve_memory(d["agent_id"], d["key"])
            assert entry is not None and entry.version == 2
            assert [h.op for h in await manager.history(d["agent_id"], d["key"])] == \
                ["create", "update"]
        assert (await manager.stats())["entries"] == 301
        await manager.aclose()

    anyio.run(main)


def test_bulk_load_builds_the_vector_index_at_the_end(pgvector_url: str,
                                                      pgv_prefix: str) -> None:
    async def main() -> None:
        clock = Clock()
        store = SqlStore(PostgresStoreConfig(url=pgvector_url, table_prefix=pgv_prefix,
                                             vector_search="pgvector", index_min_entries=1))
        tiered = TieredStore(store, hot_entries=2)
        ours = make_manager(tiered, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        await exact.store_many(corpus(400))
        index = {"n": f"{pgv_prefix}entries_vec256"}
        exists = "SELECT to_regclass(:n) IS NOT NULL"
        async with tiered.bulk_load():
            async with store.bulk_load():  # nested: the outer one builds
                await ours.store_many(corpus(400)[:200], batch_size=64)
            assert (await anyio.to_thread.run_sync(store._rows, exists, index))[0][0] is False
            await ours.store_many(corpus(400)[200:], batch_size=64)
            # Searched exactly meanwhile (no index yet).
            assert await results(ours, "agent0", SEARCHES[0]) == \
                await results(exact, "agent0", SEARCHES[0])
        assert (await anyio.to_thread.run_sync(store._rows, exists, index))[0][0] is True
        for spec in SEARCHES:
            assert await results(ours, "agent0", spec) == await results(exact, "agent0", spec)
        await ours.store_memory("agent0", "later", {"text": "w1 w2 w3"})  # index upkeep
        await exact.store_memory("agent0", "later", {"text": "w1 w2 w3"})
        assert await results(ours, "agent0", SEARCHES[0]) == \
            await results(exact, "agent0", SEARCHES[0])
        await ours.aclose()

    anyio.run(main)


def test_fewer_index_rows_than_asked_count_as_every_match_only_when_they_are() -> None:
    """An HNSW scan may stop early (at ``hnsw.max_scan_tuples``) and return fewer rows
    than asked although more match.  Fewer rows than asked are taken as every match only
    when the agent has no more rows; otherwise the search goes to the exact path."""
    from neuroflow.memory import MemoryQuery
    from neuroflow_memory_sqlite.pg_search import _split

    store = SqlStore(PostgresStoreConfig(url="postgresql+psycopg://nobody@127.0.0.1:1/x",
                                         vector_search="pgvector"))
    vector = np.array([1, 0, 0, 0], dtype=np.float32).tobytes()

    def found(count: int, entries: int) -> list[tuple[Any, ...]]:
        """The rows of the search statement: ``count`` rows of the index, the agent's."""
        # part, id, agent_id, key, importance, updated_at, embedding, dim, model, value,
        # tags, created_at, expires_at, version, distance, words matched
        return [*((1, i, "a", f"k{i}", 0.5, 0.0, vector, 4, None, "1", "[]", 0.0, None, 1,
                   -0.5, None) for i in range(count)),
                (0, entries, None, None, 0.9, *[None] * 11)]

    query = MemoryQuery(agent_id="a")

    def result(rows: list[tuple[Any, ...]]) -> Any:
        return store._nearest_result(*_split(rows), query, None, 4, 40, None, 0)

    assert result(found(3, 50)) is None
    cands, semantic_out, importance_out = result(found(3, 3))
    assert list(cands.keys) == ["k0", "k1", "k2"] and semantic_out == 0.0
    assert importance_out == 0.9 and cands.vectors.tolist() == [[1, 0, 0, 0]] * 3
    # As many as asked: the worst of them bounds what was left out.
    _, semantic_out, _ = result(found(40, 500))
    assert semantic_out == 0.5
