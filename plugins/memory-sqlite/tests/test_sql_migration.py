"""Tables made before the embedder's name was kept with each vector, and before the per-agent
change counters, get the columns added."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import sqlalchemy as sa

from neuroflow.testing.memory import Clock, make_manager
from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqliteStoreConfig, SqlStore


async def _store_then_drop_model(store: Any, url: str, prefix: str, pg: bool) -> None:
    manager = make_manager(store, Clock())
    await manager.store_memory("a", "old", {"text": "dark theme"})
    await manager.aclose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {prefix}entries DROP COLUMN model")
        # Such a table also predates the change counters (on PostgreSQL their index
        # marks a complete schema).
        if pg:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {prefix}entries_model_v")
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {prefix}entries_seq")
        conn.exec_driver_sql(f"ALTER TABLE {prefix}entries DROP COLUMN seq")
        for column in ("changes", "deletes"):
            conn.exec_driver_sql(f"ALTER TABLE {prefix}counts DROP COLUMN {column}")
    engine.dispose()


def _check_reopened(store: Any) -> None:
    async def main() -> None:
        manager = make_manager(store, Clock())
        await manager.store_memory("a", "new", {"text": "dark mode"})
        found = {e.key: e.explain for e in await manager.search_memories(
            "a", "dark", explain=True)}
        # An old vector has no embedder name: it is compared by size, as before.
        assert found["old"]["semantic"] > 0 and found["new"]["semantic"] > 0
        # Later writes and deletes reach the search (the per-agent cache).
        await manager.store_memory("a", "newer", {"text": "dark night"})
        await manager.delete_memory("a", "old")
        assert sorted(e.key for e in await manager.search_memories("a", "dark")) == \
            ["new", "newer"]
        await manager.aclose()

    anyio.run(main)


def test_sqlite_table_without_model_column(sqlite_url: str) -> None:
    cfg = SqliteStoreConfig(url=sqlite_url)
    anyio.run(_store_then_drop_model, SqlStore(cfg), sqlite_url, cfg.table_prefix, False)
    _check_reopened(SqlStore(cfg))


@pytest.mark.postgres
def test_postgres_table_without_model_column(postgres_url: str, pg_prefix: str) -> None:
    cfg = PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix)
    anyio.run(_store_then_drop_model, SqlStore(cfg), postgres_url, pg_prefix, True)
    _check_reopened(SqlStore(cfg))
