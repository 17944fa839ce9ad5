"""Entry point ``memory-sqlite``: registers the ``sqlite``/``sql``/``postgres`` stores and the
``wordllama`` and ``minilm`` embedders.  Cheap to import: SQLAlchemy and models load in the
factories."""

from __future__ import annotations

from neuroflow import BackendKind, BackendSpec, hookimpl

_STORE = "neuroflow_memory_sqlite.store"


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """SQLite by default; the same code on PostgreSQL by URL."""
    return [
        *_embedders(),
        BackendSpec(
            name="sqlite",
            kind=BackendKind.MEMORY,
            factory=f"{_STORE}:SqlStore",
            config_class=f"{_STORE}:SqliteStoreConfig",
            description="persistent memory in SQLite (WAL, FTS5 keyword search)",
        ),
        BackendSpec(
            name="sql",
            kind=BackendKind.MEMORY,
            factory=f"{_STORE}:SqlStore",
            config_class=f"{_STORE}:SqliteStoreConfig",
            description="persistent memory in any database URL SQLAlchemy knows (sqlite/postgres)",
        ),
        BackendSpec(
            name="postgres",
            kind=BackendKind.MEMORY,
            factory=f"{_STORE}:SqlStore",
            config_class=f"{_STORE}:PostgresStoreConfig",
            description="persistent memory shared by many processes and machines, in PostgreSQL",
        ),
    ]


def _embedders() -> list[BackendSpec]:
    """Offline models: static embeddings (``wordllama`` extra) and a sentence-transformers
    model (``minilm`` extra, needs torch)."""
    return [
        BackendSpec(
            name="wordllama",
            kind=BackendKind.EMBEDDER,
            factory="neuroflow_memory_sqlite.wordllama_embedder:WordLlamaEmbedder",
            config_class="neuroflow_memory_sqlite.wordllama_embedder:WordLlamaConfig",
            description="WordLlama static embeddings, weights in the wheel (no torch, offline)",
        ),
        BackendSpec(
            name="minilm",
            kind=BackendKind.EMBEDDER,
            factory="neuroflow_memory_sqlite.minilm:MiniLMEmbedder",
            config_class="neuroflow_memory_sqlite.minilm:MiniLMConfig",
            description="sentence-transformers all-MiniLM-L6-v2 (torch; weights in a wheel)",
        ),
    ]


@hookimpl
def neuroflow_doctor_checks() -> list:
    """What the SQL stores and the wordllama/minilm embedders need from this machine."""
    import importlib.util
    import sqlite3

    from neuroflow import Check

    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        fts5, detail = True, f"SQLite {sqlite3.sqlite_version}"
    except sqlite3.Error as exc:
        fts5, detail = False, f"SQLite {sqlite3.sqlite_version} lacks FTS5 ({exc})"
    def installed(module: str, extra: str) -> tuple[bool, str]:
        ok = importlib.util.find_spec(module) is not None
        return ok, "installed" if ok else f"pip install 'neuroflow-memory-sqlite[{extra}]'"

    checks = [
        Check("memory: SQLite FTS5 keyword index", fts5, detail),
        Check("memory: psycopg for the postgres store", *installed("psycopg", "postgres")),
        Check("memory: wordllama embedder", *installed("wordllama", "wordllama")),
        Check("memory: minilm embedder", *installed("sentence_transformers", "minilm")),
    ]
    active = _active_search()
    if active is not None:
        checks.append(active)
    return checks


def _active_search() -> object | None:
    """The semantic-search path of the configured store, if it is one of ours on
    PostgreSQL (it connects to say so)."""
    from neuroflow import Check
    from neuroflow.memory import describe_memory_store

    info = describe_memory_store()
    if info.get("database") != "postgresql" and "error" not in info:
        return None
    if "error" in info:
        if info["backend"] not in ("postgres", "sql", "sqlite", "tiered"):
            return None
        return Check("memory: store reachable", False, info["error"])
    path = info["vector_search"]
    detail = (f"pgvector ({info.get('vector_index', 'hnsw')} index; agents' rows cached up "
              f"to {info.get('cache_bytes')} bytes; agents under "
              f"{info.get('index_min_entries')} entries or "
              f"{info.get('index_min_share')} of the table searched from that cache) at "
              f"{info['url']}"
              if path == "pgvector" else
              f"per-agent cache (no pgvector on the server; at most "
              f"{info['cache_entries']} entries, {info['cache_bytes']} bytes) at {info['url']}")
    return Check("memory: PostgreSQL semantic search", True, detail)
