"""The memory-store conformance suite (and its state machine) against SQLite, PostgreSQL
without pgvector (the per-agent cache), PostgreSQL with pgvector, and the tiered store over
each."""

from __future__ import annotations

from typing import Any

import pytest

from neuroflow.memory.tiered import TieredStore
from neuroflow.testing import MemoryStoreSuite
from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqliteStoreConfig, SqlStore


class TestSqliteStore(MemoryStoreSuite):
    """SQLite in WAL mode, FTS5 keyword search."""

    @pytest.fixture
    def memory_store(self, sqlite_url: str) -> Any:
        return SqlStore(SqliteStoreConfig(url=sqlite_url))


@pytest.mark.postgres
class TestPostgresStore(MemoryStoreSuite):
    """PostgreSQL 15 (no pgvector): the per-agent cache, a fresh table prefix per test."""

    @pytest.fixture
    def memory_store(self, postgres_url: str, pg_prefix: str) -> Any:
        return SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix,
                                            vector_search="cache"))


@pytest.mark.postgres
class TestPgvectorStore(MemoryStoreSuite):
    """PostgreSQL 18 with pgvector: HNSW index search with exact re-ranking."""

    @pytest.fixture
    def memory_store(self, pgvector_url: str, pgv_prefix: str) -> Any:
        return SqlStore(PostgresStoreConfig(url=pgvector_url, table_prefix=pgv_prefix,
                                            vector_search="pgvector", index_min_entries=1,
                                            index_min_share=0.0))


class TestTieredOverSqlite(MemoryStoreSuite):
    """The tiered store's in-process cache in front of SQLite."""

    @pytest.fixture
    def memory_store(self, sqlite_url: str) -> Any:
        return TieredStore(SqlStore(SqliteStoreConfig(url=sqlite_url)), hot_entries=3)


@pytest.mark.postgres
class TestTieredOverPostgres(MemoryStoreSuite):
    """The tiered store in front of PostgreSQL without pgvector."""

    @pytest.fixture
    def memory_store(self, postgres_url: str, pg_prefix: str) -> Any:
        return TieredStore(SqlStore(PostgresStoreConfig(
            url=postgres_url, table_prefix=pg_prefix, vector_search="cache")), hot_entries=3)


@pytest.mark.postgres
class TestTieredOverPgvector(MemoryStoreSuite):
    """The tiered store in front of PostgreSQL with pgvector."""

    @pytest.fixture
    def memory_store(self, pgvector_url: str, pgv_prefix: str) -> Any:
        return TieredStore(SqlStore(PostgresStoreConfig(
            url=pgvector_url, table_prefix=pgv_prefix, vector_search="pgvector",
            index_min_entries=1, index_min_share=0.0)),
            hot_entries=3)
