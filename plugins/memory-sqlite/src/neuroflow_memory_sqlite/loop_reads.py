"""PostgreSQL reads on the event loop: one psycopg ``AsyncConnection`` per asyncio loop.

A search on PostgreSQL costs one or two round trips of a fraction of a millisecond each.
Run through a worker thread, every call also pays two thread hand-offs (waking the worker,
waking the loop), and on a busy machine those cost more than the query.  Under asyncio the
search's reads (the agent's change counters and keyword hits, the pgvector query, the
winners' rows) and point reads therefore run on the loop itself, on a psycopg async
connection: the loop polls the socket, it never waits for the server.

The connection is used by one read at a time.  A read that finds it busy (another task's
read in flight), a read under another event loop (trio) and a store whose URL names
another driver than ``psycopg`` use the thread path instead (:meth:`LoopReader.rows`
returns ``None``).  The connection belongs to the loop that opened it; a read from another
loop replaces it.  A connection the server closed is replaced and the read run once more
(reads are idempotent); any other interruption (a cancelled read) closes it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("neuroflow.memory")


def _in_asyncio_task() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop if the caller is an asyncio task, else ``None``."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop if asyncio.current_task() is not None else None


class LoopReader:
    """Read-only statements on an async psycopg connection (see the module docstring).

    Args:
        connect_args: keyword arguments of ``psycopg.AsyncConnection.connect``.
        settings: statements run once on every new connection (``SET ...``).
        setup: called with every new connection before use (to register adapters).
    """

    def __init__(self, connect_args: dict[str, Any], settings: Sequence[str] = (),
                 setup: Callable[[Any], None] | None = None) -> None:
        self._args = {k: v for k, v in connect_args.items() if k != "context"}
        self._settings = list(settings)
        self._setup = setup
        self._busy = threading.Lock()
        self._conn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]] | None:
        """All rows of one statement (``%(name)s`` parameters, binary results), or ``None``
        when this read cannot run on the loop now (the caller uses a worker thread).

        Raises:
            psycopg.Error: the statement failed (the connection stays usable when it can).
        """
        loop = _in_asyncio_task()
        if loop is None or self._closed or not self._busy.acquire(blocking=False):
            return None
        try:
            for attempt in (1, 2):
                conn = await self._connection(loop)
                try:
                    cur = conn.cursor(binary=True)
                    await cur.execute(sql, params)
                    return await cur.fetchall()
                except BaseException as exc:
                    import psycopg

                    broken = conn.closed or conn.broken
                    if not isinstance(exc, psycopg.Error) or broken or \
                            conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        self._drop()
                    if broken and attempt == 1 and isinstance(exc, psycopg.OperationalError):
                        log.debug("memory: the server closed the loop connection (%s); "
                                  "reconnecting", exc)
                        continue
                    raise
            raise AssertionError("unreachable")
        finally:
            if self._closed:
                self._drop()  # closed while this read ran
            self._busy.release()

    async def _connection(self, loop: asyncio.AbstractEventLoop) -> Any:
        if self._conn is not None and self._loop is loop:
            return self._conn
        self._drop()
        import psycopg

        conn = await psycopg.AsyncConnection.connect(**self._args, autocommit=True)
        try:
            if self._setup is not None:
                self._setup(conn)
            for statement in self._settings:
                try:
                    await conn.execute(statement)
                except psycopg.Error as exc:  # e.g. an older pgvector without the setting
                    log.debug("memory: %s: %s", statement, exc)
        except BaseException:
            conn.pgconn.finish()
            raise
        self._conn, self._loop = conn, loop
        return conn

    def _drop(self) -> None:
        conn, self._conn, self._loop = self._conn, None, None
        if conn is not None:
            # Closing the socket needs no loop: the connection may belong to another one.
            conn.pgconn.finish()

    def close(self) -> None:
        """Close the connection; later reads return ``None`` (the thread path)."""
        self._closed = True
        if self._busy.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._busy.release()
        # Otherwise the read in flight closes it when it ends.
