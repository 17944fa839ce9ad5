"""Entry point ``memory-sqlite``: registers the ``sqlite``/``sql``/``postgres`` stores and the
``wordllama`` embedder.  Cheap to import: SQLAlchemy and models load in the factories."""

from __future__ import annotations

from neuroflow.backends import BackendKind, BackendSpec
from neuroflow.hookspecs import hookimpl

_STORE = "neuroflow_memory_sqlite.store"


@hookimpl
def neuroflow_memory_stores() -> list[BackendSpec]:
    """SQLite by default; the same code on PostgreSQL by URL."""
    return [
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


@hookimpl
def neuroflow_embedders() -> list[BackendSpec]:
    """An offline static-embedding model (needs the ``wordllama`` extra)."""
    return [
        BackendSpec(
            name="wordllama",
            kind=BackendKind.EMBEDDER,
            factory="neuroflow_memory_sqlite.wordllama_embedder:WordLlamaEmbedder",
            config_class="neuroflow_memory_sqlite.wordllama_embedder:WordLlamaConfig",
            description="WordLlama static embeddings, weights in the wheel (no torch, offline)",
        )
    ]


@hookimpl
def neuroflow_doctor_checks() -> list:
    """What the SQL stores and the wordllama embedder need from this machine."""
    import importlib.util
    import sqlite3

    from neuroflow.doctor import Check

    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        fts5, detail = True, f"SQLite {sqlite3.sqlite_version}"
    except sqlite3.Error as exc:
        fts5, detail = False, f"SQLite {sqlite3.sqlite_version} lacks FTS5 ({exc})"
    def installed(module: str, extra: str) -> tuple[bool, str]:
        ok = importlib.util.find_spec(module) is not None
        return ok, "installed" if ok else f"pip install 'neuroflow-memory-sqlite[{extra}]'"

    return [
        Check("memory: SQLite FTS5 keyword index", fts5, detail),
        Check("memory: psycopg for the postgres store", *installed("psycopg", "postgres")),
        Check("memory: wordllama embedder", *installed("wordllama", "wordllama")),
    ]
