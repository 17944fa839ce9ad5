"""Semantic search on PostgreSQL: pgvector when the server has it, else a per-agent cache.

Mixed into :class:`~neuroflow_memory_sqlite.store.SqlStore`; only its PostgreSQL side
uses it.

* **pgvector**: the entries table gets a ``vec vector`` column (filled on every write, and
  back-filled from the stored embeddings when the column is added), and one partial
  HNSW (or IVFFlat) index per vector size: ``((vec::vector(D)) vector_ip_ops) WHERE dim =
  D``.  :meth:`PgSearch.nearest` asks the index for the nearest candidates under the same
  SQL pre-filters as an exact search (agent, tags, importance, time; iterative index
  scans keep filtered searches complete), adds every keyword hit, and scores them from
  their stored float32 embeddings exactly as an exact search would.  It also returns
  bounds on what the entries left out could score, so the ranker can tell whether the
  candidates decide the top results or it must look further.  One statement
  (:meth:`PgSearch._nearest_sql`) returns the candidates' whole rows, the keyword hits
  and the agent's counts, so the winners need no further query; once the agent's rows
  are in the cache it carries the cache's change counters, and while they equal the
  agent's it returns ids only and everything else comes from the cache.  After a search
  by whole rows a background thread brings the agent's cached rows up to date
  (:meth:`PgSearch._warm`).  An agent whose rows are cached and number fewer than
  ``index_min_entries`` (an exact scan of them is then cheaper than the index query),
  one under ``min(index_min_entries, READ_WHOLE_MAX)`` entries (its rows are cached by
  the search, or read whole if they cannot be), and one under ``index_min_share`` of the
  table that fits the cache take the cache path instead (:meth:`PgSearch._by_index`).
* **cache**: :mod:`neuroflow_memory_sqlite.agent_cache`.  A search reads, in one
  statement, the agent's change counters and (with tags) the ids that pass the SQL
  filters; when the counters equal the cached ones it ranks from the cache, keyword
  scores included (the cache's word index).  Otherwise the same statement with the rows
  written since the cached version (and, after deletes, the agent's ids) brings it up to
  date: on the event loop for a few rows, in a worker thread for more (:class:`Probe`).
  When this store wrote since the agent's rows were read, the first statement already
  carries those parts.

Both stamp rows with a per-agent change counter (``seq``); see the cache module.  Query
vectors are sent as binary ``real[]`` parameters (:class:`Float4Array`), cast to
``vector`` by the server: formatting 384 floats as text costs more than the query.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import anyio
import numpy as np

from neuroflow.errors import MemoryStoreError
from neuroflow.memory import (
    Candidates,
    MemoryEntry,
    MemoryQuery,
    matches_filter,
    similarities,
)
from neuroflow_memory_sqlite.agent_cache import (
    ROW_COLUMNS,
    AgentColumns,
    CachedRefs,
    PickedKeys,
    VectorCache,
)

log = logging.getLogger("neuroflow.memory")

_BACKFILL_CHUNK = 1000
#: With pgvector, an agent whose rows are not cached is searched by index only from this
#: many entries on (or ``index_min_entries`` if smaller): below, filling the cache (or
#: reading the rows whole, for one the cache cannot hold) costs little.
READ_WHOLE_MAX = 2000
_FILTER = ", value, tags, created_at, expires_at, version"
_FLOAT4_OID, _FLOAT4_ARRAY_OID = 700, 1021


def vector_literal(vector: Any) -> str | None:
    """pgvector's text form of a float32 vector (``None`` stays ``None``).

    Each float32 is written with the shortest text that reads back as the same float32.
    """
    if vector is None:
        return None
    arr = np.asarray(vector, dtype=np.float32)
    return "[" + ",".join(np.format_float_positional(x, unique=True, trim="-") for x in arr) \
        + "]"


class Float4Array:
    """A float32 vector as a query parameter: sent as a binary PostgreSQL ``real[]``.

    Register :func:`register_vector_param` on the psycopg connection first; in SQL cast it:
    ``CAST(:q AS vector(384))``.
    """

    __slots__ = ("data",)

    def __init__(self, vector: Any) -> None:
        self.data = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)


def _float4_array_dumper() -> type:
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class Float4ArrayDumper(Dumper):
        """PostgreSQL's binary array format: header, then (length, big-endian float4)."""

        format = Format.BINARY
        oid = _FLOAT4_ARRAY_OID

        def dump(self, obj: Float4Array) -> bytes:
            n = int(obj.data.shape[0])
            if n == 0:
                return struct.pack(">iii", 0, 0, _FLOAT4_OID)
            body = np.empty(n, dtype=[("size", ">i4"), ("value", ">f4")])
            body["size"] = 4
            body["value"] = obj.data
            return struct.pack(">iiiii", 1, 0, _FLOAT4_OID, n, 1) + body.tobytes()

    return Float4ArrayDumper


_DUMPER: list[type] = []


def register_vector_param(conn: Any) -> None:
    """Teach one psycopg connection (sync or async) to send :class:`Float4Array`."""
    if not _DUMPER:
        _DUMPER.append(_float4_array_dumper())
    conn.adapters.register_dumper(Float4Array, _DUMPER[0])


class RowRef:
    """A search candidate whose whole row the search statement already read (see
    ``SqlStore.get_many`` for when that row is used).

    Attributes:
        id: the row id.
        row: ``(agent_id, key, value, tags, importance, created_at, updated_at,
            expires_at, version)``.
        epoch: the store's count of its own writes when the search began.
    """

    __slots__ = ("epoch", "id", "row")

    def __init__(self, rid: int, row: Sequence[Any], epoch: int) -> None:
        self.id, self.row, self.epoch = rid, row, epoch

    def agent_key(self) -> tuple[str, str]:
        """The candidate's agent and key."""
        return self.row[0], self.row[1]

    def entry(self) -> MemoryEntry:
        """The candidate's entry."""
        r = self.row
        return MemoryEntry(agent_id=r[0], key=r[1], value=json.loads(r[2]),
                           tags=tuple(json.loads(r[3])), importance=r[4], created_at=r[5],
                           updated_at=r[6], expires_at=r[7], version=r[8])

    def __int__(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"RowRef({self.id})"


def matched_sql(words: Sequence[str], params: dict[str, Any]) -> str:
    """SQL counting how many of the (distinct) query ``words`` a row's indexed words
    hold: the numerator of :func:`neuroflow.memory.coverage`, counted by the server.

    Indexed and query words are runs of letters and digits (no space, ``%``, ``_`` or
    backslash in them) and the indexed ones are joined by single spaces, so ``' ' || words
    || ' '`` holds ``' w '`` exactly when ``w`` is one of them.
    """
    terms = []
    for i, w in enumerate(words):
        params[f"w{i}"] = f"% {w} %"
        terms.append(f"((' ' || words || ' ') LIKE :w{i})::int")
    return "(" + " + ".join(terms) + ")::bigint" if terms else "0::bigint"


class Probe(NamedTuple):
    """The rows of a cache probe (see :meth:`PgSearch._probe_sql`), by kind."""

    #: The agent's counters: (changes, deletes, entries); zeros without a counts row.
    counters: tuple[int, int, int]
    #: The ids passing the query's SQL filters (with tags only).
    passed: list[int]
    #: The rows written since the cached version (:data:`ROW_COLUMNS`).
    changed: list[Any]
    #: Every id of the agent, when its delete counter moved since the cached version.
    ids: list[int]


def _split_probe(rows: Sequence[Sequence[Any]]) -> Probe:
    """The parts of a cache probe's rows."""
    counters = (0, 0, 0)
    passed: list[int] = []
    changed: list[Any] = []
    ids: list[int] = []
    for r in rows:
        kind = r[0]
        if kind == 0:
            counters = (int(r[1]), int(r[12]), int(r[6]))
        elif kind == 1:
            passed.append(int(r[1]))
        elif kind == 3:
            changed.append(r[1:])
        else:
            ids.append(int(r[1]))
    return Probe(counters, passed, changed, ids)


def _loop_sized(base: AgentColumns, probe: Probe) -> bool:
    """Whether the refresh a capped probe (see :meth:`PgSearch._probe_sql`) against
    ``base`` read is small enough for the event loop: nothing was left out for being too
    much, and the new version will not be compacted (that copies every live row)."""
    changes, deletes, n = probe.counters
    moved = deletes != base.deletes
    if changes - base.changes > LOOP_REFRESH_ROWS or (moved and n > LOOP_REFRESH_IDS):
        return False
    # At most: every changed row replaces a cached one; every cached row not listed goes.
    dying = len(probe.changed) + (max(base.live + len(probe.changed) - len(probe.ids), 0)
                                  if moved else 0)
    return not base.compacts_after(dying)


#: Most changed rows a search brings into the cached columns on the event loop (more go
#: to a worker thread: adding rows takes time).
LOOP_REFRESH_ROWS = 32
#: Most ids (read after a delete) a search drops cached rows by on the event loop.
LOOP_REFRESH_IDS = 4096
#: SQLite: the largest agent whose tagged search lists the ids passing the tags in place.
LOOP_TAGGED_ROWS = 2048


class PgSearch:
    """PostgreSQL's vector search paths (mixed into ``SqlStore``)."""

    # Set by SqlStore.__init__ / open.
    _pg: bool
    _vec: bool
    vector_path: str
    search_paths: Counter[str]
    _agents: VectorCache
    _sizes: AgentSizes
    _warmers: dict[str, threading.Thread]
    _warm_lock: threading.Lock
    _closing: bool
    _indexed: set[int]
    _psycopg: bool
    _bulk_loads: int
    _deferred: set[int]
    _writes: int

    # --- schema -------------------------------------------------------------------------

    def _setup_vectors(self, engine: Any) -> None:
        """Find or add the pgvector column; decide which search path this store uses."""
        cfg: Any = self.config  # type: ignore[attr-defined]
        mode = getattr(cfg, "vector_search", "auto")
        e = self.t_entries  # type: ignore[attr-defined]
        has_column = f"""SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE
            attrelid = to_regclass('{e}') AND attname = 'vec' AND NOT attisdropped)"""
        with engine.begin() as conn:
            self._vec = bool(conn.exec_driver_sql(has_column).scalar())
            available = bool(conn.exec_driver_sql(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions "
                "WHERE name = 'vector')").scalar())
        if not self._vec and mode != "cache" and available:
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7311090412)")
                    conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
                    if not conn.exec_driver_sql(has_column).scalar():
                        conn.exec_driver_sql(f"ALTER TABLE {e} ADD COLUMN vec vector")
                        self._backfill(conn)
                self._vec = True
            except Exception as exc:
                if mode == "pgvector":
                    raise MemoryStoreError(
                        f"memory.postgres.vector_search: 'pgvector', but the extension "
                        f"cannot be set up: {exc}") from exc
                log.warning("memory: pgvector is installed on the server but could not be "
                            "enabled (%s); using the per-agent cache", exc)
        if mode == "pgvector" and not self._vec:
            raise MemoryStoreError(
                "memory.postgres.vector_search: 'pgvector', but the server has no 'vector' "
                "extension (use 'auto' or 'cache', or install pgvector on the server)")
        self.vector_path = "pgvector" if self._vec and mode != "cache" else "cache"

    def _backfill(self, conn: Any) -> None:
        """Fill ``vec`` from the stored float32 embeddings (table made before pgvector)."""
        e = self.t_entries  # type: ignore[attr-defined]
        last = 0
        while True:
            rows = conn.exec_driver_sql(
                f"SELECT id, embedding FROM {e} WHERE id > %(last)s AND embedding IS NOT "
                f"NULL ORDER BY id LIMIT {_BACKFILL_CHUNK}", {"last": last}).all()
            if not rows:
                return
            conn.exec_driver_sql(
                f"UPDATE {e} SET vec = CAST(%(v)s AS vector) WHERE id = %(id)s",
                [{"id": r[0], "v": self._vector_param(np.frombuffer(r[1], dtype=np.float32))}
                 for r in rows])
            last = rows[-1][0]

    def _ensure_index(self, dim: int) -> None:
        """Create the ANN index for vectors of size ``dim`` if it is missing (inside
        :meth:`bulk_load`: note it, to be built when the load ends)."""
        if dim in self._indexed or not self._vec:
            return
        cfg: Any = self.config  # type: ignore[attr-defined]
        e = self.t_entries  # type: ignore[attr-defined]
        name = f"{e}_vec{dim}"
        engine: Any = self._engine  # type: ignore[attr-defined]
        with engine.begin() as conn:
            if not conn.exec_driver_sql(f"SELECT to_regclass('{name}') IS NOT NULL").scalar():
                if self._bulk_loads:
                    self._deferred.add(dim)
                    return
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7311090413)")
                memory = int(getattr(cfg, "index_build_memory", 0)) // 1024
                if memory:
                    conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = {memory}")
                method, ops = getattr(cfg, "vector_index", "hnsw"), "vector_ip_ops"
                options = (f"m = {int(cfg.hnsw_m)}, ef_construction = "
                           f"{int(cfg.hnsw_ef_construction)}" if method == "hnsw"
                           else f"lists = {int(cfg.ivfflat_lists)}")
                conn.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS {name} ON {e} USING {method} "
                    f"((vec::vector({dim})) {ops}) WITH ({options}) WHERE dim = {dim}")
        self._indexed.add(dim)

    @asynccontextmanager
    async def bulk_load(self) -> AsyncIterator[None]:
        """Load many entries, then index them.

        On PostgreSQL with pgvector, a vector index that does not exist yet is built once
        when the block ends, over every row loaded, instead of at the first write and then
        row by row (building it at once is several times faster; IVFFlat also learns its
        lists from the data).  Searches during the load are exact (no index).  Elsewhere,
        and for an index that exists already, nothing changes.
        """
        self._bulk_loads += 1
        try:
            yield
        finally:
            self._bulk_loads -= 1
            if not self._bulk_loads and self._deferred:
                dims, self._deferred = sorted(self._deferred), set()
                for dim in dims:
                    with anyio.CancelScope(shield=True):
                        await self._run(self._ensure_index, dim)  # type: ignore[attr-defined]

    def _vector_param(self, vector: Any) -> Any:
        """A vector as a query parameter for this store's driver (``None`` stays)."""
        if vector is None:
            return None
        return Float4Array(vector) if self._psycopg else vector_literal(vector)

    def _session_settings(self) -> list[str]:
        """``SET`` statements for a reading connection (search breadth, iterative scans)."""
        cfg: Any = self.config  # type: ignore[attr-defined]
        return [f"SET hnsw.ef_search = {int(cfg.hnsw_ef_search)}",
                "SET hnsw.iterative_scan = relaxed_order",
                f"SET ivfflat.probes = {int(cfg.ivfflat_probes)}",
                "SET ivfflat.iterative_scan = relaxed_order"]

    # --- the per-agent cache ------------------------------------------------------------

    def _probe_sql(self, query: MemoryQuery, now: float, base: AgentColumns | None = None,
                   fill: bool = False, capped: bool = False) -> tuple[str, dict[str, Any]]:
        """One statement for a cached search of ``query.agent_id`` (one snapshot): the
        agent's counters; with tags, the ids passing the SQL filters; given the ``base``
        version of its cached columns, the rows written since and, if its delete counter
        moved, every id; with ``fill``, every row.  See :class:`Probe` for the parts.
        ``capped``: the changed rows only if the change counter moved by at most
        :data:`LOOP_REFRESH_ROWS` (each written row moves it), the ids only if the agent
        has at most :data:`LOOP_REFRESH_IDS` entries (see :func:`_loop_sized`).
        Keyword scores come from the cache."""
        c = self.t_counts  # type: ignore[attr-defined]
        e = self.t_entries  # type: ignore[attr-defined]
        where, params = self._where(query, now)  # type: ignore[attr-defined]
        pg = self._pg  # type: ignore[attr-defined]

        def null(kind: str) -> str:
            # Typed on PostgreSQL: a UNION of untyped NULLs makes them text before the
            # rows part is reached.  SQLite's columns take any type.
            return f"NULL::{kind}" if pg else "NULL"

        def capped_to(sql: str, bound: str, name: str, most: int) -> str:
            # A condition the statement tests once (a LIMIT would steer the prepared
            # statement's generic plan to a scan of the table).
            if not capped:
                return sql
            params[name] = most
            return f"{sql} AND (SELECT {bound} FROM {c} WHERE scope = :agent_id) <= :{name}"

        # 14 columns in every part: the kind, then those of ROW_COLUMNS.
        rest = ", ".join(null(x) for x in ("text", "float8", "float8", "float8", "int",
                                           "bytea", "text", "text", "text", "float8",
                                           "int", "text"))
        # The counters go where ROW_COLUMNS has whole numbers: n at dim, deletes at version.
        parts = [f"SELECT 0, changes, {null('text')}, {null('float8')}, {null('float8')}, "
                 f"{null('float8')}, n, {null('bytea')}, {null('text')}, {null('text')}, "
                 f"{null('text')}, {null('float8')}, deletes, {null('text')} FROM {c} "
                 "WHERE scope = :agent_id"]
        if query.tags:
            parts.append(f"SELECT 1, id, {rest} FROM {e} WHERE {where}")
        if base is not None or fill:
            params["seq_since"] = base.changes if base is not None else -1
            parts.append(capped_to(f"SELECT 3, {ROW_COLUMNS} FROM {e} WHERE agent_id = "
                                   ":agent_id AND seq > :seq_since", "changes - :seq_since",
                                   "most_rows", LOOP_REFRESH_ROWS))
        if base is not None:
            params["deletes"] = base.deletes
            parts.append(capped_to(
                f"SELECT 4, id, {rest} FROM {e} WHERE agent_id = :agent_id AND "
                f"COALESCE((SELECT deletes FROM {c} WHERE scope = :agent_id), 0) <> "
                ":deletes", "n", "most_ids", LOOP_REFRESH_IDS))
        return " UNION ALL ".join(parts), params

    def _agent_columns(
        self, query: MemoryQuery, now: float, dim: int, probed: list[Any] | None = None,
        base: AgentColumns | None = None, epoch: int = -1,
    ) -> tuple[AgentColumns | None, Probe]:
        """The cached columns of ``query.agent_id`` brought up to date (``None`` if it is
        too big), and the parts of its probe (see :meth:`_probe_sql`) read with them;
        ``probed``: the rows of a probe the caller read against the ``base`` version;
        ``epoch``: the store's count of its own writes before that probe."""
        agent_id = query.agent_id
        assert agent_id is not None
        cache = self._agents
        with cache.agent_lock(agent_id):
            cached = cache.get(agent_id)
            if cached is not None and cached.dim != dim:
                cached = None
            if probed is None or base is not cached:
                epoch = self._writes  # type: ignore[attr-defined]
                probed = self._rows(*self._probe_sql(query, now, cached),  # type: ignore
                                    binary=True)
            probe = _split_probe(probed)
            if cached is not None and probe.counters[:2] == (cached.changes, cached.deletes):
                return cached, probe
            if not cache.fits(probe.counters[2], dim):
                cache.drop(agent_id)
                self._sizes.note_uncacheable(agent_id)
                return None, probe
            if cached is None:
                # Known to fit: read every row (with the counters they go with).
                probe = _split_probe(self._rows(  # type: ignore[attr-defined]
                    *self._probe_sql(query, now, fill=True), binary=True))
            return self._refreshed(cached, agent_id, dim, probe, epoch), probe

    def _refreshed(self, cached: AgentColumns | None, agent_id: str, dim: int,
                   probe: Probe, epoch: int) -> AgentColumns | None:
        """The next version of ``cached`` (``None``: new columns) as ``probe`` (read
        against it, when the store had made ``epoch`` writes) says, put in the cache;
        ``None`` when it does not fit (dropped)."""
        columns = AgentColumns(agent_id, dim) if cached is None else cached.clone()
        columns.epoch = epoch
        columns.upsert(probe.changed)
        changes, deletes, _ = probe.counters
        if cached is not None and deletes != cached.deletes:
            columns.keep_only(probe.ids)
        columns.changes, columns.deletes = changes, deletes
        if not self._agents.holds(columns):
            self._agents.drop(agent_id)
            self._sizes.note_uncacheable(agent_id)
            return None
        self._agents.put(columns)
        return columns

    async def _agent_search(
        self, query: MemoryQuery, now: float, words: Sequence[str] | None, dim: int,
        model: str | None,
    ) -> Candidates | None:
        """Candidates of one agent from the cache, or ``None`` (the agent is not
        cacheable).  A cached agent costs one statement on the event loop (when it can),
        which also brings what changed since; a few changed rows are added there too."""
        agent = query.agent_id
        assert agent is not None
        if not self._agents.enabled:
            return None
        epoch = self._writes  # type: ignore[attr-defined]
        cached = self._agents.get(agent)
        probed = None
        if cached is not None and cached.dim == dim and not query.filter:
            # What changed comes along when this store wrote since the rows were read
            # (the parts cost a little even when they find nothing).
            rich = cached.epoch != epoch
            # With tags the probe lists the ids that pass them: SQLite reads in place, so
            # a large agent's tagged search reads them in a worker thread.
            in_place = not query.tags or cached.live <= LOOP_TAGGED_ROWS
            probed = await self._fetch(  # type: ignore[attr-defined]
                *self._probe_sql(query, now, cached if rich else None, capped=True),
                in_place=in_place)
            probe = _split_probe(probed)
            allowed = probe.passed if query.tags else None
            if (cached.changes, cached.deletes) == probe.counters[:2]:
                return self._rank_agent(cached, query, now, dim, model, words, allowed, epoch)
            if not rich:  # another process wrote: read what changed
                probed = await self._fetch(  # type: ignore[attr-defined]
                    *self._probe_sql(query, now, cached, capped=True), in_place=in_place)
                probe = _split_probe(probed)
                allowed = probe.passed if query.tags else None
            if not _loop_sized(cached, probe):
                probed = None  # the worker thread reads it all
            else:
                lock = self._agents.agent_lock(agent)
                if self._agents.fits(probe.counters[2], dim) and lock.acquire(blocking=False):
                    try:
                        if self._agents.get(agent) is cached:  # nobody refreshed it since
                            cols = self._refreshed(cached, agent, dim, probe, epoch)
                            return None if cols is None else self._rank_agent(
                                cols, query, now, dim, model, words, allowed, epoch)
                    finally:
                        lock.release()
        return await self._run(  # type: ignore[attr-defined]
            self._agent_candidates, query, now, words, dim, model, epoch, probed, cached)

    def _agent_candidates(
        self, query: MemoryQuery, now: float, words: Sequence[str] | None, dim: int,
        model: str | None, epoch: int, probed: list[Any] | None = None,
        base: AgentColumns | None = None,
    ) -> Candidates | None:
        """:meth:`_agent_search` in a worker thread, refreshing the cache if needed
        (``probed``: the rows of a probe the caller read against ``base``)."""
        cols, probe = self._agent_columns(query, now, dim, probed, base, epoch)
        if cols is None:
            return None
        allowed: list[int] | None = probe.passed if query.tags else None
        if query.filter:
            columns = "id, agent_id, key" + _FILTER + ", importance, updated_at"
            sql, params = self._select(columns, query, now)  # type: ignore[attr-defined]
            allowed = [r[0] for r in self._rows(sql, params)  # type: ignore[attr-defined]
                       if matches_filter(query.filter, _entry_of(
                           r[:8], importance=r[8], updated_at=r[9]))]
        return self._rank_agent(cols, query, now, dim, model, words, allowed, epoch)

    def _rank_agent(
        self, cols: AgentColumns, query: MemoryQuery, now: float, dim: int,
        model: str | None, words: Sequence[str] | None, allowed: Sequence[int] | None,
        epoch: int,
    ) -> Candidates:
        """The cached rows passing ``query``'s conditions (``allowed``: the ids that pass
        its tags and filter, ``None`` when it has neither), with keyword scores of
        ``words`` from the cache's word index."""
        n = cols.n
        mask = _passing(cols, query, now, slice(0, n))
        if cols.live < n:
            mask = cols.alive if mask is None else mask & cols.alive
        if allowed is not None:
            passes = np.isin(cols.ids[:n], np.fromiter(allowed, dtype=np.int64,
                                                      count=len(allowed)))
            mask = passes if mask is None else mask & passes
        keyword = cols.keyword(words) if words else np.zeros(n, dtype=np.float64)
        pos = None if mask is None or bool(mask.all()) else np.flatnonzero(mask)

        def pick(column: Any) -> Any:
            # Views are safe: no version's rows ever change (see AgentColumns).
            return column[:n] if pos is None else column[:n][pos]

        matrix = cols.matrix[:n]
        if not cols.all_comparable(dim, model):
            matrix = matrix * cols.comparable(dim, model)[:, None]
        keys = PickedKeys(cols.keys, pos, n)
        self.search_paths["cache"] += 1
        # The whole matrix with the candidates' rows in it: no copy of the rows that pass.
        return Candidates(refs=CachedRefs(cols, pos, n, epoch),
                          agent_ids=[cols.agent_id] * len(keys), keys=keys,
                          importance=pick(cols.importance),
                          updated_at=pick(cols.updated_at), keyword=pick(keyword),
                          vectors=matrix, vector_rows=pos)

    # --- pgvector -------------------------------------------------------------------------

    async def nearest(
        self,
        query: MemoryQuery,
        *,
        now: float,
        words: Sequence[str] | None,
        vector: Any,
        limit: int,
        embedder: str | None = None,
    ) -> tuple[Candidates, float, float] | None:
        """The ``limit`` nearest live matching entries by the ANN index, plus keyword hits.

        A search of one agent goes to the cache path instead when the agent's rows are
        cached and number fewer than ``index_min_entries``, or as :meth:`_by_index`
        says for one whose rows are not.  When the agent's rows are cached, the statement
        returns ids only unless the agent changed since.

        Returns ``(candidates, semantic_out, importance_out)``: every entry left out has
        semantic similarity at most ``semantic_out`` (as far as the index finds), keyword
        score 0, and importance at most ``importance_out``.  ``None`` when this store does
        not search with pgvector, or not for this agent (the caller uses
        :meth:`candidates`).
        """
        if not self._pg or self.vector_path != "pgvector":
            return None
        vec = np.asarray(vector, dtype=np.float32)
        dim = int(vec.shape[0])
        agent = query.agent_id
        gated = False
        cached = None
        if agent is not None and self._agents.enabled:
            cached = self._agents.get(agent)
            if cached is not None and cached.n < self._least():
                # Scanning its cached rows costs less than the index query (the cache
                # path reads its count again and brings the rows up to date).
                return None
            known = self._sizes.get(agent)
            if known is None:
                # The statement decides, from the agent's and the table's counts.
                gated = True
            elif not self._by_index(agent, known[0], known[1], dim):
                return None
        cols = cached if cached is not None and cached.dim == dim and not query.filter \
            else None
        epoch = self._writes  # type: ignore[attr-defined]
        sql, params = self._nearest_sql(query, now, words, vec, int(limit), embedder, gated,
                                        cols)
        rows = await self._fetch(sql, params)  # type: ignore[attr-defined]
        near, found, meta = _split(rows)
        if meta is None:
            if gated or agent is not None:
                return None  # no entries (or a counts row missing): the cache path says so
            meta = (0,) + (None,) * 15
        entries = meta[1]
        if agent is not None:
            total = int(meta[15] or 0)
            self._sizes.note(agent, int(entries), total)
            if gated and not self._by_index(agent, int(entries), total, dim):
                return None
            counters = (int(meta[13]), int(meta[7]))
            if cols is not None and counters == (cols.changes, cols.deletes):
                hits = cols.keyword_hits(words) if words else None
                return self._ids_result(near, found, cols, hits, entries, query, now, vec,
                                        int(limit), embedder, epoch)
            if cached is None or cached.dim != dim or \
                    counters != (cached.changes, cached.deletes):
                self._warm(agent, dim)
        return self._nearest_result(near, found, meta, query, words, dim, int(limit),
                                    embedder, epoch)

    def _least(self) -> int:
        return int(self.config.index_min_entries)  # type: ignore[attr-defined]

    def _share(self) -> float:
        return float(self.config.index_min_share)  # type: ignore[attr-defined]

    def _by_index(self, agent: str, entries: int, total: int, dim: int) -> bool:
        """Whether a search of ``agent`` (``entries`` of the table's ``total``), whose rows
        are not in the cache, goes to the index.

        Not below ``min(index_min_entries, READ_WHOLE_MAX)`` entries (filling the cache,
        or reading the rows whole, is cheap), nor for an agent that fits the cache and
        holds less than ``index_min_share`` of the table (an index scan filtered to a
        small share visits mostly other agents' rows): those fill the cache.  Otherwise
        yes, and an agent that fits gets its rows cached in the background; once they
        are, :meth:`nearest` sends it to the cache while it has fewer than
        ``index_min_entries`` entries (an exact scan of that many cached rows costs less
        than the index query).  :meth:`_gate_sql` is the same rule in SQL."""
        if entries < min(self._least(), READ_WHOLE_MAX):
            return False
        if entries > self._agents.max_rows(dim) or self._sizes.uncacheable(agent):
            return True
        return entries >= self._share() * total

    def _gate_sql(self, dim: int, params: dict[str, Any]) -> str:
        """:meth:`_by_index` as a condition on the counts table (the agent is
        ``:agent_id``): false for an agent it sends to the cache, or without entries."""
        c = self.t_counts  # type: ignore[attr-defined]
        params["floor"] = min(self._least(), READ_WHOLE_MAX)
        if self._sizes.uncacheable(params["agent_id"]):
            return f"COALESCE((SELECT n >= :floor FROM {c} WHERE scope = :agent_id), false)"
        params["share"] = self._share()
        params["fit"] = self._agents.max_rows(dim)
        return (f"COALESCE((SELECT n >= :floor AND (n > :fit OR n >= :share * (SELECT n "
                f"FROM {c} WHERE scope = '')) FROM {c} WHERE scope = :agent_id), false)")

    def _nearest_sql(
        self, query: MemoryQuery, now: float, words: Sequence[str] | None, vector: Any,
        limit: int, model: str | None, gated: bool, cols: AgentColumns | None,
    ) -> tuple[str, dict[str, Any]]:
        """One statement (see :func:`_split` for its rows): the index's ``limit`` nearest
        rows, every keyword hit (a hit among the nearest comes twice), and the counts.

        ``gated``: the index and keyword parts run only when :meth:`_gate_sql` holds.
        ``cols``: the agent's cached rows; then the rows' columns and the keyword hits
        are read only when the agent's change counters differ from the cache's ("stale",
        one small read of the counts table); otherwise the rows carry only their kind, id
        (and, with tags, the keyword hits' ids: the cache cannot test tags); their
        similarities then come from the cached vectors (the server skips a vector cast and
        product per row).
        """
        dim = int(vector.shape[0])
        e = self.t_entries  # type: ignore[attr-defined]
        c = self.t_counts  # type: ignore[attr-defined]
        where, params = self._where(query, now)  # type: ignore[attr-defined]
        params["q"] = self._vector_param(vector)
        if gated:
            where += " AND " + self._gate_sql(dim, params)
        ann_where = where
        if model is not None:
            ann_where += " AND (model IS NULL OR model = :model)"
            params["model"] = model
        distance = f"vec::vector({dim}) <#> CAST(:q AS vector({dim}))"
        head = ""
        columns = [*_ROW_COLUMNS]
        if cols is not None:
            params["ch"], params["de"] = cols.changes, cols.deletes
            head = (f"WITH s AS MATERIALIZED (SELECT COALESCE((SELECT changes <> :ch OR "
                    f"deletes <> :de FROM {c} WHERE scope = :agent_id), true) AS stale) ")
            columns = [f"CASE WHEN (SELECT stale FROM s) THEN {x} END" for x in columns]
        row = ", ".join(columns)
        shown = distance if cols is None else f"CASE WHEN (SELECT stale FROM s) THEN {distance} END"
        parts = [f"(SELECT 1, id, {row}, {shown}, NULL::bigint FROM {e} WHERE "
                 f"{ann_where} AND dim = {dim} ORDER BY {distance} LIMIT {limit})"]
        if words:
            params["tsq"] = " | ".join(words)
            count = matched_sql(words, params)
            hit_where = where
            if cols is not None:
                count = f"CASE WHEN (SELECT stale FROM s) THEN {count} END"
                if not query.tags:
                    hit_where += " AND (SELECT stale FROM s)"
            parts.append("(" + self.keyword_sql(  # type: ignore[attr-defined]
                f"2, id, {row}, NULL::float8, {count}", hit_where) + ")")
        if query.agent_id is not None:
            top = f"(SELECT max(importance) FROM {e} WHERE agent_id = :agent_id)"
            parts.append(f"SELECT 0, n, NULL, NULL, {top}, NULL, NULL, deletes, NULL, NULL, "
                         f"NULL, NULL, NULL, changes, NULL, (SELECT n FROM {c} WHERE scope "
                         f"= '') FROM {c} WHERE scope = :agent_id")
        return head + " UNION ALL ".join(parts), params

    def _ids_result(
        self, near: list[Any], found: list[Any], cols: AgentColumns,
        hits: tuple[Any, Any] | None, entries: int, query: MemoryQuery, now: float,
        vector: Any, limit: int, model: str | None, epoch: int,
    ) -> tuple[Candidates, float, float] | None:
        """Candidates from the index rows ``near`` and (with tags) keyword-hit rows
        ``found`` of a statement that found the cache fresh, the agent's cached columns
        ``cols`` and their keyword ``hits`` (``AgentColumns.keyword_hits``; ``None``
        without query words), for the query ``vector``; ``None`` as
        :meth:`_nearest_result`."""
        dim = int(vector.shape[0])
        if len(near) < limit and len(near) < entries:
            return None  # as in _nearest_result
        at = cols.positions([r[1] for r in near])
        if query.tags:
            at += cols.positions([r[1] for r in found])
        if None in at:
            # Never while the counters match: should it happen, forget the cache and let
            # the caller search exactly (which fills it again).
            log.error("memory: the cache of agent %r lacks a row its counters say it "
                      "holds; dropping it", cols.agent_id)
            self._agents.drop(cols.agent_id)
            return None
        pos = np.fromiter(at, dtype=np.int64, count=len(at))
        # As _nearest_result's: the least similarity among the nearest rows (only they
        # come first in pos; keyword hits under tags follow, of any similarity).
        semantic_out = float(similarities(cols.matrix[pos[: len(near)]], vector).min()) \
            if len(near) >= limit else 0.0
        keyword = None
        if hits is not None and not query.tags:
            # Every keyword hit, then the nearest rows that are not hits (no sort needed).
            hit_rows, hit_scores = hits
            i = np.minimum(np.searchsorted(hit_rows, pos), max(len(hit_rows) - 1, 0))
            others = pos[hit_rows[i] != pos] if len(hit_rows) else pos
            pos = np.concatenate((hit_rows, others))
            keyword = np.concatenate((hit_scores, np.zeros(len(others))))
        else:
            pos = np.unique(pos)
        mask = _passing(cols, query, now, pos)
        if mask is not None and not bool(mask.all()):
            pos = pos[mask]
            if keyword is not None:
                keyword = keyword[mask]
        if hits is not None and keyword is None:
            # Each candidate's score among the hits (hit rows ascending).
            hit_rows, hit_scores = hits
            i = np.minimum(np.searchsorted(hit_rows, pos), max(len(hit_rows) - 1, 0))
            keyword = np.where(hit_rows[i] == pos, hit_scores[i], 0.0) if len(hit_rows) \
                else np.zeros(len(pos))
        vectors = cols.matrix[pos]
        if not cols.all_comparable(dim, model):
            vectors = vectors * cols.comparable(dim, model, pos)[:, None]
        self.search_paths["pgvector"] += 1
        self.search_paths["pgvector, rows cached"] += 1
        return Candidates(
            refs=CachedRefs(cols, pos, cols.n, epoch), agent_ids=[cols.agent_id] * len(pos),
            keys=PickedKeys(cols.keys, pos, cols.n), importance=cols.importance[pos],
            updated_at=cols.updated_at[pos],
            keyword=keyword if keyword is not None else np.zeros(len(pos)),
            vectors=vectors), semantic_out, cols.top_importance()

    def _nearest_result(
        self, near: list[Any], found: list[Any], meta: Sequence[Any], query: MemoryQuery,
        words: Sequence[str] | None, dim: int, limit: int, model: str | None, epoch: int,
    ) -> tuple[Candidates, float, float] | None:
        """Candidates from whole index rows ``near`` and keyword-hit rows ``found`` (see
        :func:`_split`) and the counts row ``meta`` (``None``: not decided by the index;
        the caller searches exactly)."""
        entries = meta[1]
        importance_out = float(meta[4]) if meta[4] is not None else 1.0
        count = len(near)
        if count < limit and (entries is None or count < entries):
            # Fewer than asked: every match, or an index scan that stopped early (at
            # hnsw.max_scan_tuples, say) - known only when the agent has no more rows.
            return None
        # Relaxed-order index scans may return the nearest slightly out of order.
        semantic_out = -max(float(r[14]) for r in near) if count >= limit else 0.0
        data = list(near)
        matched: list[Any] = [None] * count
        if found:
            at = {r[1]: i for i, r in enumerate(near)}
            for h in found:
                i = at.get(h[1])
                if i is None:
                    data.append(h)
                    matched.append(h[15])
                else:
                    matched[i] = h[15]
        refs = RowRefs(data, epoch)
        if query.filter:
            keep = [i for i in range(len(data))
                    if matches_filter(query.filter, refs[i].entry())]
            data, matched = [data[i] for i in keep], [matched[i] for i in keep]
            refs = RowRefs(data, epoch)
        n = len(data)
        good = [r[7] == dim and r[6] is not None and (model is None or r[8] in (None, model))
                for r in data]
        if all(good):
            vectors = np.frombuffer(b"".join([r[6] for r in data]), dtype=np.float32
                                    ).reshape(n, dim)
        else:
            vectors = np.zeros((n, dim), dtype=np.float32)
            for i, r in enumerate(data):
                if good[i]:
                    vectors[i] = np.frombuffer(r[6], dtype=np.float32)
        per = len(words) if words else 1
        self.search_paths["pgvector"] += 1
        return Candidates(
            refs=refs, agent_ids=[r[2] for r in data], keys=[r[3] for r in data],
            importance=np.fromiter([r[4] for r in data], dtype=np.float64, count=n),
            updated_at=np.fromiter([r[5] for r in data], dtype=np.float64, count=n),
            keyword=np.fromiter([0.0 if m is None else m / per for m in matched],
                                dtype=np.float64, count=n),
            vectors=vectors), semantic_out, importance_out

    def _warm(self, agent: str, dim: int) -> None:
        """Bring the agent's cached rows up to date in a background thread, so its next
        searches by index need only ids: only when the agent fits the cache beside what
        it holds (a fill never evicts other agents), and one filler per store at a time
        (it holds a connection; a later search asks again).  A failure is logged."""
        known = self._sizes.get(agent)
        if known is None or self._sizes.uncacheable(agent) or \
                not self._agents.has_room(agent, known[0], dim):
            return
        with self._warm_lock:
            if self._closing or self._warmers:
                return
            thread = threading.Thread(target=self._warm_run, args=(agent, dim),
                                      name="nf-memory-warm", daemon=True)
            self._warmers[agent] = thread
            thread.start()

    def _warm_run(self, agent: str, dim: int) -> None:
        try:
            if not self._closing:
                self._agent_columns(MemoryQuery(agent_id=agent), 0.0, dim)
        except Exception as exc:  # noqa: BLE001 - the next search tries again
            log.debug("memory: filling the cache of agent %r failed: %s", agent, exc)
        finally:
            with self._warm_lock:
                self._warmers.pop(agent, None)

    def _stop_warming(self) -> None:
        """Let no new filler start and wait for the running one (the store closes)."""
        with self._warm_lock:
            self._closing = True
            threads = list(self._warmers.values())
        for thread in threads:
            thread.join()


#: The columns of an entry row in a search statement, after its kind and id.
_ROW_COLUMNS = ("agent_id", "key", "importance", "updated_at", "embedding", "dim", "model",
                "value", "tags", "created_at", "expires_at", "version")


def _passing(cols: AgentColumns, query: MemoryQuery, now: float, at: Any) -> Any:
    """Which cached rows at ``at`` (a slice or positions) are live at ``now`` and pass
    ``query``'s importance and time bounds, as a mask; ``None`` when all do without a
    test (nothing cached expires by ``now``, no bounds)."""
    mask = None if cols.soonest_expiry() > now else cols.expires_at[at] > now
    for column, bound, above in ((cols.importance, query.min_importance, True),
                                 (cols.updated_at, query.since, True),
                                 (cols.updated_at, query.until, False)):
        if bound is not None:
            passes = column[at] >= bound if above else column[at] < bound
            mask = passes if mask is None else mask & passes
    return mask


def _split(rows: list[Any]) -> tuple[list[Any], list[Any], Any]:
    """The rows of :meth:`PgSearch._nearest_sql` by kind: index rows ``(1, id, agent_id,
    key, importance, updated_at, embedding, dim, model, value, tags, created_at,
    expires_at, version, distance, NULL)``, keyword hits ``(2, <the same>, NULL, words
    matched)`` (in both, every column but the kind and id ``NULL`` when the cache was
    fresh) and the counts row ``(0, the agent's entries, NULL, NULL, its top importance,
    NULL, NULL, its delete counter, NULL..., its change counter, NULL, the table's
    entries)`` or ``None`` (the agent has no counts row)."""
    near: list[Any] = []
    found: list[Any] = []
    meta = None
    for r in rows:
        kind = r[0]
        if kind == 1:
            near.append(r)
        elif kind == 2:
            found.append(r)
        else:
            meta = r
    return near, found, meta


class RowRefs(Sequence[RowRef]):
    """The refs of a pgvector search: rows of :meth:`PgSearch._nearest_sql` (``(kind, id,
    agent_id, key, importance, updated_at, embedding, dim, model, value, tags,
    created_at, expires_at, version, ...)``), made one at a time as the ranker asks."""

    def __init__(self, rows: list[Any], epoch: int) -> None:
        self.rows, self.epoch = rows, epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        r = self.rows[i]
        return RowRef(r[1], (r[2], r[3], r[9], r[10], r[4], r[11], r[5], r[12], r[13]),
                      self.epoch)


class AgentSizes:
    """What pgvector searches learnt of agents' sizes, so the next search of an agent
    goes to the index or the cache without asking the server first.

    Each answer is kept ``TTL`` seconds (agents grow and shrink; a search by index
    renews it); beyond ``MAX`` agents all are forgotten at once.
    """

    MAX = 65_536
    TTL = 10.0
    #: How long an agent found too big for the cache (by its texts) stays so.
    UNCACHEABLE_TTL = 300.0

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, int, float]] = {}
        self._uncacheable: dict[str, float] = {}

    def get(self, agent: str) -> tuple[int, int] | None:
        """``(the agent's entries, the table's entries)`` as last seen, or ``None``."""
        found = self._known.get(agent)
        if found is None or time.monotonic() - found[2] > self.TTL:
            return None
        return found[0], found[1]

    def note(self, agent: str, entries: int, total: int) -> None:
        """The agent's and the table's entries now."""
        if len(self._known) >= self.MAX:
            self._known.clear()
        self._known[agent] = (entries, total, time.monotonic())

    def note_uncacheable(self, agent: str) -> None:
        """The agent did not fit the cache when it was read (its texts, say)."""
        if len(self._uncacheable) >= self.MAX:
            self._uncacheable.clear()
        self._uncacheable[agent] = time.monotonic()

    def uncacheable(self, agent: str) -> bool:
        """Whether the agent recently did not fit the cache."""
        when = self._uncacheable.get(agent)
        return when is not None and time.monotonic() - when <= self.UNCACHEABLE_TTL


def _entry_of(row: Sequence[Any], **known: Any) -> MemoryEntry:
    """An entry from ``(id, agent_id, key, value, tags, created_at, expires_at, version)``
    plus ``importance``/``updated_at`` when given (filters may test them)."""
    return MemoryEntry(agent_id=row[1], key=row[2], value=json.loads(row[3]),
                       tags=tuple(json.loads(row[4])), created_at=row[5], expires_at=row[6],
                       version=row[7], importance=known.get("importance", 0.5),
                       updated_at=known.get("updated_at", 0.0))
