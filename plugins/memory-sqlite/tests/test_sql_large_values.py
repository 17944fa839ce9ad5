"""An 8 MiB value does not block the event loop on SQLite and PostgreSQL.

The bound is generous (1 s, against the several seconds a value of this size blocked the
loop for when it was encoded, indexed and written on it): this checks that the work runs
off the loop, not how fast it is.
"""

from __future__ import annotations

from typing import Any

import pytest

from neuroflow.testing.memory import Clock, make_manager
from neuroflow.testing.memory_limits import big_value, longest_pause
from neuroflow_memory_sqlite.store import PostgresStoreConfig, SqliteStoreConfig, SqlStore

pytestmark = pytest.mark.anyio


async def _check(store: Any) -> None:
    manager = make_manager(store, Clock())
    value = big_value()
    await manager.start()

    async def work() -> Any:
        await manager.store_memory("a", "big", value, tags=["big"])
        await manager.update_memory("a", "big", importance=0.9)  # indexed and written again
        return await manager.retrieve_memory("a", "big")

    pause, got = await longest_pause(work)
    assert got is not None and got.value == value and got.version == 2
    assert pause < 1.0, f"the event loop was blocked for {pause:.2f} s"
    await manager.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sqlite_an_8_mib_value_does_not_block_the_event_loop(sqlite_url: str) -> None:
    await _check(SqlStore(SqliteStoreConfig(url=sqlite_url)))


@pytest.mark.postgres
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_postgres_an_8_mib_value_does_not_block_the_event_loop(
    postgres_url: str, pg_prefix: str
) -> None:
    await _check(SqlStore(PostgresStoreConfig(url=postgres_url, table_prefix=pg_prefix)))
