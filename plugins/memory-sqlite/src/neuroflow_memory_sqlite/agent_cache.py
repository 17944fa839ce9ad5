"""An incremental in-process cache of each agent's ranking columns and embeddings.

Used by the PostgreSQL store: every write to an agent's entries bumps that agent's change
counter (and its delete counter for removals) in the counts table, and stamps the written
row with the new counter value (``seq``).  The counter is taken under the counts row's lock,
so for one agent the stamps commit in order.  A search first reads the two counters (one
indexed row); when they equal the cached ones the cache is fresh.  Otherwise it reads only
the rows stamped after the cached counter and, if something was deleted, the agent's list
of ids (no vectors) to drop what is gone.  Writes from other processes and machines are
therefore seen by the next search, without reading every vector again.

The cache is bounded by a number of entries and a number of bytes over all agents; the
least recently searched agents are dropped first, and an agent that alone exceeds a bound
is not cached (its searches read from the database).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Estimated bytes per cached row besides its vector (ids, floats, key and agent strings).
ROW_OVERHEAD = 160


class AgentColumns:
    """One agent's cached rows: parallel arrays with spare capacity, one vector size.

    Rows whose embedding has another size, or none, keep a zero vector (they never match
    a query of the cached size).  Row order is arbitrary; the ranker breaks ties by
    recency and key.
    """

    def __init__(self, agent_id: str, dim: int | None) -> None:
        self.agent_id = agent_id
        self.dim = dim
        self.changes = -1
        self.deletes = -1
        self.n = 0
        self._cap = 0
        self.ids = np.zeros(0, dtype=np.int64)
        self.importance = np.zeros(0, dtype=np.float64)
        self.updated_at = np.zeros(0, dtype=np.float64)
        self.expires_at = np.zeros(0, dtype=np.float64)
        self.dims = np.zeros(0, dtype=np.int64)
        self.models = np.zeros(0, dtype=np.int32)  # code of the embedder's name, 0 = none
        self.keys: list[str] = []
        self.matrix = np.zeros((0, dim or 0), dtype=np.float32)
        self._pos: dict[int, int] = {}
        self._codes: dict[str | None, int] = {None: 0}

    def clone(self) -> AgentColumns:
        """A copy to update, so that columns already handed out never change."""
        other = AgentColumns(self.agent_id, self.dim)
        other.changes, other.deletes, other.n, other._cap = (
            self.changes, self.deletes, self.n, self.n)
        for name in ("ids", "importance", "updated_at", "expires_at", "dims", "models",
                     "matrix"):
            setattr(other, name, getattr(self, name)[: self.n].copy())
        other.keys = list(self.keys)
        other._pos = dict(self._pos)
        other._codes = dict(self._codes)
        return other

    def position(self, rid: int) -> int | None:
        """Where row ``rid`` is, or ``None``."""
        return self._pos.get(rid)

    def nbytes(self) -> int:
        """Bytes held, estimated: the vectors plus a fixed overhead per row."""
        return int(self.matrix.nbytes) + self._cap * ROW_OVERHEAD

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, 2 * self._cap, 64)
        for name in ("ids", "importance", "updated_at", "expires_at", "dims", "models"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        matrix = np.zeros((cap, self.dim or 0), dtype=np.float32)
        matrix[: self.n] = self.matrix[: self.n]
        self.matrix = matrix
        self._cap = cap

    def code(self, model: str | None) -> int:
        """The small integer standing for an embedder name in :attr:`models`."""
        found = self._codes.get(model)
        if found is None:
            found = self._codes[model] = len(self._codes)
        return found

    def code_of(self, model: str | None) -> int:
        """The code of an embedder name, or -1 if no cached row has it."""
        return self._codes.get(model, -1)

    def upsert(self, rows: Sequence[Sequence[Any]]) -> None:
        """Add or replace rows ``(id, key, importance, updated_at, expires_at, dim,
        embedding, model)``."""
        self._grow(self.n + len(rows))
        for row in rows:
            rid = int(row[0])
            at = self._pos.get(rid)
            if at is None:
                at = self.n
                self.n += 1
                self._pos[rid] = at
                self.keys.append(row[1])
            else:
                self.keys[at] = row[1]
            self.ids[at] = rid
            self.importance[at] = row[2]
            self.updated_at[at] = row[3]
            self.expires_at[at] = np.inf if row[4] is None else row[4]
            dim, blob = row[5], row[6]
            self.dims[at] = dim or 0
            self.models[at] = self.code(row[7])
            if blob is not None and dim == self.dim:
                self.matrix[at] = np.frombuffer(blob, dtype=np.float32)
            else:
                self.matrix[at] = 0.0

    def keep_only(self, present: Sequence[int]) -> None:
        """Drop every cached row whose id is not in ``present`` (moving the last row in)."""
        alive = set(int(i) for i in present)
        for rid in [r for r in self._pos if r not in alive]:
            at = self._pos.pop(rid)
            last = self.n - 1
            if at != last:
                moved = int(self.ids[last])
                self._pos[moved] = at
                for column in (self.ids, self.importance, self.updated_at, self.expires_at,
                               self.dims, self.models, self.matrix):
                    column[at] = column[last]
                self.keys[at] = self.keys[last]
            self.keys.pop()
            self.n -= 1


class VectorCache:
    """Agents' :class:`AgentColumns`, least recently used dropped beyond the bounds."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._agents: OrderedDict[str, AgentColumns] = OrderedDict()
        self.lock = threading.Lock()
        #: per-agent locks, so one agent's refresh never waits for another's
        self._agent_locks: dict[str, threading.Lock] = {}

    @property
    def enabled(self) -> bool:
        """Whether anything may be cached at all."""
        return self.max_entries > 0 and self.max_bytes > 0

    def agent_lock(self, agent_id: str) -> threading.Lock:
        """The lock held while one agent's columns are refreshed."""
        with self.lock:
            found = self._agent_locks.get(agent_id)
            if found is None:
                found = self._agent_locks[agent_id] = threading.Lock()
            return found

    def get(self, agent_id: str) -> AgentColumns | None:
        """The agent's columns (marked as recently used), or ``None``."""
        with self.lock:
            found = self._agents.get(agent_id)
            if found is not None:
                self._agents.move_to_end(agent_id)
            return found

    def fits(self, rows: int, dim: int | None) -> bool:
        """Whether one agent of ``rows`` rows may be cached at all."""
        size = rows * ((dim or 0) * 4 + ROW_OVERHEAD)
        return self.enabled and rows <= self.max_entries and size <= self.max_bytes

    def put(self, columns: AgentColumns) -> None:
        """Keep ``columns``; drop other agents, oldest first, to stay within the bounds."""
        with self.lock:
            self._agents[columns.agent_id] = columns
            self._agents.move_to_end(columns.agent_id)
            self._trim()

    def drop(self, agent_id: str) -> None:
        """Forget one agent."""
        with self.lock:
            self._agents.pop(agent_id, None)

    def _trim(self) -> None:
        while len(self._agents) > 1 and (
                self.entries() > self.max_entries or self.nbytes() > self.max_bytes):
            self._agents.popitem(last=False)

    def entries(self) -> int:
        """Rows cached over all agents."""
        return sum(c.n for c in self._agents.values())

    def clone(self) -> AgentColumns:
        """A copy to update, so that columns already handed out never change."""
        other = AgentColumns(self.agent_id, self.dim)
        other.changes, other.deletes, other.n, other._cap = (
            self.changes, self.deletes, self.n, self.n)
        for name in ("ids", "importance", "updated_at", "expires_at", "dims", "models",
                     "matrix"):
            setattr(other, name, getattr(self, name)[: self.n].copy())
        other.keys = list(self.keys)
        other._pos = dict(self._pos)
        other._codes = dict(self._codes)
        return other

    def position(self, rid: int) -> int | None:
        """Where row ``rid`` is, or ``None``."""
        return self._pos.get(rid)

    def nbytes(self) -> int:
        """Bytes held over all agents (estimated, see :meth:`AgentColumns.nbytes`)."""
        return sum(c.nbytes() for c in self._agents.values())

    def clear(self) -> None:
        """Forget everything."""
        with self.lock:
            self._agents.clear()
