"""``SqlStore``: a :class:`neuroflow.memory.MemoryStore` on SQLAlchemy, for SQLite and PostgreSQL.

One code path, plain SQL that both databases accept, with three dialect switches:

* SQLite runs in WAL mode with a busy timeout and ``synchronous=NORMAL`` (a committed
  write survives the writer being killed; ``synchronous = "FULL"`` also survives power
  loss).  Every write transaction starts with ``BEGIN IMMEDIATE``, so concurrent writers
  from several processes queue instead of failing.  Keyword search uses an FTS5 table.
  Point reads run in place (WAL readers never wait) when the reader connection is free,
  and so does a ``put`` that finds the write lock free; otherwise (a worker thread holds
  the reader, or another writer the lock) the call waits in a worker thread instead:
  the event loop only ever tries the reader's lock.
* PostgreSQL locks the row it changes (``SELECT ... FOR UPDATE``) and resolves concurrent
  creation of one key with ``ON CONFLICT DO NOTHING`` plus a retry.  Keyword search uses a
  GIN index on a stored ``tsvector`` column (``to_tsvector('simple', words)``).
* Key ordering uses code-point order on both (``COLLATE "C"`` on PostgreSQL).

Semantic search is exact and pre-filtered: the embeddings of the entries that pass the
filters are read and ranked with numpy by the manager.  Anything that may wait runs in a
worker thread (``anyio.to_thread``), so the store works under asyncio and trio.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import attrs
import numpy as np
import sqlalchemy as sa
from sqlalchemy import event

from neuroflow.config import file_relative
from neuroflow.errors import (
    ConfigError,
    MemoryConflictError,
    MemoryStoreError,
    MissingPluginError,
)
from neuroflow.memory import (
    OFF_LOOP_BYTES,
    Candidates,
    HistoryRecord,
    MemoryEntry,
    MemoryQuery,
    coverage,
    is_large,
    matches_filter,
    tokenize,
)
from neuroflow.units import ByteSize, MiB, size_converter
from neuroflow_memory_sqlite.agent_cache import CachedRef, VectorCache
from neuroflow_memory_sqlite.loop_reads import LoopReader
from neuroflow_memory_sqlite.pg_search import (
    AgentSizes,
    PgSearch,
    RowRef,
    register_vector_param,
)

T = TypeVar("T")
log = logging.getLogger("neuroflow.memory")

_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_CHUNK = 500
_IN_PLACE_ROWS = 20_000  # larger searches go to a worker thread, to keep the loop responsive
# PostgreSQL: a tsvector holds at most 1 MB; only this many leading characters of an
# entry's words are full-text indexed (keyword scores of the rest still count once found).
_TSV_CHARS = 100_000
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_FULL = ("id, agent_id, key, value, tags, importance, created_at, updated_at, expires_at, "
         "version")


def _check_prefix(_inst: object, _attr: attrs.Attribute, value: str) -> None:
    if not _PREFIX.match(value):
        raise ConfigError(
            f"table_prefix: expected letters, digits and underscores "
            f"(starting with a letter or _), got {value!r}")


def _one_of(*choices: str) -> Callable[[object, attrs.Attribute, str], None]:
    def check(_inst: object, attr: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise ConfigError(f"{attr.name}: expected one of {', '.join(choices)}, "
                              f"got {value!r}")
    return check


def _positive(_inst: object, attr: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{attr.name}: expected an integer greater than 0, got {value!r}")


def _to_share(value: Any) -> Any:
    """A share given as an int or float becomes a float (a bool or text is left to fail)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else value


def _share_range(_inst: object, attr: attrs.Attribute, value: float) -> None:
    if not isinstance(value, float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{attr.name}: expected a number from 0 to 1, got {value!r}")


def _search_fields() -> dict[str, Any]:
    """Fields both store configs share: how PostgreSQL runs semantic search."""
    return {
        "vector_search": attrs.field(default="auto",
                                     validator=_one_of("auto", "pgvector", "cache")),
        "vector_index": attrs.field(default="hnsw", validator=_one_of("hnsw", "ivfflat")),
        "hnsw_m": attrs.field(default=16, validator=_positive),
        "hnsw_ef_construction": attrs.field(default=64, validator=_positive),
        "hnsw_ef_search": attrs.field(default=40, validator=_positive),
        "ivfflat_lists": attrs.field(default=100, validator=_positive),
        "ivfflat_probes": attrs.field(default=10, validator=_positive),
        "index_min_entries": attrs.field(default=15_000, validator=_positive),
        "index_min_share": attrs.field(default=0.5, converter=_to_share,
                                       validator=_share_range),
        "cache_bytes": attrs.field(default=256 * MiB, converter=size_converter("cache_bytes"),
                                   validator=_positive),
        "index_build_memory": attrs.field(
            default=1024 * MiB, converter=size_converter("index_build_memory"),
            validator=_positive),
    }


def _check_sync(_inst: object, _attr: attrs.Attribute, value: str) -> None:
    if value.upper() not in _SYNCHRONOUS:
        raise ConfigError(
            f"synchronous: expected one of {', '.join(_SYNCHRONOUS)}, "
            f"got {value!r}")


@attrs.frozen
class SqliteStoreConfig:
    """Options of the ``sqlite`` store (``[memory.sqlite]``).

    Attributes:
        url: a SQLAlchemy URL; ``sqlite:///path.db`` or ``postgresql+psycopg://...``.
        table_prefix: prefix of every table, so several stores can share a database.
        busy_timeout_ms: how long a SQLite writer waits for another one.
        synchronous: SQLite's ``synchronous`` pragma (``NORMAL`` survives a killed process,
            ``FULL`` also power loss).
        pool_size: connections kept open (PostgreSQL).
        cache_entries: most entries whose ranking columns and embeddings are kept in
            memory between searches (0 turns the cache off): one cache per agent, which
            fetches only what changed (SQLite also keeps the columns of searches over
            every agent, rebuilt after any commit).
        echo: log every SQL statement.
        vector_search: PostgreSQL: ``auto`` (pgvector when the server has the extension,
            else the per-agent cache), ``pgvector`` (required) or ``cache``.
        vector_index: PostgreSQL with pgvector: ``hnsw`` or ``ivfflat``, one index per
            vector size.
        hnsw_m, hnsw_ef_construction: HNSW build options; hnsw_ef_search: its search
            breadth (40, pgvector's default; more finds more of the true nearest, slower).
        ivfflat_lists, ivfflat_probes: IVFFlat build and search options.
        index_min_entries: with pgvector, an agent with fewer entries whose rows are in
            the per-agent cache is searched exactly from it: an exact scan of up to
            ~15 000 cached rows costs less than asking the index (which also may miss
            some of the true nearest).  Until they are cached (a background fill), and
            for an agent the cache cannot hold, the index serves from
            ``min(index_min_entries, 2000)`` entries on.
        index_min_share: with pgvector, an agent holding less than this share of the
            table's entries is searched exactly from the per-agent cache when it fits
            there (an index scan filtered to a small share of the table visits many
            other agents' entries first); 0 turns this off.
        cache_bytes: most memory the per-agent cache holds (``"256M"``).
        index_build_memory: PostgreSQL with pgvector: ``maintenance_work_mem`` while the
            vector index is built (an HNSW graph that does not fit builds much slower).
    """

    url: str = file_relative("sqlite-url", default="sqlite:///neuroflow-memory.db")
    table_prefix: str = attrs.field(default="nf_memory_", validator=_check_prefix)
    busy_timeout_ms: int = 30_000
    synchronous: str = attrs.field(default="NORMAL", validator=_check_sync)
    pool_size: int = 5
    cache_entries: int = 200_000
    echo: bool = False
    vector_search: str = _search_fields()["vector_search"]
    vector_index: str = _search_fields()["vector_index"]
    hnsw_m: int = _search_fields()["hnsw_m"]
    hnsw_ef_construction: int = _search_fields()["hnsw_ef_construction"]
    hnsw_ef_search: int = _search_fields()["hnsw_ef_search"]
    ivfflat_lists: int = _search_fields()["ivfflat_lists"]
    ivfflat_probes: int = _search_fields()["ivfflat_probes"]
    index_min_entries: int = _search_fields()["index_min_entries"]
    index_min_share: float = _search_fields()["index_min_share"]
    cache_bytes: ByteSize = _search_fields()["cache_bytes"]
    index_build_memory: ByteSize = _search_fields()["index_build_memory"]


@attrs.frozen
class PostgresStoreConfig:
    """Options of the ``postgres`` store (``[memory.postgres]``); see :class:`SqliteStoreConfig`."""

    url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    table_prefix: str = attrs.field(default="nf_memory_", validator=_check_prefix)
    busy_timeout_ms: int = 30_000
    synchronous: str = attrs.field(default="NORMAL", validator=_check_sync)
    pool_size: int = 5
    cache_entries: int = 200_000
    echo: bool = False
    vector_search: str = _search_fields()["vector_search"]
    vector_index: str = _search_fields()["vector_index"]
    hnsw_m: int = _search_fields()["hnsw_m"]
    hnsw_ef_construction: int = _search_fields()["hnsw_ef_construction"]
    hnsw_ef_search: int = _search_fields()["hnsw_ef_search"]
    ivfflat_lists: int = _search_fields()["ivfflat_lists"]
    ivfflat_probes: int = _search_fields()["ivfflat_probes"]
    index_min_entries: int = _search_fields()["index_min_entries"]
    index_min_share: float = _search_fields()["index_min_share"]
    cache_bytes: ByteSize = _search_fields()["cache_bytes"]
    index_build_memory: ByteSize = _search_fields()["index_build_memory"]


class _Retry(Exception):
    """A concurrent writer created the same key first; run the transaction again."""


def _is_deadlock(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", exc), "sqlstate", None) == "40P01"


@contextmanager
def _retry_deadlock() -> Iterator[None]:
    """Turn PostgreSQL's "deadlock detected" into :class:`_Retry` (the transaction was
    rolled back).  A new key's write takes the agent's counter before the row, other
    writes after it, so a delete and a re-creation of one key at once may deadlock."""
    try:
        yield
    except Exception as exc:
        if _is_deadlock(exc):
            raise _Retry() from exc
        raise


def _entry(row: Any) -> MemoryEntry:
    return MemoryEntry(
        agent_id=row.agent_id,
        key=row.key,
        value=json.loads(row.value),
        tags=tuple(json.loads(row.tags)),
        importance=row.importance,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        version=row.version,
    )


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _entry_row(row: Sequence[Any]) -> MemoryEntry:
    """An entry from a plain tuple in ``_FULL`` column order."""
    return MemoryEntry(
        agent_id=row[1], key=row[2], value=json.loads(row[3]), tags=tuple(json.loads(row[4])),
        importance=row[5], created_at=row[6], updated_at=row[7], expires_at=row[8],
        version=row[9],
    )


@attrs.define
class _Columns:
    """Ranking columns of one agent's entries (or all), valid for one database version."""

    version: tuple[int, int]
    ids: Any
    agent_ids: Any
    keys: Any
    importance: Any
    updated_at: Any
    expires_at: Any
    dims: Any
    blobs: list[bytes | None]
    models: list[str | None]
    matrices: dict[tuple[int, str | None], Any] = attrs.Factory(dict)

    @classmethod
    def build(cls, rows: list[Any], version: tuple[int, int]) -> _Columns:
        n = len(rows)
        return cls(
            version=version,
            ids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
            agent_ids=np.array([r[1] for r in rows], dtype=object),
            keys=np.array([r[2] for r in rows], dtype=object),
            importance=np.fromiter((r[3] for r in rows), dtype=np.float64, count=n),
            updated_at=np.fromiter((r[4] for r in rows), dtype=np.float64, count=n),
            expires_at=np.fromiter((np.inf if r[5] is None else r[5] for r in rows),
                                   dtype=np.float64, count=n),
            dims=np.fromiter((r[6] or 0 for r in rows), dtype=np.int64, count=n),
            blobs=[r[7] for r in rows],
            models=[r[8] for r in rows],
        )

    def matrix(self, dim: int, model: str | None) -> Any:
        found = self.matrices.get((dim, model))
        if found is None:
            n = len(self.ids)
            good = (self.dims == dim) & np.fromiter(
                (model is None or m is None or m == model for m in self.models),
                dtype=bool, count=n)
            if n and bool(good.all()) and self.blobs:
                found = np.frombuffer(b"".join(self.blobs), dtype=np.float32).reshape(n, dim)
                self.blobs = []  # every row is in the matrix now; the rest would be zero
            elif n and not self.blobs:
                # Every row went into one full matrix before (all of one size).
                full = next(iter(self.matrices.values()))
                found = np.zeros((n, dim), dtype=np.float32)
                if full.shape[1] == dim:
                    found[good] = full[good]
            else:
                found = np.zeros((n, dim), dtype=np.float32)
                for i in np.flatnonzero(good):
                    found[i] = np.frombuffer(self.blobs[i], dtype=np.float32)
            self.matrices[(dim, model)] = found
        return found


class SqlStore(PgSearch):
    """Memory entries in SQL tables (see the module docstring)."""

    def __init__(self, config: SqliteStoreConfig | PostgresStoreConfig | None = None) -> None:
        self.config = config or SqliteStoreConfig()
        self.url = sa.engine.make_url(self.config.url)
        self.dialect = self.url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"memory.sqlite.url: supported databases are sqlite and postgresql, "
                f"got {self.dialect!r} ({self.config.url!r})")
        self._pg = self.dialect == "postgresql"
        self._psycopg = self._pg and self.url.get_driver_name() == "psycopg"
        p = self.config.table_prefix
        self.t_entries, self.t_tags = f"{p}entries", f"{p}tags"
        self.t_history, self.t_counts, self.t_fts = f"{p}history", f"{p}counts", f"{p}fts"
        self._coll = ' COLLATE "C"' if self._pg else ""
        self._lock_row = " FOR UPDATE" if self._pg else ""
        self._engine: sa.Engine | None = None
        self._writer: sa.Engine | None = None
        self._open_lock = threading.Lock()
        self._driver_sql: dict[str, str] = {}
        self._reader: Any = None  # SQLite: one connection for reads in place
        self._read_engine: sa.Engine | None = None  # PostgreSQL: autocommit reads
        self._fast: Any = None  # SQLite: a writer connection that never waits for the lock
        self._fast_lock = threading.Lock()
        # Re-entrant: an in-place read holds it around several statements.  Code on the
        # event loop only ever *tries* it (``_in_place``); threads may wait for it.
        self._reader_lock = threading.RLock()
        self._cache: OrderedDict[str | None, _Columns] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._writes = 0
        # PostgreSQL semantic search (see pg_search): the path, its cache, its indexes.
        self._vec = False
        self.vector_path = "sqlite-cache" if not self._pg else "cache"
        self.search_paths: Counter[str] = Counter()
        self._agents = VectorCache(self.config.cache_entries,
                                   getattr(self.config, "cache_bytes", 256 * MiB))
        self._sizes = AgentSizes()  # pgvector: which agents the index answers
        self._warmers: dict[str, threading.Thread] = {}  # pgvector: filling agents' caches
        self._warm_lock = threading.Lock()
        self._closing = False
        self._indexed: set[int] = set()
        self._loop_reader: LoopReader | None = None  # PostgreSQL reads on the event loop
        self._bulk_loads = 0  # open bulk_load() blocks
        self._deferred: set[int] = set()  # vector sizes whose index waits for their end

    async def describe(self) -> dict[str, Any]:
        """Which database and semantic-search path this store uses, for ``doctor`` and
        ``config show`` (a PostgreSQL store connects; a SQLite file is not created)."""
        if not self._pg:
            return {"database": self.dialect,
                    "url": self.url.render_as_string(hide_password=True),
                    "vector_search": self.vector_path, "cache_entries": self.config.cache_entries}
        await self.open()
        out: dict[str, Any] = {"database": self.dialect,
                               "url": self.url.render_as_string(hide_password=True),
                               "vector_search": self.vector_path}
        if self.vector_path == "pgvector":
            out["vector_index"] = getattr(self.config, "vector_index", "hnsw")
            out["index_min_entries"] = self.config.index_min_entries
            out["index_min_share"] = self.config.index_min_share
        out["cache_entries"] = self._agents.max_entries
        out["cache_bytes"] = self._agents.max_bytes
        return out

    # --- connections ------------------------------------------------------------------------

    def _make_engine(self, **options: Any) -> sa.Engine:
        cfg = self.config
        if self._pg:
            options.setdefault("pool_pre_ping", True)
            try:
                engine = sa.create_engine(self.url, echo=cfg.echo, pool_size=cfg.pool_size,
                                          **options)
            except ImportError as exc:  # SQLAlchemy imports the driver here
                raise self._driver_missing(exc) from None
            if self._psycopg:
                @event.listens_for(engine, "connect")
                def _vector_param(dbapi_conn: Any, _record: Any) -> None:
                    register_vector_param(dbapi_conn)
            return engine
        if self.url.database in (None, "", ":memory:"):
            raise ConfigError(
                "memory.sqlite.url: an in-memory SQLite database is not persistent; use the "
                "'memory' store, or a file: sqlite:///memory.db")
        engine = sa.create_engine(self.url, echo=cfg.echo,
                                  connect_args={"timeout": cfg.busy_timeout_ms / 1000})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(cfg.busy_timeout_ms)}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute(f"PRAGMA synchronous = {cfg.synchronous.upper()}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            write = conn.get_execution_options().get("neuroflow_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        assert self._writer is not None, "store not opened"
        try:
            with self._writer.begin() as conn:
                yield conn
        finally:
            self._writes += 1

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        assert self._engine is not None, "store not opened"
        with self._engine.begin() as conn:
            yield conn

    def _driver(self, sql: str) -> str:
        """SQL written with ``:name`` parameters in the driver's own style (cached)."""
        driver_sql = self._driver_sql.get(sql)
        if driver_sql is None:
            driver_sql = _PARAM.sub(r"%(\1)s", sql.replace("%", "%%")) if self._pg else sql
            self._driver_sql[sql] = driver_sql
        return driver_sql

    def _exec(self, conn: sa.Connection, sql: str, params: Any = None) -> Any:
        """Run SQL written with ``:name`` parameters straight on the driver (no compiling)."""
        return conn.exec_driver_sql(self._driver(sql), params if params is not None else {})

    async def _fetch(self, sql: str, params: dict[str, Any], in_place: bool = True
                     ) -> list[Any]:
        """Rows of one read-only statement (``:name`` parameters): on the event loop when
        it can (PostgreSQL under asyncio, see :mod:`.loop_reads`; SQLite in place when
        the reader is free and ``in_place``: for reads known to be small), else in a
        thread."""
        if self._engine is None:
            await self.open()
        if self._reader is not None and in_place:  # SQLite (WAL: never waits)
            found = self._in_place(self._reader_rows, sql, params)
            if found is not None:
                return found
        reader = self._loop_reader
        if reader is not None:
            import psycopg

            try:
                rows = await reader.rows(self._driver(sql), params)
            except psycopg.Error as exc:
                raise MemoryStoreError(
                    f"memory store {self.dialect} "
                    f"({self.url.render_as_string(hide_password=True)}): "
                    f"{type(exc).__name__}: {exc}") from exc
            if rows is not None:
                return rows
        return await self._run(self._rows, sql, params)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._engine is None:
            await self.open()
        engine = self._engine
        dbapi_error: Any = engine.dialect.loaded_dbapi.Error if engine is not None \
            else sa.exc.SQLAlchemyError
        try:
            for attempt in range(5):
                try:
                    return await anyio.to_thread.run_sync(fn, *args)
                except (sa.exc.SQLAlchemyError, dbapi_error) as exc:
                    # Rolled back as a deadlock victim (see _retry_deadlock): run it again.
                    if not _is_deadlock(exc) or attempt == 4:
                        raise
            raise AssertionError("unreachable")
        except (sa.exc.SQLAlchemyError, dbapi_error, UnicodeError) as exc:
            # Raw DB-API errors come from the cursor-level fast paths; never let them out.
            raise MemoryStoreError(
                f"memory store {self.dialect} ({self.url.render_as_string(hide_password=True)})"
                f": {type(exc).__name__}: {exc}") from exc

    async def open(self) -> None:
        """Connect and create the tables if they are missing."""
        if self._engine is not None:
            return
        try:
            await anyio.to_thread.run_sync(self._open_sync)
        except sa.exc.SQLAlchemyError as exc:
            raise MemoryStoreError(
                f"memory store {self.dialect}: cannot open "
                f"{self.url.render_as_string(hide_password=True)}: {exc}") from exc

    def _open_sync(self) -> None:
        with self._open_lock:
            if self._engine is not None:
                return
            engine = self._make_engine()
            try:
                self._create_schema(engine)
            except Exception:
                engine.dispose()
                raise
            self._writer = engine.execution_options(neuroflow_write=True)
            with self._warm_lock:
                self._closing = False  # reopened after aclose: fill caches again
            if self._pg:
                try:
                    self._setup_vectors(engine)
                except Exception:
                    engine.dispose()
                    raise
                # Reads outside transactions: no BEGIN/ROLLBACK round trips.
                self._read_engine = self._make_engine(isolation_level="AUTOCOMMIT",
                                                     pool_pre_ping=False)
                if self._vec:
                    settings = self._session_settings()

                    @event.listens_for(self._read_engine, "connect")
                    def _search_settings(dbapi_conn: Any, _record: Any) -> None:
                        for statement in settings:
                            try:
                                dbapi_conn.execute(statement)
                            except Exception as exc:  # noqa: BLE001 - older pgvector
                                log.debug("memory: %s: %s", statement, exc)
                        if not dbapi_conn.autocommit:
                            dbapi_conn.commit()
                if self._psycopg:
                    args = self._read_engine.dialect.create_connect_args(self.url)[1]
                    self._loop_reader = LoopReader(
                        args, self._session_settings() if self._vec else [],
                        setup=register_vector_param)
            else:
                self._reader = engine.raw_connection()
                self._fast = engine.raw_connection()
                self._fast.cursor().execute("PRAGMA busy_timeout = 0")
            self._engine = engine

    def _driver_missing(self, exc: ImportError) -> MissingPluginError:
        """One line for a PostgreSQL URL whose driver module cannot be imported."""
        section = ("memory.postgres" if isinstance(self.config, PostgresStoreConfig)
                   else "memory.sqlite")
        module = (exc.name or "psycopg").partition(".")[0]
        hint = "pip install 'neuroflow[postgres]'"
        if module != "psycopg":
            hint += " (it brings psycopg: write the URL as postgresql+psycopg://...)"
        return MissingPluginError(
            f"{section}: the PostgreSQL driver {module!r} is not installed; {hint}")

    def _create_schema(self, engine: sa.Engine) -> None:
        e, t, h, c = self.t_entries, self.t_tags, self.t_history, self.t_counts
        pk = "BIGSERIAL PRIMARY KEY" if self._pg else "INTEGER PRIMARY KEY"
        real = "DOUBLE PRECISION" if self._pg else "REAL"
        blob = "BYTEA" if self._pg else "BLOB"
        statements = [
            f"""CREATE TABLE IF NOT EXISTS {e} (
                id {pk}, agent_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                tags TEXT NOT NULL, importance {real} NOT NULL, created_at {real} NOT NULL,
                updated_at {real} NOT NULL, expires_at {real}, version INTEGER NOT NULL,
                words TEXT NOT NULL, embedding {blob}, dim INTEGER, model TEXT,
                UNIQUE (agent_id, key))""",
            f"CREATE INDEX IF NOT EXISTS {e}_imp ON {e} (agent_id, importance)",
            f"CREATE INDEX IF NOT EXISTS {e}_upd ON {e} (agent_id, updated_at)",
            f"CREATE INDEX IF NOT EXISTS {e}_exp ON {e} (expires_at)",
            f"""CREATE TABLE IF NOT EXISTS {t} (
                entry_id BIGINT NOT NULL, agent_id TEXT NOT NULL, tag TEXT NOT NULL,
                PRIMARY KEY (entry_id, tag))""",
            f"CREATE INDEX IF NOT EXISTS {t}_tag ON {t} (tag, agent_id)",
            f"""CREATE TABLE IF NOT EXISTS {h} (
                seq {pk}, agent_id TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
                op TEXT NOT NULL, at {real} NOT NULL, value TEXT, tags TEXT NOT NULL,
                importance {real}, expires_at {real})""",
            f"CREATE INDEX IF NOT EXISTS {h}_key ON {h} (agent_id, key, seq)",
            f"CREATE TABLE IF NOT EXISTS {c} (scope TEXT PRIMARY KEY, n BIGINT NOT NULL)",
        ]
        if self._pg:
            statements += [
                f"ALTER TABLE {e} ADD COLUMN IF NOT EXISTS tsv tsvector GENERATED ALWAYS AS "
                f"(to_tsvector('simple', left(words, {_TSV_CHARS}))) STORED",
                f"CREATE INDEX IF NOT EXISTS {e}_tsv ON {e} USING GIN (tsv)",
                # No pending list: with one, every keyword search scans all entries
                # written since the last vacuum (milliseconds after a bulk import).
                f"ALTER INDEX {e}_tsv SET (fastupdate = off)",
                # Tables made before the embedder's name was kept with each vector.
                f"ALTER TABLE {e} ADD COLUMN IF NOT EXISTS model TEXT",
                f"CREATE INDEX IF NOT EXISTS {e}_model_v ON {e} (id) WHERE false",
                # Per-agent change counters, for the incremental search cache.
                f"ALTER TABLE {e} ADD COLUMN IF NOT EXISTS seq BIGINT NOT NULL DEFAULT 0",
                f"ALTER TABLE {c} ADD COLUMN IF NOT EXISTS changes BIGINT NOT NULL DEFAULT 0",
                f"ALTER TABLE {c} ADD COLUMN IF NOT EXISTS deletes BIGINT NOT NULL DEFAULT 0",
                f"CREATE INDEX IF NOT EXISTS {e}_seq ON {e} (agent_id, seq)",
            ]
        else:
            statements.append(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {self.t_fts} USING fts5("
                "words, agent, tokenize = 'unicode61 remove_diacritics 0')")
        if self._pg:
            # DDL takes table locks even when the object exists, which can deadlock with
            # other processes' writes: skip it when the schema is complete (its last
            # object exists), and serialise creation across processes.
            done = f"SELECT to_regclass('{e}_seq') IS NOT NULL"
            with engine.begin() as conn:
                if conn.exec_driver_sql(done).scalar():
                    return
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7311090411)")
                if conn.exec_driver_sql(done).scalar():
                    return
                for sql in statements:
                    conn.exec_driver_sql(sql)
        else:
            with engine.execution_options(neuroflow_write=True).begin() as conn:
                for sql in statements:
                    conn.exec_driver_sql(sql)
                have = {r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({e})")}
                if "model" not in have:  # made before the embedder's name was kept
                    conn.exec_driver_sql(f"ALTER TABLE {e} ADD COLUMN model TEXT")
                # Per-agent change counters, for the incremental search cache (as above).
                if "seq" not in have:
                    conn.exec_driver_sql(
                        f"ALTER TABLE {e} ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")
                counted = {r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({c})")}
                for column in ("changes", "deletes"):
                    if column not in counted:
                        conn.exec_driver_sql(
                            f"ALTER TABLE {c} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
                conn.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS {e}_seq ON {e} (agent_id, seq)")

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await anyio.to_thread.run_sync(self._stop_warming)
        with self._reader_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        with self._fast_lock:
            fast, self._fast = self._fast, None
        if fast is not None:
            fast.cursor().execute(f"PRAGMA busy_timeout = {int(self.config.busy_timeout_ms)}")
            fast.close()
        with self._cache_lock:
            self._cache.clear()
        self._agents.clear()
        loop_reader, self._loop_reader = self._loop_reader, None
        if loop_reader is not None:
            loop_reader.close()
        read_engine, self._read_engine = self._read_engine, None
        if read_engine is not None:
            await anyio.to_thread.run_sync(read_engine.dispose)
        engine, self._engine, self._writer = self._engine, None, None
        if engine is not None:
            await anyio.to_thread.run_sync(engine.dispose)

    # --- helpers --------------------------------------------------------------------------------

    def _count(self, conn: sa.Connection, deltas: dict[str, int]) -> None:
        """Add ``deltas`` (removals) to the live counts, and count the change and the
        deletion (the search cache reads them)."""
        c = self.t_counts
        sql = sa.text(
            f"INSERT INTO {c} (scope, n, changes, deletes) VALUES (:s, :d, 1, 1) "
            f"ON CONFLICT (scope) DO UPDATE SET n = {c}.n + excluded.n, "
            f"changes = {c}.changes + 1, deletes = {c}.deletes + 1")
        for scope, delta in sorted(deltas.items()):
            if delta:
                conn.execute(sql, {"s": scope, "d": delta})

    def _history(self, conn: sa.Connection, records: list[dict[str, Any]]) -> None:
        if records:
            self._exec(conn,
                f"INSERT INTO {self.t_history} (agent_id, key, version, op, at, value, tags, "
                "importance, expires_at) VALUES (:agent_id, :key, :version, :op, :at, :value, "
                ":tags, :importance, :expires_at)", records)

    def _remove_rows(
        self, conn: sa.Connection, rows: Sequence[Any], op: str, now: float, keep: bool
    ) -> int:
        """Delete full rows (as selected with ``_FULL``), recording history and counts."""
        if not rows:
            return 0
        ids = [row.id for row in rows]
        for part in _chunks(ids):
            params = {"ids": list(part)}
            for table, column in ((self.t_entries, "id"), (self.t_tags, "entry_id"),
                                  *(() if self._pg else ((self.t_fts, "rowid"),))):
                stmt = sa.text(f"DELETE FROM {table} WHERE {column} IN :ids")
                conn.execute(stmt.bindparams(sa.bindparam("ids", expanding=True)), params)
        deltas: dict[str, int] = {"": -len(rows)}
        for row in rows:
            deltas[row.agent_id] = deltas.get(row.agent_id, 0) - 1
        self._count(conn, deltas)
        if keep:
            self._history(conn, [
                {"agent_id": r.agent_id, "key": r.key, "version": r.version, "op": op,
                 "at": now, "value": r.value, "tags": r.tags, "importance": r.importance,
                 "expires_at": r.expires_at}
                for r in rows])
        return len(rows)

    def _where(self, query: MemoryQuery, now: float) -> tuple[str, dict[str, Any]]:
        """SQL conditions for a query (all but ``filter``) and their parameters."""
        clauses = ["(expires_at IS NULL OR expires_at > :now)"]
        params: dict[str, Any] = {"now": now}
        if query.agent_id is not None:
            clauses.append("agent_id = :agent_id")
            params["agent_id"] = query.agent_id
        if query.min_importance is not None:
            clauses.append("importance >= :min_importance")
            params["min_importance"] = query.min_importance
        if query.since is not None:
            clauses.append("updated_at >= :since")
            params["since"] = query.since
        if query.until is not None:
            clauses.append("updated_at < :until")
            params["until"] = query.until
        if query.tags:
            agent = " AND agent_id = :agent_id" if query.agent_id is not None else ""
            names = ", ".join(f":tag_{i}" for i in range(len(query.tags)))
            sub = f"SELECT entry_id FROM {self.t_tags} WHERE tag IN ({names}){agent}"
            if query.tag_mode == "all":
                sub += f" GROUP BY entry_id HAVING COUNT(*) = {len(query.tags)}"
            clauses.append(f"id IN ({sub})")
            params.update({f"tag_{i}": tag for i, tag in enumerate(query.tags)})
        return " AND ".join(clauses), params

    def _select(self, columns: str, query: MemoryQuery, now: float, tail: str = ""
                ) -> tuple[str, dict[str, Any]]:
        where, params = self._where(query, now)
        return f"SELECT {columns} FROM {self.t_entries} WHERE {where}{tail}", params

    def _matching(self, conn: sa.Connection, query: MemoryQuery, now: float) -> list[Any]:
        sql, params = self._select(_FULL, query, now)
        rows = self._exec(conn, sql, params).all()
        if query.filter:
            rows = [r for r in rows if matches_filter(query.filter, _entry(r))]
        return rows

    # --- writes -----------------------------------------------------------------------------

    async def put(
        self,
        entry: MemoryEntry,
        *,
        words: str,
        vector: Any,
        expected_version: int | None,
        now: float,
        keep_history: bool,
        embedder: str | None = None,
    ) -> tuple[MemoryEntry, bool]:
        """Create or replace one entry in one transaction (see ``MemoryStore.put``)."""
        blob = dim = None
        if vector is not None:
            arr = np.ascontiguousarray(vector, dtype=np.float32)
            blob, dim = arr.tobytes(), int(arr.shape[0])
        args = (entry, words, blob, dim, expected_version, now, keep_history, embedder)
        if self._pg and dim is not None and self._vec and dim not in self._indexed and \
                dim not in self._deferred:
            await self._run(self._ensure_index, dim)
        if self._fast is not None and len(words) <= OFF_LOOP_BYTES and not is_large(entry.value):
            # A large value's write (JSON, full-text index) goes to a worker thread.
            try:
                done = self._put_in_place(*args)
            except _Retry:
                done = None
            if done is not None:
                await anyio.lowlevel.checkpoint()  # let other tasks run between writes
                return done
        for _ in range(20):
            try:
                return await self._run(self._put_sync, *args)
            except _Retry:
                continue
        raise MemoryStoreError(f"memory {entry.key!r}: could not be written after 20 attempts")

    async def put_many(
        self,
        items: Sequence[tuple[MemoryEntry, str, Any]],
        *,
        now: float,
        keep_history: bool,
        embedder: str | None = None,
    ) -> list[tuple[MemoryEntry, bool]]:
        """Create or replace many ``(entry, words, vector)`` in one transaction."""
        rows = []
        for entry, words, vector in items:
            blob = dim = None
            if vector is not None:
                arr = np.ascontiguousarray(vector, dtype=np.float32)
                blob, dim = arr.tobytes(), int(arr.shape[0])
            rows.append((entry, words, blob, dim))
        if self._pg and self._vec:
            for dim in {d for _, _, _, d in rows if d is not None} - self._indexed - \
                    self._deferred:
                await self._run(self._ensure_index, dim)

        # PostgreSQL writes a batch of distinct keys with a few set-based statements.
        bulk = self._psycopg and len(rows) > 1 and \
            len({(e.agent_id, e.key) for e, _, _, _ in rows}) == len(rows)

        def run() -> list[tuple[MemoryEntry, bool]]:
            with _retry_deadlock(), self._write() as conn:
                cur = conn.connection.cursor()
                try:
                    if bulk:
                        return self._put_many_on(cur, rows, now, keep_history, embedder)
                    return [self._put_on(cur, e, w, b, d, None, now, keep_history, embedder)
                            for e, w, b, d in rows]
                finally:
                    cur.close()

        for _ in range(20):
            try:
                return await self._run(run)
            except _Retry:
                continue
        raise MemoryStoreError("memory batch: could not be written after 20 attempts")

    def _put_many_on(
        self, cur: Any, rows: Sequence[tuple[MemoryEntry, str, bytes | None, int | None]],
        now: float, keep: bool, model: str | None,
    ) -> list[tuple[MemoryEntry, bool]]:
        """PostgreSQL: :meth:`_put_on` for a batch of distinct keys, set-based.

        The same rows, counters, stamps and history as putting them one by one in batch
        order, in eight statements whatever the batch size.  A key another writer
        creates meanwhile makes the batch run again (:class:`_Retry`).
        """
        e, c, sql = self.t_entries, self.t_counts, self._driver
        agents = [r[0].agent_id for r in rows]
        keys = [r[0].key for r in rows]
        cur.execute(sql(
            f"SELECT e.id, e.agent_id, e.key, e.version, e.created_at, e.expires_at FROM {e} e "
            "JOIN unnest(CAST(:a AS text[]), CAST(:k AS text[])) AS t(a, k) "
            "ON e.agent_id = t.a AND e.key = t.k ORDER BY e.id FOR UPDATE OF e"),
            {"a": agents, "k": keys})
        found = {(r[1], r[2]): r for r in cur.fetchall()}
        # Each agent's change counter goes up by its rows; they take the numbers in order.
        per_agent = Counter(agents)
        scopes = sorted(per_agent)
        cur.execute(sql(
            f"INSERT INTO {c} (scope, n, changes) SELECT s, 0, d FROM unnest(CAST(:s AS "
            "text[]), CAST(:d AS bigint[])) AS t(s, d) ORDER BY s ON CONFLICT (scope) DO "
            f"UPDATE SET changes = {c}.changes + excluded.changes RETURNING scope, changes"),
            {"s": scopes, "d": [per_agent[a] for a in scopes]})
        next_seq = {r[0]: r[1] - per_agent[r[0]] + 1 for r in cur.fetchall()}
        out: list[tuple[MemoryEntry, bool]] = []
        new: list[dict[str, Any]] = []
        old: list[dict[str, Any]] = []
        flat: list[Any] = []
        offset = 0
        for (entry, words, blob, dim), agent in zip(rows, agents, strict=True):
            row = found.get((agent, entry.key))
            live = row is not None and (row[5] is None or row[5] > now)
            stored = attrs.evolve(entry, version=(row[3] if live else 0) + 1, updated_at=now,
                                  created_at=row[4] if live else now, score=None, explain=None)
            out.append((stored, not live))
            seq = next_seq[agent]
            next_seq[agent] = seq + 1
            size = 0
            if self._vec and blob is not None:
                flat.append(np.frombuffer(blob, dtype=np.float32))
                size = len(flat[-1])
            item = {"id": None if row is None else row[0], "a": agent, "k": entry.key,
                    "v": json.dumps(stored.value), "tg": json.dumps(list(stored.tags)),
                    "imp": stored.importance, "cr": stored.created_at,
                    "exp": stored.expires_at, "ver": stored.version, "w": words,
                    "emb": blob, "dim": dim, "seq": seq, "off": offset, "len": size,
                    "tags": stored.tags, "live": live, "n": len(out)}
            offset += size
            (new if row is None else old).append(item)
        types = {"a": "text", "k": "text", "v": "text", "tg": "text", "imp": "float8",
                 "cr": "float8", "exp": "float8", "ver": "int", "w": "text", "emb": "bytea",
                 "dim": "int", "seq": "bigint", "off": "int", "len": "int"}

        def source(*names: str, ordinality: bool = False) -> str:
            """Rows from parallel arrays: ``unnest(CAST(:a AS text[]), ...) AS t(a, ...)``
            (``WITH ORDINALITY``: a last column ``o`` numbers them)."""
            arrays = ", ".join(f"CAST(:{n} AS {types.get(n, 'bigint')}[])" for n in names)
            if ordinality:
                return f"unnest({arrays}) WITH ORDINALITY AS t({', '.join(names)}, o)"
            return f"unnest({arrays}) AS t({', '.join(names)})"

        def arrays(items: list[dict[str, Any]], *names: str) -> dict[str, list[Any]]:
            return {n: [i[n] for i in items] for n in names}

        params: dict[str, Any] = {"now": now, "model": model}
        vec = ""
        if self._vec:
            params["flat"] = self._vector_param(np.concatenate(flat) if flat else
                                                np.zeros(0, dtype=np.float32))
            vec = ("CASE WHEN t.len > 0 THEN CAST((CAST(:flat AS real[]))[t.off + 1 : "
                   "t.off + t.len] AS vector) END")
        ids: dict[tuple[str, str], int] = {}
        if new:
            cur.execute(sql(
                f"INSERT INTO {e} (agent_id, key, value, tags, importance, created_at, "
                "updated_at, expires_at, version, words, embedding, dim, model, seq"
                f"{', vec' if vec else ''}) SELECT t.a, t.k, t.v, t.tg, t.imp, t.cr, :now, "
                "t.exp, t.ver, t.w, t.emb, t.dim, :model, t.seq"
                f"{', ' + vec if vec else ''} FROM {source(*types)} ON CONFLICT (agent_id, "
                "key) DO NOTHING RETURNING id, agent_id, key"),
                {**params, **arrays(new, *types)})
            ids = {(r[1], r[2]): r[0] for r in cur.fetchall()}
            if len(ids) != len(new):
                raise _Retry()  # another writer created one of these keys first
            for i in new:
                i["id"] = ids[(i["a"], i["k"])]
        if old:
            cur.execute(sql(
                f"UPDATE {e} SET value = t.v, tags = t.tg, importance = t.imp, created_at = "
                "t.cr, updated_at = :now, expires_at = t.exp, version = t.ver, words = t.w, "
                "embedding = t.emb, dim = t.dim, model = :model, seq = t.seq"
                f"{', vec = ' + vec if vec else ''} FROM {source('id', *types)} "
                f"WHERE {e}.id = t.id"),
                {**params, **arrays(old, "id", *types)})
            cur.execute(sql(f"DELETE FROM {self.t_tags} WHERE entry_id = ANY(:ids)"),
                        {"ids": [i["id"] for i in old]})
        every = new + old
        tagged = [(i["id"], i["a"], t) for i in every for t in i["tags"]]
        if tagged:
            cur.execute(sql(
                f"INSERT INTO {self.t_tags} (entry_id, agent_id, tag) SELECT * FROM unnest("
                "CAST(:e AS bigint[]), CAST(:a AS text[]), CAST(:t AS text[]))"),
                {"e": [x[0] for x in tagged], "a": [x[1] for x in tagged],
                 "t": [x[2] for x in tagged]})
        if new:
            added = Counter(i["a"] for i in new)
            added[""] = len(new)
            counted = sorted(added)
            cur.execute(sql(
                f"INSERT INTO {c} (scope, n) SELECT s, d FROM unnest(CAST(:s AS text[]), "
                "CAST(:d AS bigint[])) AS t(s, d) ORDER BY s ON CONFLICT (scope) DO UPDATE "
                f"SET n = {c}.n + excluded.n"),
                {"s": counted, "d": [added[s] for s in counted]})
        if keep:
            in_order = sorted(every, key=lambda i: i["n"])
            for i in in_order:
                i["op"] = "update" if i["live"] else "create"
            types["op"] = "text"
            cur.execute(sql(
                f"INSERT INTO {self.t_history} (agent_id, key, version, op, at, value, tags, "
                "importance, expires_at) SELECT t.a, t.k, t.ver, t.op, :now, t.v, t.tg, "
                f"t.imp, t.exp FROM "
                f"{source('a', 'k', 'ver', 'op', 'v', 'tg', 'imp', 'exp', ordinality=True)} "
                "ORDER BY t.o"),
                {"now": now, **arrays(in_order, "a", "k", "ver", "op", "v", "tg", "imp",
                                      "exp")})
        return out

    def _put_sync(
        self,
        entry: MemoryEntry,
        words: str,
        blob: bytes | None,
        dim: int | None,
        expected: int | None,
        now: float,
        keep: bool,
        model: str | None = None,
    ) -> tuple[MemoryEntry, bool]:
        # Plain DB-API cursor calls inside SQLAlchemy's transaction (no statement compiling).
        with _retry_deadlock(), self._write() as conn:
            cur = conn.connection.cursor()
            try:
                return self._put_on(cur, entry, words, blob, dim, expected, now, keep, model)
            finally:
                cur.close()

    def _put_in_place(self, *args: Any) -> tuple[MemoryEntry, bool] | None:
        """SQLite: write without a thread hop if the write lock is free right now.

        Returns ``None`` (nothing written) when another writer holds the lock or another
        thread uses the in-place connection; the caller then waits in a worker thread.
        """
        import sqlite3

        if self._fast is None or not self._fast_lock.acquire(blocking=False):
            return None
        try:
            cur = self._fast.cursor()
            try:
                try:
                    cur.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError:
                    return None  # busy: another writer
                try:
                    result = self._put_on(cur, *args)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                self._writes += 1
                return result
            finally:
                cur.close()
        except sqlite3.Error as exc:
            raise MemoryStoreError(f"memory store sqlite ({self.url.database}): {exc}") from exc
        finally:
            self._fast_lock.release()

    def _put_on(
        self,
        cur: Any,
        entry: MemoryEntry,
        words: str,
        blob: bytes | None,
        dim: int | None,
        expected: int | None,
        now: float,
        keep: bool,
        model: str | None = None,
    ) -> tuple[MemoryEntry, bool]:
        """The statements of one ``put``, on a DB-API cursor inside a write transaction."""
        e, sql = self.t_entries, self._driver
        cur.execute(sql(
            f"SELECT id, version, created_at, expires_at FROM {e} "
            f"WHERE agent_id = :a AND key = :k{self._lock_row}"),
            {"a": entry.agent_id, "k": entry.key})
        row = cur.fetchone()
        live = row is not None and (row[3] is None or row[3] > now)
        current = row[1] if live else 0
        if expected is not None and expected != current:
            raise MemoryConflictError(entry.agent_id, entry.key, expected, current)
        stored = attrs.evolve(entry, version=current + 1, updated_at=now,
                              created_at=row[2] if live else now,
                              score=None, explain=None)
        value, tags = json.dumps(stored.value), json.dumps(list(stored.tags))
        params = {
            "a": stored.agent_id, "k": stored.key, "value": value, "tags": tags,
            "imp": stored.importance, "created": stored.created_at, "updated": now,
            "exp": stored.expires_at, "version": stored.version, "words": words,
            "emb": blob, "dim": dim, "model": model,
        }
        # Stamp the row with the agent's next change number, taken under the lock of the
        # agent's counts row (SQLite: the database's; held to commit, so stamps commit in
        # order): the search cache fetches what changed by it.
        c = self.t_counts
        cur.execute(sql(
            f"INSERT INTO {c} (scope, n, changes) VALUES (:a, 0, 1) ON CONFLICT (scope) "
            f"DO UPDATE SET changes = {c}.changes + 1 RETURNING changes"),
            {"a": stored.agent_id})
        params["seq"] = cur.fetchone()[0]
        vec = ""
        if self._vec:
            vec = ", vec = CAST(:vec AS vector)"
            params["vec"] = self._vector_param(np.frombuffer(blob, dtype=np.float32)) \
                if blob is not None else None
        if row is None:
            cur.execute(sql(
                f"INSERT INTO {e} (agent_id, key, value, tags, importance, created_at, "
                f"updated_at, expires_at, version, words, embedding, dim, model"
                f"{', vec' if vec else ''}, seq) VALUES (:a, "
                ":k, :value, :tags, :imp, :created, :updated, :exp, :version, :words, "
                f":emb, :dim, :model{', CAST(:vec AS vector)' if vec else ''}, :seq) "
                "ON CONFLICT (agent_id, key) DO NOTHING RETURNING id"),
                params)
            new = cur.fetchone()
            if new is None:
                raise _Retry()
            entry_id = new[0]
            cur.executemany(sql(
                f"INSERT INTO {self.t_counts} (scope, n) VALUES (:s, 1) ON CONFLICT "
                f"(scope) DO UPDATE SET n = {self.t_counts}.n + 1"),
                [{"s": ""}, {"s": stored.agent_id}])
        else:
            entry_id = row[0]
            cur.execute(sql(
                f"UPDATE {e} SET value = :value, tags = :tags, importance = :imp, "
                "created_at = :created, updated_at = :updated, expires_at = :exp, "
                "version = :version, words = :words, embedding = :emb, dim = :dim, "
                f"model = :model{vec}, seq = :seq "
                "WHERE id = :id"), {**params, "id": entry_id})
            cur.execute(sql(f"DELETE FROM {self.t_tags} WHERE entry_id = :id"),
                        {"id": entry_id})
            if not self._pg:
                cur.execute(sql(f"DELETE FROM {self.t_fts} WHERE rowid = :id"),
                            {"id": entry_id})
        if stored.tags:
            cur.executemany(sql(
                f"INSERT INTO {self.t_tags} (entry_id, agent_id, tag) "
                "VALUES (:id, :a, :t)"),
                [{"id": entry_id, "a": stored.agent_id, "t": t} for t in stored.tags])
        if not self._pg:
            cur.execute(sql(
                f"INSERT INTO {self.t_fts} (rowid, words, agent) VALUES (:id, :w, :a)"),
                {"id": entry_id, "w": words, "a": stored.agent_id})
        if keep:
            cur.execute(sql(
                f"INSERT INTO {self.t_history} (agent_id, key, version, op, at, value, "
                "tags, importance, expires_at) VALUES (:a, :k, :version, :op, :at, "
                ":value, :tags, :imp, :exp)"),
                {**params, "op": "update" if live else "create", "at": now})
        return stored, not live

    async def delete(self, agent_id: str, key: str, *, now: float, keep_history: bool) -> bool:
        """Delete one entry; an expired one is removed but reported as not deleted."""
        return await self._run(self._delete_sync, agent_id, key, now, keep_history)

    def _delete_sync(self, agent_id: str, key: str, now: float, keep: bool) -> bool:
        with self._write() as conn:
            row = self._exec(conn,
                f"SELECT {_FULL} FROM {self.t_entries} WHERE agent_id = :a AND key = :k"
                f"{self._lock_row}", {"a": agent_id, "k": key}).first()
            if row is None:
                return False
            live = row.expires_at is None or row.expires_at > now
            self._remove_rows(conn, [row], "delete" if live else "expire", now, keep)
            return live

    async def delete_where(self, query: MemoryQuery, *, now: float, keep_history: bool) -> int:
        """Delete every live entry matching ``query``."""
        def run() -> int:
            with self._write() as conn:
                return self._remove_rows(conn, self._matching(conn, query, now), "delete", now,
                                         keep_history)
        return await self._run(run)

    async def sweep_expired(self, *, now: float, keep_history: bool) -> int:
        """Delete every expired entry."""
        def run() -> int:
            with self._write() as conn:
                rows = self._exec(conn,
                    f"SELECT {_FULL} FROM {self.t_entries} WHERE expires_at <= :now",
                    {"now": now}).all()
                return self._remove_rows(conn, rows, "expire", now, keep_history)
        return await self._run(run)

    async def evict(
        self, agent_id: str | None, max_entries: int, *, now: float, keep_history: bool
    ) -> int:
        """Evict the lowest-importance, then oldest, entries beyond ``max_entries``."""
        scope = agent_id if agent_id is not None else ""
        if self._reader is not None:
            counted = self._in_place(self._reader_rows,
                                     f"SELECT n FROM {self.t_counts} WHERE scope = :s",
                                     {"s": scope})
            if counted is not None and (not counted or counted[0][0] <= max_entries):
                return 0

        def run() -> int:
            with self._read() as conn:
                n = self._exec(conn, f"SELECT n FROM {self.t_counts} WHERE scope = :s",
                                 {"s": scope}).scalar()
            if n is None or n <= max_entries:
                return 0
            with self._write() as conn:
                n = self._exec(conn, f"SELECT n FROM {self.t_counts} WHERE scope = :s",
                                 {"s": scope}).scalar() or 0
                if n <= max_entries:
                    return 0
                # Expired entries do not count: remove them before choosing victims.
                mine = "agent_id = :a AND " if agent_id is not None else ""
                expired = self._exec(conn,
                    f"SELECT {_FULL} FROM {self.t_entries} WHERE {mine}expires_at <= :now"
                    f"{self._lock_row}", {"a": agent_id, "now": now}).all()
                n -= self._remove_rows(conn, expired, "expire", now, keep_history)
                if n <= max_entries:
                    return 0
                where = "WHERE agent_id = :a " if agent_id is not None else ""
                rows = self._exec(conn,
                    f"SELECT {_FULL} FROM {self.t_entries} {where}ORDER BY importance, "
                    f"updated_at, agent_id{self._coll}, key{self._coll} LIMIT :n"
                    f"{self._lock_row}", {"a": agent_id, "n": n - max_entries}).all()
                return self._remove_rows(conn, rows, "evict", now, keep_history)
        return await self._run(run)

    # --- reads -------------------------------------------------------------------------------

    async def get(self, agent_id: str, key: str, *, now: float) -> MemoryEntry | None:
        """Return the live entry or ``None``."""
        sql = (f"SELECT {_FULL} FROM {self.t_entries} WHERE agent_id = :a AND key = :k "
               "AND (expires_at IS NULL OR expires_at > :now)")
        params = {"a": agent_id, "k": key, "now": now}
        # A WAL reader never waits for writers: a point read is done in place, unless a
        # worker thread is using the reader connection right now.
        if self._pg:
            rows = await self._fetch(sql, params)
            return _entry_row(rows[0]) if rows else None
        rows = self._in_place(self._reader_rows, sql, params) if self._reader is not None \
            else None
        if rows is None:
            rows = await self._run(self._rows, sql, params)
        return _entry_row(rows[0]) if rows else None

    async def get_many(self, refs: Sequence[Any]) -> list[MemoryEntry | None]:
        """Resolve refs from :meth:`candidates` / :meth:`nearest`, in order.

        A row id is read now (``None``: deleted since).  A :class:`RowRef` (pgvector)
        carries the row its search read, a :class:`CachedRef` (the per-agent cache) the
        columns it was ranked from: each gives that entry, read in the same snapshot as
        the candidates, unless this store has written anything since the search began;
        then (and for a cached value too long to keep) the entry is read now by its agent
        and key, so a winner deleted meanwhile is reported gone and one deleted and stored
        again is found.  Other processes' writes in that window are ordered after the
        search.
        """
        out: list[MemoryEntry | None] = [None] * len(refs)
        by_key: dict[tuple[str, str], list[int]] = {}
        by_id: dict[int, list[int]] = {}
        for i, r in enumerate(refs):
            if isinstance(r, (RowRef, CachedRef)):
                if r.epoch == self._writes:
                    out[i] = r.entry()
                if out[i] is None:
                    by_key.setdefault(r.agent_key(), []).append(i)
            else:
                by_id.setdefault(int(r), []).append(i)
        if by_key:
            if self._pg:
                sql = (f"SELECT {_FULL} FROM {self.t_entries} e JOIN unnest(CAST(:a AS "
                       "text[]), CAST(:k AS text[])) AS t(a, k) ON e.agent_id = t.a AND "
                       "e.key = t.k")
                params: dict[str, Any] = {"a": [a for a, _ in by_key],
                                          "k": [k for _, k in by_key]}
                rows = await self._fetch(sql, params)
            else:
                rows = []
                # One condition per key, a few hundred a statement (SQLite parses a chain
                # of ORs as a tree at most 1 000 deep).
                for part in _chunks(list(by_key), 200):
                    sql = f"SELECT {_FULL} FROM {self.t_entries} WHERE " + " OR ".join(
                        f"(agent_id = :a{n} AND key = :k{n})" for n in range(len(part)))
                    params = {}
                    for n, (a, k) in enumerate(part):
                        params[f"a{n}"], params[f"k{n}"] = a, k
                    rows += await self._fetch(sql, params)
            for row in rows:
                for i in by_key.get((row[1], row[2]), ()):
                    out[i] = _entry_row(row)
        if by_id:
            for rid, entry in zip(by_id, await self._by_ids(list(by_id)), strict=True):
                for i in by_id[rid]:
                    out[i] = entry
        return out

    async def _by_ids(self, ids: list[int]) -> list[MemoryEntry | None]:
        """The entries of these row ids now, in order (``None``: no such row)."""
        if self._pg:
            rows = await self._fetch(
                f"SELECT {_FULL} FROM {self.t_entries} WHERE id = ANY(:ids)", {"ids": ids})
            found = {row[0]: _entry_row(row) for row in rows}
            return [found.get(r) for r in ids]

        def fetch(part: Sequence[int]) -> list[Any]:
            names = ", ".join(f":i{n}" for n in range(len(part)))
            sql = f"SELECT {_FULL} FROM {self.t_entries} WHERE id IN ({names})"
            return self._rows(sql, {f"i{n}": i for n, i in enumerate(part)})

        def run() -> list[MemoryEntry | None]:
            found: dict[int, MemoryEntry] = {}
            for part in _chunks(ids):
                for row in fetch(part):
                    found[row[0]] = _entry_row(row)
            return [found.get(r) for r in ids]

        if self._reader is not None and len(ids) <= _CHUNK:
            done = self._in_place(run)
            if done is not None:
                return done
        return await self._run(run)

    async def list(
        self, query: MemoryQuery, *, now: float, limit: int | None, offset: int = 0
    ) -> list[MemoryEntry]:
        """Live matching entries by ``(agent_id, key)``."""
        def run() -> list[MemoryEntry]:
            order = f" ORDER BY agent_id{self._coll}, key{self._coll}"
            if not query.filter:
                page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else (
                    f" LIMIT -1 OFFSET {int(offset)}" if offset and not self._pg
                    else f" OFFSET {int(offset)}" if offset else "")
                order += page
            sql, params = self._select(_FULL, query, now, order)
            with self._read() as conn:
                rows = self._exec(conn, sql, params).all()
            entries = [_entry(r) for r in rows]
            if query.filter:
                entries = [e for e in entries if matches_filter(query.filter, e)]
                entries = entries[offset : None if limit is None else offset + limit]
            return entries
        return await self._run(run)

    async def history(self, agent_id: str, key: str) -> list[HistoryRecord]:
        """Every recorded change of one key, oldest first."""
        def run() -> list[HistoryRecord]:
            with self._read() as conn:
                rows = self._exec(conn,
                    "SELECT agent_id, key, version, op, at, value, tags, importance, expires_at "
                    f"FROM {self.t_history} WHERE agent_id = :a AND key = :k ORDER BY seq",
                    {"a": agent_id, "k": key}).all()
            return [HistoryRecord(r.agent_id, r.key, r.version, r.op, r.at,
                                  None if r.value is None else json.loads(r.value),
                                  tuple(json.loads(r.tags)), r.importance, r.expires_at)
                    for r in rows]
        return await self._run(run)

    async def stats(self, *, now: float) -> dict[str, Any]:
        """Live entries per agent, and expired entries not yet swept."""
        def run() -> dict[str, Any]:
            with self._read() as conn:
                rows = self._exec(conn,
                    f"SELECT agent_id, COUNT(*) AS n FROM {self.t_entries} WHERE expires_at IS "
                    f"NULL OR expires_at > :now GROUP BY agent_id ORDER BY agent_id{self._coll}",
                    {"now": now}).all()
                expired = self._exec(conn,
                    f"SELECT COUNT(*) FROM {self.t_entries} WHERE expires_at <= :now",
                    {"now": now}).scalar() or 0
            agents = {r.agent_id: r.n for r in rows}
            return {"entries": sum(agents.values()), "expired": expired, "agents": agents}
        return await self._run(run)

    # --- search ------------------------------------------------------------------------------

    async def candidates(
        self,
        query: MemoryQuery,
        *,
        now: float,
        words: Sequence[str] | None,
        vector_dim: int | None,
        embedder: str | None = None,
    ) -> Candidates:
        """Live matching entries, column-wise; keyword hits come from the full-text index
        (or, for one agent's search with a vector, from the per-agent cache)."""
        if vector_dim and query.agent_id is not None:
            found = await self._agent_search(query, now, words, vector_dim, embedder)
            if found is not None:
                return found
        if self._reader is not None and vector_dim and not (query.tags or query.filter):
            # Everything needed may be in memory already: rank in place, no thread hop.
            found = self._in_place(self._cached_candidates, query, now, words, vector_dim,
                                   embedder)
            if found is not None:
                await anyio.lowlevel.checkpoint()
                return found
        return await self._run(self._candidates_sync, query, now, words, vector_dim, embedder)

    def _in_place(self, fn: Callable[..., T], *args: Any) -> T | None:
        """Run ``fn`` holding the reader if it is free now, else return ``None`` at once.

        For code on the event loop: it never waits for a worker thread that holds the
        reader (building a column cache, say); the caller then goes to a thread itself.
        """
        if not self._reader_lock.acquire(blocking=False):
            return None
        try:
            return fn(*args)
        finally:
            self._reader_lock.release()

    def _cached_candidates(
        self, query: MemoryQuery, now: float, words: Sequence[str] | None,
        vector_dim: int | None, model: str | None,
    ) -> Candidates | None:
        """Candidates from a fresh column cache, or ``None`` if it is not fresh."""
        if not self._cache_fresh(query.agent_id):
            return None
        return self._candidates_sync(query, now, words, vector_dim, model)

    def _cache_fresh(self, agent_id: str | None) -> bool:
        found = self._cache.get(agent_id)
        if found is None or len(found.ids) > _IN_PLACE_ROWS:
            return False
        version = self._reader_rows("PRAGMA data_version", {})[0][0]
        return found.version == (version, self._writes)

    def _rows(self, sql: str, params: dict[str, Any], binary: bool = False) -> list[Any]:
        """Rows (plain tuples) of one read-only statement, outside any transaction;
        ``binary``: PostgreSQL sends them in binary (bytea costs less to read)."""
        if self._reader is not None:
            return self._reader_rows(sql, params)
        if self._read_engine is None:
            raise MemoryStoreError("memory store is closed")
        error = self._read_engine.dialect.loaded_dbapi.Error
        conn = self._read_engine.raw_connection()
        try:
            cur = conn.cursor()
            try:
                if binary and self._psycopg:
                    cur.execute(self._driver(sql), params, binary=True)
                else:
                    cur.execute(self._driver(sql), params)
                return cur.fetchall()
            finally:
                cur.close()
        except error as exc:
            if getattr(conn.driver_connection, "closed", False):
                conn.invalidate()  # the server went away: do not pool this connection
            raise MemoryStoreError(f"memory store {self.dialect}: {exc}") from exc
        finally:
            conn.close()

    def _keyword_hits(self, query: MemoryQuery, now: float, words: Sequence[str]
                      ) -> dict[int, float]:
        where, params = self._where(query, now)
        if self._pg:
            params["tsq"] = " | ".join(words)
            sql = self.keyword_sql("id, words", where)
        else:
            params["match"] = "words : (" + " OR ".join(f'"{w}"' for w in words) + ")"
            agent = query.agent_id or ""
            # ASCII only: there FTS5's unicode61 tokenizer and ours split words identically.
            agent_words = tokenize(agent) if agent.isascii() else []
            if agent_words:
                # Narrow the hits to the agent inside the index (the join re-checks the id).
                params["match"] = f'agent : "{" ".join(agent_words)}" AND ' + params["match"]
            # CROSS JOIN makes SQLite walk the full-text hits first, then look rows up.
            f = self.t_fts
            sql = (f"SELECT e.id, e.words FROM {f} CROSS JOIN {self.t_entries} e "
                   f"ON e.id = {f}.rowid WHERE {f} MATCH :match AND {where}")
        return {row[0]: coverage(words, row[1]) for row in self._rows(sql, params)}

    def keyword_sql(self, columns: str, where: str) -> str:
        """PostgreSQL: ``columns`` of the entries matching ``:tsq`` and ``where``.

        One plain condition, so the planner can AND the full-text index's bitmap with
        the agent's (``BitmapAnd``): only rows with both are read.  Forcing the
        full-text hits first instead reads every hit of every agent (at 1M entries a
        common word's thousands of rows, ~100 ms for a small agent), and walking the
        agent's rows tests every ``tsvector`` of a large agent; with statistics and no
        GIN pending list (``fastupdate = off``) the planner picks well for both.
        """
        return (f"SELECT {columns} FROM {self.t_entries} WHERE tsv @@ to_tsquery('simple', "
                f":tsq) AND {where}")

    def _candidates_sync(
        self, query: MemoryQuery, now: float, words: Sequence[str] | None,
        vector_dim: int | None, model: str | None = None,
    ) -> Candidates:
        # The cache pays off for embeddings; plain filters are cheaper answered by SQL.
        cache = self._columns(query.agent_id) if self._reader is not None and vector_dim \
            else None
        if cache is not None:
            return self._from_cache(cache, query, now, words, vector_dim, model)
        columns = "id, agent_id, key, importance, updated_at, "
        columns += "embedding, dim, model" if vector_dim else "NULL, NULL, NULL"
        if query.filter:
            columns += ", value, tags, created_at, expires_at, version"
        sql, params = self._select(columns, query, now)
        rows = self._rows(sql, params)
        hits = self._keyword_hits(query, now, words) if words and rows else {}
        if query.filter:
            rows = [r for r in rows if matches_filter(query.filter, MemoryEntry(
                agent_id=r[1], key=r[2], value=json.loads(r[8]), tags=tuple(json.loads(r[9])),
                importance=r[3], created_at=r[10], updated_at=r[4], expires_at=r[11],
                version=r[12]))]
        n = len(rows)
        ids = [r[0] for r in rows]
        vectors = None
        if vector_dim:
            good = [i for i, r in enumerate(rows) if r[6] == vector_dim and (
                model is None or r[7] is None or r[7] == model)]
            if len(good) == n and n:
                vectors = np.frombuffer(b"".join(r[5] for r in rows),
                                        dtype=np.float32).reshape(n, vector_dim)
            else:
                vectors = np.zeros((n, vector_dim), dtype=np.float32)
                for i in good:
                    vectors[i] = np.frombuffer(rows[i][5], dtype=np.float32)
        return Candidates(
            refs=ids,
            agent_ids=[r[1] for r in rows],
            keys=[r[2] for r in rows],
            importance=np.fromiter((r[3] for r in rows), dtype=np.float64, count=n),
            updated_at=np.fromiter((r[4] for r in rows), dtype=np.float64, count=n),
            keyword=np.fromiter((hits.get(i, 0.0) for i in ids), dtype=np.float64, count=n),
            vectors=vectors,
        )

    # --- SQLite column cache ---------------------------------------------------------------

    def _reader_rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        import sqlite3

        with self._reader_lock:
            reader = self._reader
            if reader is None:
                raise MemoryStoreError("memory store is closed")
            cur = reader.cursor()
            try:
                cur.execute(sql, params)
                return cur.fetchall()
            except sqlite3.Error as exc:
                raise MemoryStoreError(f"memory store sqlite ({self.url.database}): {exc}"
                                       ) from exc
            finally:
                cur.close()

    def _columns(self, agent_id: str | None) -> _Columns | None:
        """The agent's (or everyone's) ranking columns, rebuilt after any commit anywhere."""
        limit = self.config.cache_entries
        if limit <= 0:
            return None
        version = self._reader_rows("PRAGMA data_version", {})[0][0]
        with self._cache_lock:
            found = self._cache.get(agent_id)
            if found is not None and found.version == (version, self._writes):
                self._cache.move_to_end(agent_id)
                return found
            writes = self._writes
        where, params = ("WHERE agent_id = :a ", {"a": agent_id}) if agent_id else ("", {})
        count = self._reader_rows(f"SELECT COUNT(*) FROM {self.t_entries} {where}", params)[0][0]
        if count > limit:
            return None
        rows = self._reader_rows(
            "SELECT id, agent_id, key, importance, updated_at, expires_at, dim, embedding, model "
            f"FROM {self.t_entries} {where}ORDER BY id", params)
        built = _Columns.build(rows, (version, writes))
        with self._cache_lock:
            self._cache[agent_id] = built
            while sum(len(c.ids) for c in self._cache.values()) > limit and len(self._cache) > 1:
                self._cache.popitem(last=False)
        return built

    def _from_cache(
        self, c: _Columns, query: MemoryQuery, now: float, words: Sequence[str] | None,
        vector_dim: int | None, model: str | None = None,
    ) -> Candidates:
        mask = c.expires_at > now
        if query.min_importance is not None:
            mask &= c.importance >= query.min_importance
        if query.since is not None:
            mask &= c.updated_at >= query.since
        if query.until is not None:
            mask &= c.updated_at < query.until
        if query.tags or query.filter:
            columns = _FULL if query.filter else "id"
            sql, params = self._select(columns, query, now)
            rows = self._reader_rows(sql, params)
            if query.filter:
                rows = [r for r in rows if matches_filter(query.filter, _entry_row(r))]
            mask &= np.isin(c.ids, np.fromiter((r[0] for r in rows), dtype=np.int64))
        keyword = np.zeros(len(c.ids), dtype=np.float64)
        if words:
            hits = self._keyword_hits(query, now, words)
            if hits:
                hit_ids = np.fromiter(hits, dtype=np.int64, count=len(hits))
                at = np.searchsorted(c.ids, hit_ids)
                ok = (at < len(c.ids)) & (c.ids[np.minimum(at, len(c.ids) - 1)] == hit_ids)
                keyword[at[ok]] = np.fromiter(hits.values(), dtype=np.float64)[ok]
        every = bool(mask.all())
        pos = np.flatnonzero(mask)

        def pick(column: Any) -> Any:
            return column if every else column[pos]

        vectors = c.matrix(vector_dim, model) if vector_dim else None
        return Candidates(refs=pick(c.ids), agent_ids=pick(c.agent_ids), keys=pick(c.keys),
                          importance=pick(c.importance), updated_at=pick(c.updated_at),
                          keyword=pick(keyword), vectors=vectors,
                          vector_rows=None if every or not vector_dim else pos)
