"""Memory: MemoryManager on SQLite / PostgreSQL / in-memory against raw drivers, same run.

Anchors, measured here on the same data:

* raw ``sqlite3`` doing the same storage work per entry (one transaction: the entry row
  with its JSON value, tags and embedding, its tag rows, its FTS5 row), and a minimal one
  (one row, one commit);
* raw ``sqlite3`` point SELECT + ``json.loads``; raw SQL tag + importance query;
* numpy brute force (matrix already in memory, ``einsum`` dot products, ``argpartition``)
  for semantic top-10;
* raw ``psycopg`` for PostgreSQL inserts and point reads.

    python benchmarks/bench_memory.py [--quick] [--entries N] [--no-postgres]
                                      [--langgraph-python PYTHON]

``--langgraph-python`` names an interpreter that has ``langgraph`` installed (default: this
one, if it has it); LangGraph's ``InMemoryStore`` then searches the same entries with the
same vectors, for comparison.

``--quick`` uses 10k entries instead of 100k.  One agent ("big") holds a tenth of the
entries, so "semantic over 10k entries of one agent" is that agent at full size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from neuroflow.memory import MemoryConfig, MemoryManager
from neuroflow.memory.embedders import LexicalEmbedder
from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.memory.text import entry_text

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TAGS = [f"tag{i}" for i in range(30)]


# --- data ---------------------------------------------------------------------------------


def make_data(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` entries: a tenth for agent "big", the rest spread over 90 agents."""
    rnd = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rnd.choice(letters) for _ in range(rnd.randint(4, 9)))
             for _ in range(3000)]
    out = []
    for i in range(n):
        agent = "big" if i % 10 == 0 else f"agent{i % 90}"
        out.append({
            "agent_id": agent,
            "key": f"k{i}",
            "value": {"text": " ".join(rnd.choice(vocab) for _ in range(8)),
                      "lang": rnd.choice(["en", "zh", "fr", "de"]), "n": i},
            "tags": rnd.sample(TAGS, 2),
            "importance": round(rnd.random(), 2),
        })
    return out


def queries(data: list[dict[str, Any]], k: int, seed: int = 11) -> list[str]:
    """Search texts: a few words taken from random entries."""
    rnd = random.Random(seed)
    return [" ".join(rnd.choice(data)["value"]["text"].split()[:3]) for _ in range(k)]


# --- helpers ------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms"


def line(label: str, value: float, anchor: float | None = None, target: str = "") -> None:
    ratio = f"   ratio {value / anchor:6.2f}x" if anchor else ""
    print(f"  {label:<58}{ms(value)}{ratio}{target}", flush=True)


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


async def timed_each(fn: Callable[[Any], Awaitable[Any]], items: list[Any]) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        await fn(item)
        out.append(time.perf_counter() - start)
    return out


def timed_each_sync(fn: Callable[[Any], Any], items: list[Any]) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


# --- raw sqlite3 anchors -----------------------------------------------------------------


def raw_sqlite_insert(path: Path, data: list[dict[str, Any]], blobs: list[bytes],
                      full: bool) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE e (id INTEGER PRIMARY KEY, agent_id TEXT, key TEXT, value TEXT, "
                 "tags TEXT, importance REAL, created_at REAL, updated_at REAL, "
                 "expires_at REAL, embedding BLOB, UNIQUE (agent_id, key))")
    if full:
        conn.execute("CREATE INDEX e_imp ON e (agent_id, importance)")
        conn.execute("CREATE TABLE t (entry_id INTEGER, agent_id TEXT, tag TEXT, "
                     "PRIMARY KEY (entry_id, tag))")
        conn.execute("CREATE INDEX t_tag ON t (tag, agent_id)")
        conn.execute("CREATE VIRTUAL TABLE f USING fts5(words)")
    start = time.perf_counter()
    for d, blob in zip(data, blobs, strict=True):
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(
            "INSERT INTO e (agent_id, key, value, tags, importance, created_at, updated_at, "
            "embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (d["agent_id"], d["key"], json.dumps(d["value"]), json.dumps(d["tags"]),
             d["importance"], now, now, blob if full else None))
        if full:
            rowid = cur.lastrowid
            conn.executemany("INSERT INTO t VALUES (?, ?, ?)",
                             [(rowid, d["agent_id"], t) for t in d["tags"]])
            conn.execute("INSERT INTO f (rowid, words) VALUES (?, ?)",
                         (rowid, d["value"]["text"]))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def raw_sqlite_reads(path: Path, keys: list[tuple[str, str]], tag_runs: list[str]
                     ) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)

    def get(ak: tuple[str, str]) -> None:
        row = conn.execute("SELECT value, tags FROM e WHERE agent_id = ? AND key = ?",
                           ak).fetchone()
        json.loads(row[0])
        json.loads(row[1])

    def tag_search(tag: str) -> None:
        rows = conn.execute(
            "SELECT e.value, e.tags FROM e JOIN t ON t.entry_id = e.id WHERE t.tag = ? AND "
            "e.importance >= 0.9 ORDER BY e.importance DESC LIMIT 10", (tag,)).fetchall()
        for r in rows:
            json.loads(r[0])

    get_p50 = p50(timed_each_sync(get, keys))
    tag_p50 = p50(timed_each_sync(tag_search, tag_runs))
    conn.close()
    return get_p50, tag_p50


def numpy_topk(matrix: np.ndarray, qvecs: np.ndarray) -> float:
    def one(q: np.ndarray) -> None:
        scores = np.einsum("ij,j->i", matrix, q)
        top = np.argpartition(scores, -10)[-10:]
        top[np.argsort(-scores[top])]

    return p50(timed_each_sync(one, list(qvecs)))


# --- ours --------------------------------------------------------------------------------


async def fill(manager: MemoryManager, data: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for d in data:
        await manager.store_memory(d["agent_id"], d["key"], d["value"], d["tags"],
                                   d["importance"])
    return time.perf_counter() - start


async def reads(manager: MemoryManager, keys: list[tuple[str, str]], tag_runs: list[str],
                texts: list[str], agent: str | None) -> dict[str, float]:
    await manager.retrieve_memory(*keys[0])
    out = {"get": p50(await timed_each(lambda ak: manager.retrieve_memory(*ak), keys))}
    out["tag"] = p50(await timed_each(
        lambda t: manager.search_memories(None, tags=[t], min_importance=0.9, limit=10),
        tag_runs))
    out["tag_agent"] = p50(await timed_each(
        lambda t: manager.search_memories("big", tags=[t], min_importance=0.5, limit=10),
        tag_runs))
    await manager.search_memories(agent, texts[0], limit=10)
    out["semantic"] = p50(await timed_each(
        lambda q: manager.search_memories(agent, q, limit=10), texts))
    return out


def config() -> MemoryConfig:
    return MemoryConfig(max_entries=None)


# --- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k entries instead of 100k")
    parser.add_argument("--entries", type=int, default=None)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--pg-agent-only", action="store_true",
                        help="only the PostgreSQL one-agent section (10k entries)")
    parser.add_argument("--langgraph-python", default=None, metavar="PYTHON")
    args = parser.parse_args()
    if args.pg_agent_only:
        postgres_one_agent(LexicalEmbedder(), args.entries or 10_000)
        return
    n = args.entries or (10_000 if args.quick else 100_000)
    n_pg = max(n // 5, 2_000)
    data = make_data(n)
    big = [d for d in data if d["agent_id"] == "big"]
    rnd = random.Random(3)
    keys = [(d["agent_id"], d["key"]) for d in rnd.sample(data, 2000)]
    tag_runs = [rnd.choice(TAGS) for _ in range(50)]
    texts = queries(data, 50)
    embedder = LexicalEmbedder()
    t0 = time.perf_counter()
    vectors = embedder.embed([entry_text(d["key"], d["value"], d["tags"]) for d in data])
    embed_each = (time.perf_counter() - t0) / n
    blobs = [v.tobytes() for v in vectors]
    qvecs = embedder.embed(texts)
    print(f"memory benchmark: {n} entries ({len(big)} for agent 'big'), lexical embedder "
          f"({embedder.dimension} dims, {embed_each * 1e6:.0f} µs per entry to embed)")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("\nSQLite (WAL, synchronous=NORMAL, one transaction per write)")
        raw_min = raw_sqlite_insert(folder / "raw-min.db", data, blobs, full=False)
        raw_full = raw_sqlite_insert(folder / "raw.db", data, blobs, full=True)
        raw_get, raw_tag = raw_sqlite_reads(folder / "raw.db", keys, tag_runs)

        from neuroflow_memory_sqlite.store import SqliteStoreConfig, SqlStore

        async def sqlite_run() -> tuple[float, dict[str, float], dict[str, float]]:
            url = f"sqlite:///{folder / 'ours.db'}"
            manager = MemoryManager(config(), store=SqlStore(SqliteStoreConfig(url=url)),
                                    embedder=embedder)
            async with manager:
                insert = await fill(manager, data)
                on_big = await reads(manager, keys, tag_runs, texts, "big")
                whole = {"semantic": p50(await timed_each(
                    lambda q: manager.search_memories(None, q, limit=10), texts[:10]))}
            return insert, on_big, whole

        insert, ours, whole = anyio.run(sqlite_run)
        print(f"  {n} inserts:")
        line("raw sqlite3, minimal (one row, commit) / entry", raw_min / n)
        line("raw sqlite3, same storage (row+tags+FTS5+vector) / entry", raw_full / n)
        line("store_memory / entry (incl. embedding + history)", insert / n, raw_full / n,
             "   target <= 2x")
        print("  point retrieve, p50:")
        line("raw sqlite3 SELECT + json.loads", raw_get)
        line("retrieve_memory", ours["get"], raw_get, "   target <= 3x")
        print(f"  tag + min_importance search, top 10, p50 (over {n}):")
        line("raw SQL join, ORDER BY importance LIMIT 10", raw_tag)
        line("search_memories(tags, min_importance) all agents", ours["tag"], raw_tag)
        line(f"search_memories(tags, min_importance) agent 'big' ({len(big)})",
             ours["tag_agent"], raw_tag)
        big_idx = [i for i, d in enumerate(data) if d["agent_id"] == "big"]
        np_big = numpy_topk(vectors[big_idx], qvecs)
        np_all = numpy_topk(vectors, qvecs)
        print("  semantic top-10 (query embedded per call), p50:")
        line(f"numpy brute force, matrix in memory ({len(big)})", np_big)
        line(f"search_memories(query) on SQLite, agent 'big' ({len(big)})", ours["semantic"],
             np_big, "   target <= 2 ms")
        line(f"numpy brute force, matrix in memory ({n})", np_all)
        line(f"search_memories(query) on SQLite, all agents ({n})", whole["semantic"], np_all)

        async def memory_run() -> dict[str, float]:
            manager = MemoryManager(config(), store=InMemoryStore(), embedder=embedder)
            await fill(manager, big)
            big_keys = [(d["agent_id"], d["key"]) for d in big[:2000]]
            await manager.search_memories("big", texts[0], limit=10)
            return {
                "semantic": p50(await timed_each(
                    lambda q: manager.search_memories("big", q, limit=10), texts)),
                "get": p50(await timed_each(lambda ak: manager.retrieve_memory(*ak),
                                            big_keys)),
            }

        mem = anyio.run(memory_run)
        print("In-memory store (short-term):")
        line(f"search_memories(query), agent 'big' ({len(big)})", mem["semantic"], np_big,
             "   target <= 2 ms")
        line("retrieve_memory p50", mem["get"], raw_get)
        lg = langgraph(args.langgraph_python, folder, big, vectors[big_idx], texts, qvecs)
        if lg is not None:
            line(f"LangGraph InMemoryStore.search, same vectors ({len(big)})", lg, np_big)
            print(f"  LangGraph takes {lg / mem['semantic']:.0f}x the in-memory store's time "
                  f"and {lg / ours['semantic']:.0f}x the SQLite store's", flush=True)

    if not args.no_postgres:
        postgres(data[:n_pg], embedder, keys, tag_runs, texts)
        postgres_one_agent(embedder, 10_000)


_LANGGRAPH = """
import json, statistics, sys, time
import numpy as np
from langgraph.store.memory import InMemoryStore
folder = sys.argv[1]
items = json.load(open(folder + "/lg-items.json"))
texts = json.load(open(folder + "/lg-queries.json"))
vecs = np.load(folder + "/lg-vectors.npy")
qvecs = np.load(folder + "/lg-qvectors.npy")
lookup = {it["text"]: vecs[i].tolist() for i, it in enumerate(items)}
lookup.update({t: qvecs[i].tolist() for i, t in enumerate(texts)})
store = InMemoryStore(index={"dims": vecs.shape[1], "embed": lambda xs: [lookup[x] for x in xs],
                             "fields": ["text"]})
for it in items:
    store.put(("big",), it["key"], {"text": it["text"]})
store.search(("big",), query=texts[0], limit=10)
times = []
for t in texts:
    start = time.perf_counter()
    store.search(("big",), query=t, limit=10)
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def langgraph(python: str | None, folder: Path, big: list[dict[str, Any]], vectors: np.ndarray,
              texts: list[str], qvecs: np.ndarray) -> float | None:
    """LangGraph InMemoryStore semantic search p50 on the same data, or None."""
    import importlib.util
    import subprocess
    import sys

    if python is None:
        if importlib.util.find_spec("langgraph") is None:
            print("  (LangGraph not installed: pass --langgraph-python; reference figure "
                  "on this machine: ~161 ms over 10k)")
            return None
        python = sys.executable
    items = [{"key": d["key"], "text": d["value"]["text"]} for d in big]
    (folder / "lg-items.json").write_text(json.dumps(items))
    (folder / "lg-queries.json").write_text(json.dumps(texts))
    np.save(folder / "lg-vectors.npy", vectors)
    np.save(folder / "lg-qvectors.npy", qvecs)
    out = subprocess.run([python, "-c", _LANGGRAPH, str(folder)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        print(f"  (LangGraph run failed: {out.stderr.strip().splitlines()[-1:]})")
        return None
    return float(out.stdout.strip())


def postgres(data: list[dict[str, Any]], embedder: LexicalEmbedder,
             keys: list[tuple[str, str]], tag_runs: list[str], texts: list[str]) -> None:
    import psycopg

    n = len(data)
    present = {(d["agent_id"], d["key"]) for d in data}
    keys = [k for k in keys if k in present][:1000] or [(data[0]["agent_id"], data[0]["key"])]
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    print(f"\nPostgreSQL ({n} entries, 127.0.0.1, one transaction per write)")
    try:
        raw = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True)
    except psycopg.OperationalError as exc:
        print(f"  skipped: cannot connect ({exc})")
        return
    table = f"{prefix}raw"
    raw.execute(f"CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, agent_id TEXT, key TEXT, "
                "value TEXT, tags TEXT, importance DOUBLE PRECISION, embedding BYTEA, "
                "UNIQUE (agent_id, key))")
    blobs = [v.tobytes() for v in embedder.embed(
        [entry_text(d["key"], d["value"], d["tags"]) for d in data])]
    start = time.perf_counter()
    for d, blob in zip(data, blobs, strict=True):
        with raw.transaction():
            raw.execute(f"INSERT INTO {table} (agent_id, key, value, tags, importance, "
                        "embedding) VALUES (%s, %s, %s, %s, %s, %s)",
                        (d["agent_id"], d["key"], json.dumps(d["value"]),
                         json.dumps(d["tags"]), d["importance"], blob))
    raw_insert = (time.perf_counter() - start) / n

    def get(ak: tuple[str, str]) -> None:
        row = raw.execute(f"SELECT value, tags FROM {table} WHERE agent_id = %s AND key = %s",
                          ak).fetchone()
        json.loads(row[0])

    raw_get = p50(timed_each_sync(get, keys))

    from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqlStore

    async def run() -> tuple[float, dict[str, float]]:
        store = SqlStore(PostgresStoreConfig(url=PG_URL, table_prefix=prefix))
        manager = MemoryManager(config(), store=store, embedder=embedder)
        async with manager:
            insert = await fill(manager, data)
            return insert / n, await reads(manager, keys, tag_runs, texts, "big")

    try:
        insert, ours = anyio.run(run)
        big = sum(1 for d in data if d["agent_id"] == "big")
        line("raw psycopg INSERT (row + vector) / entry", raw_insert)
        line("store_memory / entry", insert, raw_insert)
        line("raw psycopg point SELECT p50", raw_get)
        line("retrieve_memory p50", ours["get"], raw_get)
        line(f"search_memories(tags, min_importance) all agents ({n})", ours["tag"])
        line(f"search_memories(query) agent 'big' ({big})", ours["semantic"])
    finally:
        for suffix in ("raw", "entries", "tags", "history", "counts"):
            raw.execute(f"DROP TABLE IF EXISTS {prefix}{suffix}")
        raw.close()


def postgres_one_agent(embedder: LexicalEmbedder, n: int) -> None:
    """PostgreSQL, ``n`` entries of one agent: semantic top-10, a word every entry has,
    and searches interleaved with writes; anchored on reading every vector of the agent
    with raw psycopg and ranking them with numpy."""
    import psycopg

    data = make_data(n, seed=5)
    for i, d in enumerate(data):
        d["agent_id"] = "solo"
        d["value"]["text"] += " shared"  # the common word: every entry has it
        d["key"] = f"s{i}"
    texts = queries(data, 30)
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    print(f"\nPostgreSQL, one agent with {n} entries (lexical, {embedder.dimension} dims)")
    try:
        raw = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True)
    except psycopg.OperationalError as exc:
        print(f"  skipped: cannot connect ({exc})")
        return
    from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqlStore

    qvecs = embedder.embed(texts)
    dim = embedder.dimension

    def anchor(i: int) -> None:
        rows = raw.execute(f"SELECT id, embedding FROM {prefix}entries WHERE agent_id = %s",
                           ("solo",)).fetchall()
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        scores = matrix.reshape(len(rows), dim) @ qvecs[i % len(qvecs)]
        np.argpartition(scores, -10)[-10:]

    async def run() -> dict[str, float]:
        store = SqlStore(PostgresStoreConfig(url=PG_URL, table_prefix=prefix))
        manager = MemoryManager(config(), store=store, embedder=embedder)
        out: dict[str, float] = {}
        async with manager:
            out["fill"] = await fill(manager, data) / n
            await manager.search_memories("solo", texts[0], limit=10)
            out["semantic"] = p50(await timed_each(
                lambda q: manager.search_memories("solo", q, limit=10), texts))
            out["common"] = p50(await timed_each(
                lambda q: manager.search_memories("solo", q, limit=10), ["shared"] * 20))
            rnd = random.Random(9)
            writes: list[float] = []
            searches: list[float] = []
            for q in texts * 2:
                d = rnd.choice(data)
                t0 = time.perf_counter()
                await manager.store_memory("solo", d["key"], d["value"], d["tags"],
                                           d["importance"])
                t1 = time.perf_counter()
                await manager.search_memories("solo", q, limit=10)
                writes.append(t1 - t0)
                searches.append(time.perf_counter() - t1)
            out["mixed_write"], out["mixed_search"] = p50(writes), p50(searches)
        return out

    try:
        ours = anyio.run(run)
        raw_rank = p50(timed_each_sync(anchor, list(range(len(texts)))))
        line("anchor: raw psycopg read of the agent's vectors + numpy top-10", raw_rank)
        line("store_memory / entry (fill)", ours["fill"])
        line("search_memories(query) top-10 p50", ours["semantic"], raw_rank)
        line("search_memories('shared'), a word in every entry, p50", ours["common"],
             raw_rank)
        line("interleaved: store_memory p50", ours["mixed_write"])
        line("interleaved: search_memories(query) p50", ours["mixed_search"], raw_rank)
    finally:
        for suffix in ("entries", "tags", "history", "counts"):
            raw.execute(f"DROP TABLE IF EXISTS {prefix}{suffix}")
        raw.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
