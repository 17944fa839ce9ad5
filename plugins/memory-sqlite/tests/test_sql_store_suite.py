"""The memory-store conformance suite against SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from neuroflow.testing import MemoryStoreSuite
from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqliteStoreConfig, SqlStore


class TestSqliteStore(MemoryStoreSuite):
    """SQLite in WAL mode, FTS5 keyword search."""

    @pytest.fixture
    def memory_store(self, sqlite_url: str) -> Any:
        return SqlStore(SqliteStoreConfig(url=sqlite_url))


@pytest.mark.postgres
class TestPostgresStore(MemoryStoreSuite):
    """PostgreSQL, full-text keyword search, a fresh table prefix per test."""

    @pytest.fixture
    def memory_store(self, postgres_url: str, pg_prefix: str) -> Any:
        return SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix))
