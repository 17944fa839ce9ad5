"""Semantic search on PostgreSQL: pgvector when the server has it, else a per-agent cache.

Mixed into :class:`~neuroflow_memory_sqlite.store.SqlStore`; only its PostgreSQL side
uses it.

* **pgvector**: the entries table gets a ``vec vector`` column (filled on every write, and
  back-filled from the stored embeddings when the column is added), and one partial
  HNSW (or IVFFlat) index per vector size: ``((vec::vector(D)) vector_ip_ops) WHERE dim =
  D``.  :meth:`PgSearch.nearest` asks the index for the nearest candidates under the same
  SQL pre-filters as an exact search (agent, tags, importance, time; iterative index scans
  keep filtered searches complete), adds every keyword hit, and returns their stored
  float32 embeddings, so the ranker scores them exactly as an exact search would.  It
  also returns bounds on what the entries left out could score, so the ranker can tell
  whether the candidates decide the top results or it must look further.
* **cache**: :mod:`neuroflow_memory_sqlite.agent_cache`; :meth:`PgSearch._agent_candidates`
  ranks from it.

Both stamp rows with a per-agent change counter (``seq``); see the cache module.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from neuroflow.errors import MemoryStoreError
from neuroflow.memory import Candidates, MemoryEntry, MemoryQuery, coverage, matches_filter
from neuroflow_memory_sqlite.agent_cache import AgentColumns, VectorCache

log = logging.getLogger("neuroflow.memory")

_BACKFILL_CHUNK = 1000
_ROW = "id, key, importance, updated_at, expires_at, dim, embedding, model"
_RANK = "id, agent_id, key, importance, updated_at, embedding, dim, model"
_FILTER = ", value, tags, created_at, expires_at, version"


def vector_literal(vector: Any) -> str | None:
    """pgvector's text form of a float32 vector (``None`` stays ``None``).

    Each float32 is written with the shortest text that reads back as the same float32.
    """
    if vector is None:
        return None
    arr = np.asarray(vector, dtype=np.float32)
    return "[" + ",".join(np.format_float_positional(x, unique=True, trim="-") for x in arr) \
        + "]"


class PgSearch:
    """PostgreSQL's vector search paths (mixed into ``SqlStore``)."""

    # Set by SqlStore.__init__ / open.
    _pg: bool
    _vec: bool
    vector_path: str
    search_paths: Counter[str]
    _agents: VectorCache
    _indexed: set[int]

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
                [{"id": r[0], "v": vector_literal(np.frombuffer(r[1], dtype=np.float32))}
                 for r in rows])
            last = rows[-1][0]

    def _ensure_index(self, dim: int) -> None:
        """Create the ANN index for vectors of size ``dim`` if it is missing."""
        if dim in self._indexed or not self._vec:
            return
        cfg: Any = self.config  # type: ignore[attr-defined]
        e = self.t_entries  # type: ignore[attr-defined]
        name = f"{e}_vec{dim}"
        engine: Any = self._engine  # type: ignore[attr-defined]
        with engine.begin() as conn:
            if not conn.exec_driver_sql(f"SELECT to_regclass('{name}') IS NOT NULL").scalar():
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7311090413)")
                method, ops = getattr(cfg, "vector_index", "hnsw"), "vector_ip_ops"
                options = (f"m = {int(cfg.hnsw_m)}, ef_construction = "
                           f"{int(cfg.hnsw_ef_construction)}" if method == "hnsw"
                           else f"lists = {int(cfg.ivfflat_lists)}")
                conn.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS {name} ON {e} USING {method} "
                    f"((vec::vector({dim})) {ops}) WITH ({options}) WHERE dim = {dim}")
        self._indexed.add(dim)

    def _session_settings(self) -> list[str]:
        """``SET`` statements for a reading connection (search breadth, iterative scans)."""
        cfg: Any = self.config  # type: ignore[attr-defined]
        return [f"SET hnsw.ef_search = {int(cfg.hnsw_ef_search)}",
                "SET hnsw.iterative_scan = relaxed_order",
                f"SET ivfflat.probes = {int(cfg.ivfflat_probes)}",
                "SET ivfflat.iterative_scan = relaxed_order"]

    # --- the per-agent cache ------------------------------------------------------------

    def _snapshot(self, statements: Sequence[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
        """Rows of several read statements seen in one consistent snapshot."""
        read_engine: Any = self._read_engine  # type: ignore[attr-defined]
        if read_engine is None:
            raise MemoryStoreError("memory store is closed")
        error = read_engine.dialect.loaded_dbapi.Error
        conn = read_engine.raw_connection()
        try:
            cur = conn.cursor()
            try:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                out = []
                for sql, params in statements:
                    cur.execute(self._driver(sql), params)  # type: ignore[attr-defined]
                    out.append(cur.fetchall())
                cur.execute("COMMIT")
                return out
            finally:
                cur.close()
        except error as exc:
            if getattr(conn.driver_connection, "closed", False):
                conn.invalidate()
            raise MemoryStoreError(f"memory store postgresql: {exc}") from exc
        finally:
            conn.close()

    def _agent_columns(self, agent_id: str, dim: int) -> AgentColumns | None:
        """The agent's cached columns, brought up to date; ``None`` if it is too big."""
        cache = self._agents
        if not cache.enabled:
            return None
        c = self.t_counts  # type: ignore[attr-defined]
        e = self.t_entries  # type: ignore[attr-defined]
        counters = f"SELECT changes, deletes, n FROM {c} WHERE scope = :s"
        with cache.agent_lock(agent_id):
            cached = cache.get(agent_id)
            if cached is not None and cached.dim != dim:
                cached = None
            rows = self._rows(counters, {"s": agent_id})  # type: ignore[attr-defined]
            changes, deletes, n = rows[0] if rows else (0, 0, 0)
            if cached is not None and cached.changes == changes and cached.deletes == deletes:
                return cached
            if not cache.fits(n, dim):
                cache.drop(agent_id)
                return None
            fresh = cached is None
            columns = AgentColumns(agent_id, dim) if fresh else cached.clone()
            statements = [(counters, {"s": agent_id}),
                          (f"SELECT {_ROW} FROM {e} WHERE agent_id = :a AND seq > :last",
                           {"a": agent_id, "last": -1 if fresh else columns.changes})]
            if not fresh and columns.deletes != deletes:
                statements.append((f"SELECT id FROM {e} WHERE agent_id = :a", {"a": agent_id}))
            found = self._snapshot(statements)
            columns.upsert(found[1])
            if len(found) > 2:
                columns.keep_only([r[0] for r in found[2]])
            if found[0]:
                columns.changes, columns.deletes = found[0][0][0], found[0][0][1]
            else:
                columns.changes = columns.deletes = 0
            if not cache.fits(columns.n, dim):
                cache.drop(agent_id)
                return None
            cache.put(columns)
            return columns

    def _agent_candidates(
        self, query: MemoryQuery, now: float, words: Sequence[str] | None, dim: int,
        model: str | None,
    ) -> Candidates | None:
        """Candidates of one agent ranked from the cache, or ``None`` (not cacheable)."""
        assert query.agent_id is not None
        cols = self._agent_columns(query.agent_id, dim)
        if cols is None:
            return None
        n = cols.n
        mask = cols.expires_at[:n] > now
        if query.min_importance is not None:
            mask &= cols.importance[:n] >= query.min_importance
        if query.since is not None:
            mask &= cols.updated_at[:n] >= query.since
        if query.until is not None:
            mask &= cols.updated_at[:n] < query.until
        if query.tags or query.filter:
            columns = "id, agent_id, key" + _FILTER + ", importance, updated_at" \
                if query.filter else "id"
            sql, params = self._select(columns, query, now)  # type: ignore[attr-defined]
            rows = self._rows(sql, params)  # type: ignore[attr-defined]
            if query.filter:
                rows = [r for r in rows if matches_filter(query.filter, _entry_of(
                    r[:8], importance=r[8], updated_at=r[9]))]
            mask &= np.isin(cols.ids[:n], np.fromiter((r[0] for r in rows), dtype=np.int64))
        keyword = np.zeros(n, dtype=np.float64)
        if words:
            for rid, share in self._keyword_hits(query, now, words).items():  # type: ignore
                at = cols.position(rid)
                if at is not None:
                    keyword[at] = share
        good = cols.dims[:n] == dim
        if model is not None:
            codes = cols.models[:n]
            good &= (codes == cols.code_of(model)) | (codes == 0)
        every = bool(mask.all())
        pos = None if every else np.flatnonzero(mask)

        def pick(column: Any) -> Any:
            # Views are safe: a refresh never changes cached arrays, it replaces them.
            return column[:n] if pos is None else column[:n][pos]

        matrix = cols.matrix[:n]
        if not bool(good.all()):
            matrix = matrix * good[:, None]
        vectors = matrix if pos is None else matrix[pos]
        keys = cols.keys[:n] if pos is None else [cols.keys[i] for i in pos]
        self.search_paths["cache"] += 1
        return Candidates(refs=pick(cols.ids), agent_ids=[cols.agent_id] * len(keys),
                          keys=keys, importance=pick(cols.importance),
                          updated_at=pick(cols.updated_at), keyword=pick(keyword),
                          vectors=vectors)

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

        An agent with fewer than ``index_min_entries`` entries is not searched by index.

        Returns ``(candidates, semantic_out, importance_out)``: every entry left out has
        semantic similarity at most ``semantic_out`` (as far as the index finds), keyword
        score 0, and importance at most ``importance_out``.  ``None`` when this store does
        not search with pgvector, or not for this agent (the caller uses
        :meth:`candidates`).
        """
        if not self._pg or self.vector_path != "pgvector":
            return None
        return await self._run(  # type: ignore[attr-defined]
            self._nearest_sync, query, now, words, np.asarray(vector, dtype=np.float32),
            int(limit), embedder)

    def _nearest_sync(
        self, query: MemoryQuery, now: float, words: Sequence[str] | None, vector: Any,
        limit: int, model: str | None,
    ) -> tuple[Candidates, float, float] | None:
        cfg: Any = self.config  # type: ignore[attr-defined]
        if query.agent_id is not None and self._agents.enabled:
            counted = self._rows(  # type: ignore[attr-defined]
                f"SELECT n FROM {self.t_counts} WHERE scope = :s",  # type: ignore
                {"s": query.agent_id})
            if not counted or counted[0][0] < getattr(cfg, "index_min_entries", 2000):
                return None  # a small agent: the exact search from the cache is faster
        dim = int(vector.shape[0])
        e = self.t_entries  # type: ignore[attr-defined]
        where, params = self._where(query, now)  # type: ignore[attr-defined]
        params["q"] = vector_literal(vector)
        if model is not None:
            where += " AND (model IS NULL OR model = :model)"
            params["model"] = model
        extra = _FILTER if query.filter else ""
        distance = f"vec::vector({dim}) <#> CAST(:q AS vector({dim}))"
        top = f"(SELECT max(importance) FROM {e} WHERE agent_id = :agent_id)" \
            if query.agent_id is not None else "1.0"
        sql = (f"WITH ann AS (SELECT id, {distance} AS d FROM {e} WHERE {where} AND "
               f"dim = {dim} ORDER BY {distance} LIMIT {limit}) "
               f"SELECT {', '.join('e.' + c for c in _RANK.split(', '))}{extra}, ann.d, "
               f"{top} FROM ann JOIN {e} e ON e.id = ann.id")
        rows = self._rows(sql, params)  # type: ignore[attr-defined]
        importance_out = float(rows[0][-1]) if rows and rows[0][-1] is not None else 1.0
        semantic_out = -max(float(r[-2]) for r in rows) if len(rows) >= limit else 0.0
        hits: dict[int, float] = {}
        if words:
            where_k, params_k = self._where(query, now)  # type: ignore[attr-defined]
            params_k["tsq"] = " | ".join(words)
            have = [r[0] for r in rows]
            kw = self._rows(  # type: ignore[attr-defined]
                self.keyword_sql(f"{_RANK}{extra}, words", where_k),  # type: ignore
                params_k)
            seen = set(have)
            for r in kw:
                hits[r[0]] = coverage(words, r[-1])
                if r[0] not in seen:
                    rows.append(r)
                    seen.add(r[0])
        if query.filter:
            rows = [r for r in rows if matches_filter(query.filter, _entry_of(
                (r[0], r[1], r[2], *r[8:13]), importance=r[3], updated_at=r[4]))]
        n = len(rows)
        vectors = np.zeros((n, dim), dtype=np.float32)
        for i, r in enumerate(rows):
            if r[6] == dim and r[5] is not None and (model is None or r[7] in (None, model)):
                vectors[i] = np.frombuffer(r[5], dtype=np.float32)
        ids = [r[0] for r in rows]
        self.search_paths["pgvector"] += 1
        return Candidates(
            refs=ids, agent_ids=[r[1] for r in rows], keys=[r[2] for r in rows],
            importance=np.fromiter((r[3] for r in rows), dtype=np.float64, count=n),
            updated_at=np.fromiter((r[4] for r in rows), dtype=np.float64, count=n),
            keyword=np.fromiter((hits.get(i, 0.0) for i in ids), dtype=np.float64, count=n),
            vectors=vectors), semantic_out, importance_out


def _entry_of(row: Sequence[Any], **known: Any) -> MemoryEntry:
    """An entry from ``(id, agent_id, key, value, tags, created_at, expires_at, version)``
    plus ``importance``/``updated_at`` when given (filters may test them)."""
    import json

    return MemoryEntry(agent_id=row[1], key=row[2], value=json.loads(row[3]),
                       tags=tuple(json.loads(row[4])), created_at=row[5], expires_at=row[6],
                       version=row[7], importance=known.get("importance", 0.5),
                       updated_at=known.get("updated_at", 0.0))
