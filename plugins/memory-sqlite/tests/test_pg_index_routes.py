"""Which way a search of one agent takes on a PostgreSQL store with pgvector, and that
every way gives the exact search's results.

* the index with whole rows (the agent's rows are not cached);
* the index with ids only, the rows from the agent's cached rows (filled in the
  background after a search by whole rows; stale as soon as anyone writes to the agent);
* the per-agent cache, for an agent that fits the cache and has fewer than
  ``index_min_entries`` entries or holds less than ``index_min_share`` of the table (a
  filtered index scan over a small share visits mostly other agents' rows).

Expected results come from the in-memory store, which shares no code with these paths.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import anyio
import pytest

from neuroflow.config import structure
from neuroflow.errors import ConfigError
from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.testing.memory import Clock, make_manager
from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqlStore

pytestmark = pytest.mark.postgres

VOCAB = [f"w{i}" for i in range(300)]


def corpus(n: int, agent: str, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        item = {"agent_id": agent, "key": f"{agent}-{i}",
                "value": {"text": " ".join(rnd.choice(VOCAB) for _ in range(6))},
                "tags": [f"t{rnd.randrange(4)}"], "importance": round(rnd.random(), 2)}
        if i % 17 == 0:
            item["ttl"] = 50.0  # expired by the time the searches run
        out.append(item)
    return out


def specs(seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(30):
        q = " ".join(rnd.choice(VOCAB) for _ in range(rnd.choice([1, 2, 3])))
        extra = rnd.choice([{}, {}, {"tags": ["t1", "t2"]}, {"tags": ["t0"]},
                            {"min_importance": 0.5}, {"since": 1_700_000_000.0 + 5},
                            {"until": 1_700_000_000.0 + 5},
                            {"filter": {"importance": {"$lt": 0.8}}}])
        out.append({"query": q, "limit": rnd.choice([1, 5, 10]), **extra})
    return out


async def results(manager: Any, agent: str, spec: dict[str, Any]) -> list[tuple[str, float]]:
    found = await manager.search_memories(agent, **spec)
    return [(e.key, round(e.score, 9)) for e in found]


async def wait_cached(store: SqlStore, agent: str) -> None:
    """Until the background filler has put the agent's rows in the cache."""
    deadline = time.monotonic() + 30
    while store._agents.get(agent) is None or store._warmers:
        assert time.monotonic() < deadline, "the agent's rows were never cached"
        await anyio.sleep(0.02)


async def reference(data: list[dict[str, Any]], clock: Clock) -> Any:
    """The expected results' manager: ``data`` in the in-memory store."""
    exact = make_manager(InMemoryStore(), clock, max_entries=None)
    await exact.store_many(data, batch_size=500)
    return exact


def pgvector_store(url: str, prefix: str, **options: Any) -> SqlStore:
    return SqlStore(PostgresStoreConfig(url=url, table_prefix=prefix,
                                        vector_search="pgvector", **options))


async def loaded(url: str, prefix: str, clock: Clock, data: list[dict[str, Any]]
                 ) -> tuple[SqlStore, Any, Any]:
    """A pgvector store searching every agent by index, its manager and an in-memory
    manager, both holding ``data``."""
    store = pgvector_store(url, prefix, index_min_entries=1)
    ours = make_manager(store, clock, max_entries=None)
    exact = make_manager(InMemoryStore(), clock, max_entries=None)
    for manager in (ours, exact):
        await manager.store_many(data, batch_size=400)
    return store, ours, exact


def test_ids_from_the_index_and_rows_from_the_cache_give_the_exact_search(
        pgvector_url: str, pgv_prefix: str) -> None:
    data = corpus(1200, "solo", seed=3)

    async def main() -> None:
        clock = Clock()
        store, ours, exact = await loaded(pgvector_url, pgv_prefix, clock, data)
        clock.now += 10
        for manager in (ours, exact):
            await manager.store_memory("solo", "late", {"text": "w1 w2 w3 late"},
                                       importance=0.9)
        clock.now += 100  # the ttl entries are expired now
        first = specs(11)[0]
        assert await results(ours, "solo", first) == await results(exact, "solo", first)
        assert store.search_paths["pgvector, rows cached"] == 0  # whole rows, then filled
        await wait_cached(store, "solo")
        for spec in specs(11):
            assert await results(ours, "solo", spec) == await results(exact, "solo", spec), \
                spec
        unfiltered = sum(1 for s in specs(11) if "filter" not in s)
        assert store.search_paths["pgvector, rows cached"] >= unfiltered - 3, \
            store.search_paths
        assert store.search_paths["cache"] <= 3, store.search_paths
        await ours.aclose()

    anyio.run(main)


def test_writes_by_another_store_are_seen_by_the_next_search(
        pgvector_url: str, pgv_prefix: str) -> None:
    """Another store on the same tables (as another process or machine would) adds,
    replaces and deletes: the next search of the cached agent sees each change, and
    the cache is filled again afterwards."""
    data = corpus(600, "solo", seed=4)

    async def main() -> None:
        clock = Clock()
        store = pgvector_store(pgvector_url, pgv_prefix, index_min_entries=1)
        other = pgvector_store(pgvector_url, pgv_prefix, index_min_entries=1)
        ours = make_manager(store, clock, max_entries=None)
        writer = make_manager(other, clock, max_entries=None)
        exact = make_manager(InMemoryStore(), clock, max_entries=None)
        for manager in (writer, exact):
            await manager.store_many(data, batch_size=300)
        spec = {"query": "zebra quartz w5", "limit": 5}
        await results(ours, "solo", spec)
        await wait_cached(store, "solo")
        changes = [
            ("store", "fresh", {"text": "zebra quartz"}, 0.2),
            ("store", "solo-3", {"text": "quartz zebra w5"}, 0.99),
            ("delete", "fresh", None, None),
            ("store", "solo-9", {"text": "zebra w5"}, 0.1),
            ("delete", "solo-3", None, None),
        ]
        for op, key, value, importance in changes:
            for manager in (writer, exact):
                if op == "store":
                    await manager.store_memory("solo", key, value, importance=importance)
                else:
                    assert await manager.delete_memory("solo", key)
            assert await results(ours, "solo", spec) == await results(exact, "solo", spec), \
                (op, key)
            await wait_cached(store, "solo")
        before = store.search_paths["pgvector, rows cached"]
        assert await results(ours, "solo", spec) == await results(exact, "solo", spec)
        assert store.search_paths["pgvector, rows cached"] > before
        await ours.aclose()
        await writer.aclose()

    anyio.run(main)


def test_an_agent_under_the_share_that_fits_the_cache_is_searched_from_the_cache(
        pgvector_url: str, pgv_prefix: str) -> None:
    data = corpus(700, "big", seed=5) + corpus(200, "small", seed=6)

    async def main() -> None:
        clock = Clock()
        exact = await reference(data, clock)
        spec = {"query": "w7 w8", "limit": 10}
        runs = [({}, "cache"), ({"index_min_share": 0.0}, "pgvector"),
                ({"cache_bytes": "64K"}, "pgvector")]  # 200 rows do not fit in 64 KiB
        loaded = False
        for options, path in runs:
            store = pgvector_store(pgvector_url, pgv_prefix, index_min_entries=50,
                                   **options)
            ours = make_manager(store, clock, max_entries=None)
            if not loaded:
                await ours.store_many(data, batch_size=300)
                loaded = True
            for _ in range(2):  # the size is asked once, then known
                assert await results(ours, "small", spec) == \
                    await results(exact, "small", spec)
            assert store.search_paths[path] == 2, (options, store.search_paths)
            assert await results(ours, "big", spec) == await results(exact, "big", spec)
            assert store.search_paths["pgvector"] == (3 if path == "pgvector" else 1)
            await ours.aclose()

    anyio.run(main)


def test_below_index_min_entries_an_agent_that_fits_uses_the_cache_even_alone(
        pgvector_url: str, pgv_prefix: str) -> None:
    """With the default ``index_min_entries``, an agent of 2 100 entries holding the whole
    table is searched by index until its rows are cached (in the background), then
    exactly from the cache; when the cache cannot hold it, always by index (from 2 000
    entries on); a 300-entry agent the cache cannot hold is read whole."""
    data = corpus(2100, "solo", seed=21) + corpus(300, "few", seed=22)

    async def main() -> None:
        clock = Clock()
        exact = await reference(data, clock)
        spec = {"query": "w3 w4", "limit": 10}
        want = await results(exact, "solo", spec)
        store = pgvector_store(pgvector_url, pgv_prefix, index_min_share=0.8)
        ours = make_manager(store, clock, max_entries=None)
        await ours.store_many(data, batch_size=700)
        assert await results(ours, "solo", spec) == want
        assert store.search_paths == {"pgvector": 1}, store.search_paths
        await wait_cached(store, "solo")
        for _ in range(2):
            assert await results(ours, "solo", spec) == want
        assert store.search_paths == {"pgvector": 1, "cache": 2}, store.search_paths
        await ours.aclose()

        store = pgvector_store(pgvector_url, pgv_prefix, index_min_share=0.8,
                               cache_bytes="64K")
        ours = make_manager(store, clock, max_entries=None)
        for _ in range(3):
            assert await results(ours, "solo", spec) == want
        assert store.search_paths == {"pgvector": 3}, store.search_paths
        store.search_paths.clear()
        assert await results(ours, "few", spec) == await results(exact, "few", spec)
        assert not store.search_paths, store.search_paths  # neither: read whole
        await ours.aclose()

    anyio.run(main)


def test_an_agent_too_wordy_for_the_cache_and_under_2000_entries_never_uses_the_index(
        pgvector_url: str, pgv_prefix: str) -> None:
    """300 entries fit the cache by count but not by their texts: the search reads them
    whole, also once what the store learnt of the agent's size has aged out (the
    statement checks the count, and the index part does not run below 2 000)."""
    data = corpus(300, "wordy", seed=23)
    for i, item in enumerate(data):
        item["value"] = {"text": item["value"]["text"], "pad": f"p{i} " * 2000}

    async def main() -> None:
        clock = Clock()
        exact = await reference(data, clock)
        spec = {"query": "w3 w4", "limit": 5}
        want = await results(exact, "wordy", spec)
        store = pgvector_store(pgvector_url, pgv_prefix, index_min_share=0.0,
                               cache_bytes="1M")
        ours = make_manager(store, clock, max_entries=None)
        await ours.store_many(data, batch_size=100)
        for _ in range(3):
            assert await results(ours, "wordy", spec) == want
            assert store._sizes.uncacheable("wordy")
            store._sizes._known.clear()  # as after AgentSizes.TTL
        assert not store.search_paths, store.search_paths  # neither path: read whole
        await ours.aclose()

    anyio.run(main)


def test_closing_the_store_waits_for_its_cache_filler(pgvector_url: str,
                                                     pgv_prefix: str) -> None:
    async def main() -> None:
        store = pgvector_store(pgvector_url, pgv_prefix, index_min_entries=1)
        manager = make_manager(store, Clock(), max_entries=None)
        await manager.store_many(corpus(2000, "solo", seed=7), batch_size=1000)
        await manager.search_memories("solo", "w1 w2", limit=3)
        await manager.aclose()
        assert not [t for t in threading.enumerate() if t.name == "nf-memory-warm"]
        assert not store._warmers

    anyio.run(main)


@pytest.mark.parametrize("value", [1.5, -0.1, "half", True])
def test_index_min_share_must_be_a_share(value: Any) -> None:
    """Out of range: "expected a number from 0 to 1, got 1.5"; not a number: "expected a
    number, got 'half'"."""
    with pytest.raises(ConfigError,
                       match=r"memory\.postgres\.index_min_share: expected a number"):
        structure({"index_min_share": value}, PostgresStoreConfig, path="memory.postgres")


def test_a_search_cancelled_while_the_server_answers_leaves_the_store_usable(
        pgvector_url: str, pgv_prefix: str) -> None:
    """Cancelling a search on the ids path at any point (the statement in flight, the
    loop connection busy) leaves the store answering exactly."""
    data = corpus(800, "solo", seed=12)

    async def main() -> None:
        clock = Clock()
        store, ours, exact = await loaded(pgvector_url, pgv_prefix, clock, data)
        spec = {"query": "w3 w4 w5", "limit": 5}
        await results(ours, "solo", spec)
        await wait_cached(store, "solo")
        cancelled = 0
        for i in range(40):
            with anyio.move_on_after(0.0002 * i) as scope:
                await ours.search_memories("solo", **spec)
            cancelled += scope.cancelled_caught
            assert await results(ours, "solo", spec) == await results(exact, "solo", spec)
        assert cancelled, "no search was cancelled: the test proves nothing"
        assert store.search_paths["pgvector, rows cached"] >= 40
        await ours.aclose()

    anyio.run(main)


def test_a_delete_between_the_counters_and_the_refresh_is_not_missed(
        postgres_url: str, pg_prefix: str) -> None:
    """A search reads the agent's counters, finds them moved (another process wrote), then
    reads the changed rows with the counters again, in one statement.  A delete committed
    in between must still drop its row from the cache: had the refresh trusted the first
    read ("no deletes"), the cache would keep the deleted entry under counters that say it
    is current, and every later search would return it."""
    async def main() -> None:
        clock = Clock()
        store = SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix,
                                             vector_search="cache"))
        other = SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix,
                                             vector_search="cache"))
        ours = make_manager(store, clock, max_entries=None)
        writer = make_manager(other, clock, max_entries=None)
        await writer.store_many(corpus(50, "solo", seed=13), batch_size=50)
        await writer.store_memory("solo", "doomed", {"text": "zebra quartz"})
        assert [e.key for e in await ours.search_memories("solo", "zebra quartz",
                                                            limit=1)] == ["doomed"]
        await writer.store_memory("solo", "newer", {"text": "w1"})  # the cache is stale
        original = store._fetch
        raced = []

        async def delete_before_the_changes_are_read(sql: str, params: Any,
                                                     **options: Any) -> Any:
            if "SELECT 3," in sql and not raced:  # the changed rows' statement
                raced.append(await writer.delete_memory("solo", "doomed"))
            return await original(sql, params, **options)

        store._fetch = delete_before_the_changes_are_read  # type: ignore[method-assign]
        await ours.search_memories("solo", "w1", limit=1)  # refreshes the cache
        assert raced == [True]
        for _ in range(2):
            found = await ours.search_memories("solo", "zebra quartz", limit=5)
            assert "doomed" not in [e.key for e in found]
        await ours.aclose()
        await writer.aclose()

    anyio.run(main)


def test_the_cache_filler_never_evicts_and_starts_again_after_a_reopen(
        pgvector_url: str, pgv_prefix: str) -> None:
    """Agents on the cache path stay cached beside an index agent too big to fit with
    them (a background fill that evicted them would make every search re-read them);
    a store closed and used again fills caches again."""
    data = corpus(900, "big", seed=14) + [
        item for i in range(3) for item in corpus(60, f"small{i}", seed=15 + i)]

    async def main() -> None:
        clock = Clock()
        store = pgvector_store(pgvector_url, pgv_prefix, index_min_entries=50,
                               cache_entries=1000)
        manager = make_manager(store, clock, max_entries=None)
        await manager.store_many(data, batch_size=500)
        for _ in range(3):
            for agent in ("big", "small0", "small1", "small2"):
                await manager.search_memories(agent, "w1 w2", limit=3)
                while store._warmers:
                    await anyio.sleep(0.01)
        assert {a for a in ("big", "small0", "small1", "small2")
                if store._agents.get(a) is not None} == {"small0", "small1", "small2"}
        assert store.search_paths["cache"] == 9  # small agents were filled once each
        assert store._agents.entries() == 180
        await manager.aclose()
        await manager.search_memories("big", "w1 w2", limit=3)  # reopens the store
        await wait_cached(store, "big")  # the small agents' cache went with the close
        await manager.search_memories("big", "w1 w2", limit=3)
        assert store.search_paths["pgvector, rows cached"] >= 1
        await manager.aclose()

    anyio.run(main)


def test_rows_of_another_embedder_count_as_not_similar_on_the_ids_path(
        pgvector_url: str, pgv_prefix: str) -> None:
    """Two embedders with vectors of the same size write to one agent: from the cached
    rows, each manager's search compares only its own embedder's vectors (the other's
    rows still count by keyword), as the in-memory store does."""
    from neuroflow import create_backend
    from neuroflow.memory import MemoryConfig, MemoryManager

    def manager_of(store: Any, clock: Clock, name: str | None) -> MemoryManager:
        embedder = create_backend("embedder", "lexical")
        if name is not None:
            embedder.name = name
        return MemoryManager(MemoryConfig(gc_interval_seconds=1e9, max_entries=None),
                             store=store, embedder=embedder, clock=clock)

    async def main() -> None:
        clock = Clock()
        store = pgvector_store(pgvector_url, pgv_prefix, index_min_entries=1)
        exact = InMemoryStore()
        pairs = [(manager_of(s, clock, None), manager_of(s, clock, "another-model"))
                 for s in (store, exact)]
        data = corpus(1000, "solo", seed=21)
        for i in (0, 500):  # one entry of each embedder says exactly what is searched
            data[i]["value"] = {"text": "zebra quartz"}
        for first, second in pairs:
            await first.store_many(data[:500])
            await second.store_many(data[500:])
        spec = {"query": "zebra quartz", "limit": 10, "explain": True}
        await pairs[0][0].search_memories("solo", **spec)
        await wait_cached(store, "solo")
        before = store.search_paths["pgvector, rows cached"]
        for i in (0, 1):
            ours = await pairs[0][i].search_memories("solo", **spec)
            want = await pairs[1][i].search_memories("solo", **spec)
            assert [(e.key, round(e.score, 9), e.explain["semantic"]) for e in ours] == \
                [(e.key, round(e.score, 9), e.explain["semantic"]) for e in want]
            mine = {d["key"] for d in (data[:500] if i == 0 else data[500:])}
            alien = [e for e in ours if e.key not in mine]
            assert [e.key for e in alien][:1] == ["solo-500" if i == 0 else "solo-0"]
            assert all(e.explain["semantic"] == 0 for e in alien)
        # Candidates came from the cached rows (a search the index cannot decide goes on
        # to the cache path, which must agree as well).
        assert store.search_paths["pgvector, rows cached"] >= before + 2
        await pairs[0][0].aclose()

    anyio.run(main)


class SameVector:
    """Every text gets the same vector: similarities tie, so the order is decided by the
    ranker's tie-breaks (recency, then key), which read the candidates' keys."""

    dimension = 8
    name = "same-8"

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        out[:, 0] = 1.0
        return out


@pytest.mark.parametrize(("least", "path"), [(10_000, "cache"),
                                             (1, "pgvector, rows cached")])
def test_ties_are_broken_by_key_on_cached_rows_as_in_the_exact_search(
        pgvector_url: str, pgv_prefix: str, least: int, path: str) -> None:
    """Equal scores everywhere: the top results are the lowest keys, on the cache path
    and by index with the rows from the cache (keys shuffled on the way in)."""
    keys = [f"k{i:03d}" for i in range(300)]
    random.Random(9).shuffle(keys)
    data = [{"agent_id": "solo", "key": k, "value": {"text": "same words"},
             "importance": 0.5} for k in keys]

    async def main() -> None:
        clock = Clock()
        store = pgvector_store(pgvector_url, pgv_prefix, index_min_entries=least)
        ours = make_manager(store, clock, embedder=SameVector(), max_entries=None)
        exact = make_manager(InMemoryStore(), clock, embedder=SameVector(),
                             max_entries=None)
        for manager in (ours, exact):
            await manager.store_many(data, batch_size=300)
        clock.now += 10
        spec = {"query": "same words", "limit": 7}
        await results(ours, "solo", spec)
        await wait_cached(store, "solo")
        store.search_paths.clear()
        for limit in (1, 7, 25):
            spec["limit"] = limit
            got = await results(ours, "solo", spec)
            assert got == await results(exact, "solo", spec)
            assert [k for k, _ in got] == sorted(keys)[:limit]
        assert store.search_paths[path] == 3, store.search_paths
        await ours.aclose()

    anyio.run(main)


class Angles:
    """A text ``r<i>`` gets a vector at angle ``i / 1000`` from the query's, a text with
    ``hit`` one at right angles to it (the query ``foo`` is at angle 0)."""

    dimension = 8
    name = "angles-8"

    def embed(self, texts: list[str]) -> Any:
        import re

        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            found = re.search(r"\br(\d+)\b", text)
            if "hit" in text.split():
                out[row, 2] = 1.0
            elif found:
                angle = int(found.group(1)) / 1000
                out[row, 0], out[row, 1] = np.cos(angle), np.sin(angle)
            else:
                out[row, 0] = 1.0
        return out


def test_a_far_keyword_hit_under_tags_does_not_lower_the_bound_of_the_nearest(
        pgvector_url: str, pgv_prefix: str) -> None:
    """By index with cached rows and tags: the 40 nearest rows have importance 0; the 45th
    nearest has importance 1 and is the best match overall; a keyword hit at right angles
    to the query is a candidate too.  What the index left out may score up to the 40th
    nearest's similarity: counting the far hit in that bound would end the search early
    with the wrong winner."""
    data = [{"agent_id": "solo", "key": f"r{i:03d}", "value": {"text": f"r{i}"},
             "tags": ["x"], "importance": 1.0 if i == 45 else 0.0} for i in range(80)]
    data.append({"agent_id": "solo", "key": "far", "value": {"text": "foo hit"},
                 "tags": ["x"], "importance": 0.0})

    async def main() -> None:
        clock = Clock()
        store = pgvector_store(pgvector_url, pgv_prefix, index_min_entries=1,
                               index_min_share=0.0)
        ours = make_manager(store, clock, embedder=Angles(), max_entries=None)
        exact = make_manager(InMemoryStore(), clock, embedder=Angles(), max_entries=None)
        for manager in (ours, exact):
            await manager.store_many(data, batch_size=100)
        spec = {"query": "foo", "tags": ["x"], "limit": 1}
        await results(ours, "solo", spec)
        await wait_cached(store, "solo")
        store.search_paths.clear()
        want = await results(exact, "solo", spec)
        assert want[0][0] == "r045"
        assert await results(ours, "solo", spec) == want
        assert store.search_paths["pgvector, rows cached"] >= 1, store.search_paths
        await ours.aclose()

    anyio.run(main)
