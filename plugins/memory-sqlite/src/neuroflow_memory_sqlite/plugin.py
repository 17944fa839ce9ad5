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
