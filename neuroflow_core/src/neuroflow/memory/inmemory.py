"""The in-memory store (backend ``memory``): short-term memory in this process.

Fast and gone when the process ends.  Each agent's entries get a column-wise index
(numpy arrays, an embedding matrix and an inverted word index) built on the first search
after a change, so a semantic search over ten thousand entries is a matrix product.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from neuroflow.errors import MemoryConflictError
from neuroflow.memory.model import Candidates, HistoryRecord, MemoryEntry, MemoryQuery
from neuroflow.memory.text import PIECE, coverage
from neuroflow.memory.validate import OFF_LOOP_BYTES

if TYPE_CHECKING:
    import numpy as np


@attrs.frozen
class InMemoryStoreConfig:
    """Options of the ``memory`` store (it has none yet; the section is accepted)."""


@attrs.define
class _Row:
    entry: MemoryEntry
    words: frozenset[str]
    vector: Any
    model: str | None = None

    def comparable(self, dim: int, model: str | None) -> bool:
        """Whether the stored vector can be compared with a query vector."""
        return self.vector is not None and len(self.vector) == dim and (
            model is None or self.model is None or self.model == model)


@attrs.define
class _AgentIndex:
    keys: list[str]
    rows: list[_Row]
    importance: Any
    updated_at: Any
    expires_at: Any
    postings: dict[str, list[int]]
    refs: Any
    agent_ids: Any
    key_array: Any
    matrices: dict[tuple[int, str | None], Any] = attrs.Factory(dict)

    def matrix(self, dim: int, model: str | None) -> np.ndarray:
        import numpy as np

        found = self.matrices.get((dim, model))
        if found is None:
            found = np.zeros((len(self.rows), dim), dtype=np.float32)
            for i, row in enumerate(self.rows):
                if row.comparable(dim, model):
                    found[i] = row.vector
            self.matrices[(dim, model)] = found
        return found


def _objects(items: list[Any]) -> Any:
    """A 1-d numpy object array (tuples stay elements, not rows)."""
    import numpy as np

    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _word_set(words: str) -> frozenset[str]:
    """The set of space-separated words, built a piece at a time (for a worker thread)."""
    out: set[str] = set()
    start = 0
    while start < len(words):
        end = words.find(" ", start + PIECE)
        end = len(words) if end < 0 else end
        out.update(words[start:end].split())
        start = end
    return frozenset(out)


def history_of(entry: MemoryEntry, op: str, at: float) -> HistoryRecord:
    """The history record of writing or removing ``entry``."""
    return HistoryRecord(entry.agent_id, entry.key, entry.version, op, at, entry.value,
                         entry.tags, entry.importance, entry.expires_at)


def eviction_order(entry: MemoryEntry) -> tuple[float, float, str, str]:
    """Sort key: first evicted first."""
    return (entry.importance, entry.updated_at, entry.agent_id, entry.key)


class InMemoryStore:
    """A :class:`~neuroflow.memory.MemoryStore` kept in a dict (not shared, not durable)."""

    def __init__(self, config: InMemoryStoreConfig | None = None) -> None:
        self.config = config or InMemoryStoreConfig()
        self._agents: dict[str, dict[str, _Row]] = {}
        self._history: dict[tuple[str, str], list[HistoryRecord]] = {}
        self._index: dict[str, _AgentIndex] = {}

    async def open(self) -> None:
        """Nothing to open."""

    async def aclose(self) -> None:
        """Nothing to close (the entries stay while the object lives)."""

    # --- writes -------------------------------------------------------------------

    def _record(self, entry: MemoryEntry, op: str, at: float, keep: bool) -> None:
        if keep:
            self._history.setdefault((entry.agent_id, entry.key), []).append(
                history_of(entry, op, at))

    def _remove(self, agent_id: str, key: str, op: str, now: float, keep: bool) -> MemoryEntry:
        rows = self._agents[agent_id]
        row = rows.pop(key)
        if not rows:
            del self._agents[agent_id]
        self._index.pop(agent_id, None)
        self._record(row.entry, op, now, keep)
        return row.entry

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
        """Create or replace one entry (see :meth:`MemoryStore.put`)."""
        if len(words) > OFF_LOOP_BYTES:
            # Splitting a large value's words is done off the event loop, before any state
            # is read, so the write below stays one step.
            bag = await anyio.to_thread.run_sync(_word_set, words)
        else:
            bag = frozenset(words.split())
        rows = self._agents.get(entry.agent_id, {})
        old = rows.get(entry.key)
        live = old.entry if old is not None and not old.entry.is_expired(now) else None
        current = live.version if live is not None else 0
        if expected_version is not None and expected_version != current:
            raise MemoryConflictError(entry.agent_id, entry.key, expected_version, current)
        stored = attrs.evolve(
            entry,
            version=current + 1,
            created_at=live.created_at if live is not None else now,
            updated_at=now,
            score=None,
            explain=None,
        )
        self._agents.setdefault(entry.agent_id, {})[entry.key] = _Row(
            stored, bag, vector, embedder)
        self._index.pop(entry.agent_id, None)
        self._record(stored, "update" if live is not None else "create", now, keep_history)
        return stored, live is None

    async def delete(self, agent_id: str, key: str, *, now: float, keep_history: bool) -> bool:
        """Delete one entry; an expired one is removed but reported as not deleted."""
        row = self._agents.get(agent_id, {}).get(key)
        if row is None:
            return False
        live = not row.entry.is_expired(now)
        self._remove(agent_id, key, "delete" if live else "expire", now, keep_history)
        return live

    async def delete_where(self, query: MemoryQuery, *, now: float, keep_history: bool) -> int:
        """Delete every live entry matching ``query``."""
        doomed = [(e.agent_id, e.key) for e in self._live(query, now)]
        for agent_id, key in doomed:
            self._remove(agent_id, key, "delete", now, keep_history)
        return len(doomed)

    async def sweep_expired(self, *, now: float, keep_history: bool) -> int:
        """Delete every expired entry."""
        doomed = [
            (agent_id, key)
            for agent_id, rows in self._agents.items()
            for key, row in rows.items()
            if row.entry.is_expired(now)
        ]
        for agent_id, key in doomed:
            self._remove(agent_id, key, "expire", now, keep_history)
        return len(doomed)

    async def evict(
        self, agent_id: str | None, max_entries: int, *, now: float, keep_history: bool
    ) -> int:
        """Evict the lowest-value live entries beyond ``max_entries``.

        Expired entries in scope are removed first (as ``expire``) and do not count.
        """
        if agent_id is None:
            pool = [row.entry for rows in self._agents.values() for row in rows.values()]
        else:
            pool = [row.entry for row in self._agents.get(agent_id, {}).values()]
        if len(pool) <= max_entries:
            return 0
        live = []
        for entry in pool:
            if entry.is_expired(now):
                self._remove(entry.agent_id, entry.key, "expire", now, keep_history)
            else:
                live.append(entry)
        excess = len(live) - max_entries
        if excess <= 0:
            return 0
        for entry in heapq.nsmallest(excess, live, key=eviction_order):
            self._remove(entry.agent_id, entry.key, "evict", now, keep_history)
        return excess

    # --- reads ----------------------------------------------------------------------

    async def get(self, agent_id: str, key: str, *, now: float) -> MemoryEntry | None:
        """Return the live entry or ``None``."""
        row = self._agents.get(agent_id, {}).get(key)
        if row is None or row.entry.is_expired(now):
            return None
        return row.entry

    async def get_many(self, refs: Sequence[Any]) -> list[MemoryEntry | None]:
        """Resolve ``(agent_id, key)`` references (``None`` for one deleted since)."""
        out: list[MemoryEntry | None] = []
        for a, k in refs:
            row = self._agents.get(a, {}).get(k)
            out.append(None if row is None else row.entry)
        return out

    def _live(self, query: MemoryQuery, now: float) -> list[MemoryEntry]:
        if query.agent_id is not None:
            pools = [self._agents.get(query.agent_id, {})]
        else:
            pools = list(self._agents.values())
        return [row.entry for rows in pools for row in rows.values()
                if query.matches(row.entry, now)]

    async def list(
        self, query: MemoryQuery, *, now: float, limit: int | None, offset: int = 0
    ) -> list[MemoryEntry]:
        """Live matching entries by ``(agent_id, key)``."""
        found = sorted(self._live(query, now), key=lambda e: (e.agent_id, e.key))
        return found[offset : None if limit is None else offset + limit]

    async def history(self, agent_id: str, key: str) -> list[HistoryRecord]:
        """The recorded changes of one key."""
        return list(self._history.get((agent_id, key), ()))

    async def stats(self, *, now: float) -> dict[str, Any]:
        """Counts of live entries per agent, and of expired ones not yet swept."""
        agents: dict[str, int] = {}
        expired = 0
        for agent_id, rows in self._agents.items():
            live = sum(1 for row in rows.values() if not row.entry.is_expired(now))
            expired += len(rows) - live
            if live:
                agents[agent_id] = live
        return {"entries": sum(agents.values()), "expired": expired, "agents": agents}

    # --- search ---------------------------------------------------------------------------

    def _agent_index(self, agent_id: str) -> _AgentIndex:
        import numpy as np

        index = self._index.get(agent_id)
        if index is None:
            rows = self._agents.get(agent_id, {})
            keys = list(rows)
            row_list = list(rows.values())
            postings: dict[str, list[int]] = {}
            for i, row in enumerate(row_list):
                for word in row.words:
                    postings.setdefault(word, []).append(i)
            entries = [row.entry for row in row_list]
            index = _AgentIndex(
                keys,
                row_list,
                np.array([e.importance for e in entries], dtype=np.float64),
                np.array([e.updated_at for e in entries], dtype=np.float64),
                np.array([np.inf if e.expires_at is None else e.expires_at for e in entries],
                         dtype=np.float64),
                postings,
                _objects([(agent_id, k) for k in keys]),
                _objects([agent_id] * len(keys)),
                _objects(keys),
            )
            self._index[agent_id] = index
        return index

    async def candidates(
        self,
        query: MemoryQuery,
        *,
        now: float,
        words: Sequence[str] | None,
        vector_dim: int | None,
        embedder: str | None = None,
    ) -> Candidates:
        """Live matching entries, column-wise (see :meth:`MemoryStore.candidates`)."""
        import numpy as np

        if query.agent_id is None:
            return self._candidates_slow(query, now, words, vector_dim, embedder)
        index = self._agent_index(query.agent_id)
        mask = index.expires_at > now
        if query.min_importance is not None:
            mask &= index.importance >= query.min_importance
        if query.since is not None:
            mask &= index.updated_at >= query.since
        if query.until is not None:
            mask &= index.updated_at < query.until
        if query.tags or query.filter:
            plain = attrs.evolve(query, min_importance=None, since=None, until=None)
            for i in np.flatnonzero(mask):
                if not plain.matches(index.rows[i].entry, now):
                    mask[i] = False
        keyword = np.zeros(len(index.rows), dtype=np.float64)
        if words:
            for word in words:
                hits = index.postings.get(word)
                if hits:
                    keyword[hits] += 1.0
            keyword /= len(words)
        every = bool(mask.all())
        pos = np.flatnonzero(mask)

        def pick(column: Any) -> Any:
            return column if every else column[pos]

        return Candidates(
            refs=pick(index.refs),
            agent_ids=pick(index.agent_ids),
            keys=pick(index.key_array),
            importance=pick(index.importance),
            updated_at=pick(index.updated_at),
            keyword=pick(keyword),
            vectors=index.matrix(vector_dim, embedder) if vector_dim else None,
            vector_rows=None if every or not vector_dim else pos,
        )

    def _candidates_slow(
        self, query: MemoryQuery, now: float, words: Sequence[str] | None,
        vector_dim: int | None, embedder: str | None,
    ) -> Candidates:
        import numpy as np

        rows = [row for rows in self._agents.values() for row in rows.values()
                if query.matches(row.entry, now)]
        vectors = None
        if vector_dim:
            vectors = np.zeros((len(rows), vector_dim), dtype=np.float32)
            for i, row in enumerate(rows):
                if row.comparable(vector_dim, embedder):
                    vectors[i] = row.vector
        return Candidates(
            refs=[(r.entry.agent_id, r.entry.key) for r in rows],
            agent_ids=[r.entry.agent_id for r in rows],
            keys=[r.entry.key for r in rows],
            importance=np.array([r.entry.importance for r in rows], dtype=np.float64),
            updated_at=np.array([r.entry.updated_at for r in rows], dtype=np.float64),
            keyword=np.array([coverage(words or (), r.words) for r in rows], dtype=np.float64),
            vectors=vectors,
        )
