"""An incremental in-process cache of each agent's ranking columns and embeddings.

Used by the PostgreSQL store: every write to an agent's entries bumps that agent's change
counter (and its delete counter for removals) in the counts table, and stamps the written
row with the new counter value (``seq``).  The counter is taken under the counts row's lock,
so for one agent the stamps commit in order.  A search first reads the two counters (one
indexed row); when they equal the cached ones the cache is fresh.  Otherwise it reads only
the rows stamped after the cached counter and, if something was deleted, the agent's list
of ids (no vectors) to drop what is gone.  Writes from other processes and machines are
therefore seen by the next search, without reading every vector again.

Each row's whole entry is kept too (its value and tags as their JSON text, up to
:data:`VALUE_CHARS` characters; a longer value is read when it is a winner), so a search
answered from a fresh cache resolves its winners without another query.  So are its
indexed words, as a small inverted index (per word, the slots of the rows holding it):
keyword scores come from the cache as well, in time proportional to the query words'
hits, instead of the full-text index, whose hits for a large agent in a large table cost
tens of milliseconds to intersect with the agent's rows.

The cache is bounded by a number of entries and a number of bytes over all agents; the
least recently searched agents are dropped first, and an agent that alone exceeds a bound
is not cached (its searches read from the database).
"""

from __future__ import annotations

import json
import sys
import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from neuroflow.memory import MemoryEntry

#: Estimated bytes per cached row besides its vector and texts (ids, numbers, the key, the
#: position map); used to decide before reading an agent whether it may fit.
ROW_OVERHEAD = 260
#: Values whose JSON text is longer are not kept (read from the database when needed).
VALUE_CHARS = 16384

#: Columns a cache refresh reads, in :meth:`AgentColumns.upsert` order.
ROW_COLUMNS = ("id, key, importance, updated_at, expires_at, dim, embedding, model, "
               f"CASE WHEN length(value) <= {VALUE_CHARS} THEN value END, tags, created_at, "
               "version, words")
#: Estimated bytes of one distinct word in an agent's vocabulary besides its text.
WORD_OVERHEAD = 100


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
        self.created_at = np.zeros(0, dtype=np.float64)
        self.versions = np.zeros(0, dtype=np.int64)
        self.keys: list[str] = []
        self.values: list[str | None] = []  # JSON text, None when too long to keep
        self.tags: list[str] = []  # JSON text
        self.text_bytes = 0
        self.matrix = np.zeros((0, dim or 0), dtype=np.float32)
        self._pos: dict[int, int] = {}
        self._codes: dict[str | None, int] = {None: 0}
        # Indexed words: row ``r``'s words own the slots tstart[r] : tstart[r] + tcount[r];
        # token_row says whose each slot is (-1: replaced or removed since); postings
        # maps a word id to the slots of its rows (arrays never changed in place, so a
        # clone shares them).
        self.tstart = np.zeros(0, dtype=np.int64)
        self.tcount = np.zeros(0, dtype=np.int64)
        self.vocab: dict[str, int] = {}
        self.vocab_bytes = 0
        self.postings: dict[int, Any] = {}
        self.postings_bytes = 0
        self.token_row = np.zeros(0, dtype=np.int32)
        self.token_n = 0
        self.token_dead = 0
        self._top: float | None = None
        self._soonest: float | None = None
        self._models_used: frozenset[tuple[int, int]] | None = None

    def clone(self) -> AgentColumns:
        """A copy to update, so that columns already handed out never change."""
        other = AgentColumns(self.agent_id, self.dim)
        other.changes, other.deletes, other.n, other._cap = (
            self.changes, self.deletes, self.n, self.n)
        for name in _ARRAYS:
            setattr(other, name, getattr(self, name)[: self.n].copy())
        other.keys = list(self.keys)
        other.values = list(self.values)
        other.tags = list(self.tags)
        other.text_bytes = self.text_bytes
        other._pos = dict(self._pos)
        other._codes = dict(self._codes)
        other.vocab = dict(self.vocab)
        other.vocab_bytes = self.vocab_bytes
        other.postings = dict(self.postings)
        other.postings_bytes = self.postings_bytes
        other.token_row = self.token_row[: self.token_n].copy()
        other.token_n, other.token_dead = self.token_n, self.token_dead
        return other

    def position(self, rid: int) -> int | None:
        """Where row ``rid`` is, or ``None``."""
        return self._pos.get(rid)

    def nbytes(self) -> int:
        """Bytes held, estimated: the vectors, the kept texts, the word index, a fixed
        overhead per row."""
        return (int(self.matrix.nbytes) + self._cap * ROW_OVERHEAD + self.text_bytes
                + int(self.token_row.nbytes) + self.postings_bytes + self.vocab_bytes)

    def keyword(self, words: Sequence[str]) -> Any:
        """Per row, the fraction of ``words`` (distinct) its indexed words hold."""
        n = self.n
        found = (self.postings.get(self.vocab.get(w, -1)) for w in words)
        slots = [p for p in found if p is not None]
        if not slots:
            return np.zeros(n, dtype=np.float64)
        rows = self.token_row[np.concatenate(slots) if len(slots) > 1 else slots[0]]
        counts = np.bincount(rows[rows >= 0], minlength=n)[:n]
        return counts / len(words)

    def top_importance(self) -> float:
        """The highest importance of any cached row (1.0 when there is none).

        This and :meth:`soonest_expiry` and :meth:`models_used` are computed once per
        columns put in the cache, as those never change.
        """
        if self._top is None:
            self._top = float(self.importance[: self.n].max()) if self.n else 1.0
        return self._top

    def soonest_expiry(self) -> float:
        """The earliest expiry of any cached row (``inf``: none expires)."""
        if self._soonest is None:
            self._soonest = float(self.expires_at[: self.n].min()) if self.n else np.inf
        return self._soonest

    def models_used(self) -> frozenset[tuple[int, int]]:
        """The distinct (vector size, embedder code) pairs of the cached rows."""
        if self._models_used is None:
            n = self.n
            self._models_used = frozenset(zip(self.dims[:n].tolist(), self.models[:n].tolist(),
                                              strict=True))
        return self._models_used

    def all_comparable(self, dim: int, model: str | None) -> bool:
        """Whether every cached row's vector has size ``dim`` and was made by ``model``
        (or by an unnamed embedder); ``model`` ``None``: any embedder."""
        wanted = {0, self.code_of(model)} if model is not None else None
        return not any(d != dim or (wanted is not None and code not in wanted)
                       for d, code in self.models_used())

    def comparable(self, dim: int, model: str | None, at: Any = None) -> Any:
        """Per row (the first ``n``, or those at positions ``at``), whether its vector is
        comparable with a query vector of size ``dim`` by ``model`` (as
        :meth:`all_comparable`); the others count as not similar at all."""
        good = (self.dims[: self.n] if at is None else self.dims[at]) == dim
        if model is not None:
            codes = self.models[: self.n] if at is None else self.models[at]
            good &= (codes == self.code_of(model)) | (codes == 0)
        return good

    def positions(self, ids: Sequence[int]) -> list[int | None]:
        """Where each of these row ids is (``None``: not cached)."""
        get = self._pos.get
        return [get(i) for i in ids]

    def keyword_hits(self, words: Sequence[str]) -> tuple[Any, Any]:
        """The rows holding any of ``words`` (distinct), ascending, and the fraction of
        ``words`` each holds: :meth:`keyword` without a pass over every row."""
        found = (self.postings.get(self.vocab.get(w, -1)) for w in words)
        slots = [p for p in found if p is not None]
        if not slots:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        rows = self.token_row[np.concatenate(slots) if len(slots) > 1 else slots[0]]
        rows, counts = np.unique(rows[rows >= 0], return_counts=True)
        return rows.astype(np.int64), counts / len(words)

    def _word_ids(self, words: str | None) -> list[int]:
        vocab = self.vocab
        out = []
        for w in (words or "").split():
            found = vocab.get(w)
            if found is None:
                found = vocab[w] = len(vocab)
                self.vocab_bytes += sys.getsizeof(w) + WORD_OVERHEAD
            out.append(found)
        return out

    def _kill_tokens(self, at: int) -> None:
        start, count = int(self.tstart[at]), int(self.tcount[at])
        if count:
            self.token_row[start : start + count] = -1
            self.token_dead += count

    def _append_tokens(self, tokens: list[int], owners: list[int]) -> None:
        """Give the new rows' words the next slots and add those to the postings."""
        first, need = self.token_n, self.token_n + len(tokens)
        if need > len(self.token_row):
            new = np.zeros(max(need, 2 * len(self.token_row)), dtype=np.int32)
            new[:first] = self.token_row[:first]
            self.token_row = new
        self.token_row[first:need] = owners
        self.token_n = need
        if not tokens:
            return
        words = np.asarray(tokens, dtype=np.int64)
        order = np.argsort(words, kind="stable")
        sorted_words = words[order]
        starts = np.flatnonzero(np.r_[True, sorted_words[1:] != sorted_words[:-1]])
        slots = order + first
        for word, part in zip(sorted_words[starts].tolist(),
                              np.split(slots, starts[1:]), strict=True):
            old = self.postings.get(word)
            self.postings[word] = part if old is None else np.concatenate((old, part))
            self.postings_bytes += part.nbytes + (0 if old is not None else 96)

    def _compact_tokens(self) -> None:
        """Drop dead word slots once they are most of them (renumbering the rest)."""
        if self.token_dead <= max(1024, self.token_n // 2):
            return
        live = self.token_row[: self.token_n] >= 0
        moved = np.cumsum(live) - 1
        n = self.n
        has = self.tcount[:n] > 0
        self.tstart[:n] = np.where(has, moved[np.where(has, self.tstart[:n], 0)], 0)
        postings = {}
        for word, slots in self.postings.items():
            kept = slots[live[slots]]
            if len(kept):
                postings[word] = moved[kept]
        self.postings = postings
        self.postings_bytes = sum(a.nbytes + 96 for a in postings.values())
        self.token_row = self.token_row[: self.token_n][live].copy()
        self.token_n = len(self.token_row)
        self.token_dead = 0

    def entry(self, at: int) -> MemoryEntry | None:
        """The entry of the row at ``at``, or ``None`` if its value was too long to keep."""
        value = self.values[at]
        if value is None:
            return None
        expires = float(self.expires_at[at])
        return MemoryEntry(
            agent_id=self.agent_id, key=self.keys[at], value=json.loads(value),
            tags=tuple(json.loads(self.tags[at])), importance=float(self.importance[at]),
            created_at=float(self.created_at[at]), updated_at=float(self.updated_at[at]),
            expires_at=None if expires == np.inf else expires,
            version=int(self.versions[at]))

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        # A first fill takes what it needs; later growth doubles (few copies over time).
        cap = need if self._cap == 0 else max(need, 2 * self._cap)
        for name in _ARRAYS[:-1]:
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
        """Add or replace rows of :data:`ROW_COLUMNS` (a row id given twice: the last)."""
        rows = list({int(r[0]): r for r in rows}.values())
        self._grow(self.n + len(rows))
        tokens: list[int] = []
        owners: list[int] = []
        for row in rows:
            rid = int(row[0])
            at = self._pos.get(rid)
            value, tags = row[8], row[9]
            size = _text_size(value) + _text_size(tags)
            if at is None:
                at = self.n
                self.n += 1
                self._pos[rid] = at
                self.keys.append(row[1])
                self.values.append(value)
                self.tags.append(tags)
            else:
                self.text_bytes -= _text_size(self.values[at]) + _text_size(self.tags[at])
                self.keys[at] = row[1]
                self.values[at] = value
                self.tags[at] = tags
                self._kill_tokens(at)
            ids = self._word_ids(row[12])
            self.tstart[at] = self.token_n + len(tokens)
            self.tcount[at] = len(ids)
            tokens += ids
            owners += [at] * len(ids)
            self.text_bytes += size
            self.created_at[at] = row[10]
            self.versions[at] = row[11]
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
        self._append_tokens(tokens, owners)
        self._compact_tokens()

    def keep_only(self, present: Sequence[int]) -> None:
        """Drop every cached row whose id is not in ``present`` (moving the last row in)."""
        alive = set(int(i) for i in present)
        for rid in [r for r in self._pos if r not in alive]:
            at = self._pos.pop(rid)
            self.text_bytes -= _text_size(self.values[at]) + _text_size(self.tags[at])
            self._kill_tokens(at)
            last = self.n - 1
            if at != last:
                moved = int(self.ids[last])
                self._pos[moved] = at
                for name in _ARRAYS:
                    column = getattr(self, name)
                    column[at] = column[last]
                for texts in (self.keys, self.values, self.tags):
                    texts[at] = texts[last]
                start, count = int(self.tstart[at]), int(self.tcount[at])
                self.token_row[start : start + count] = at
            for texts in (self.keys, self.values, self.tags):
                texts.pop()
            self.n -= 1
        self._compact_tokens()


#: The per-row numpy columns (``matrix`` last: it has two dimensions).
_ARRAYS = ("ids", "importance", "updated_at", "expires_at", "dims", "models", "created_at",
           "versions", "tstart", "tcount", "matrix")


def _text_size(text: str | None) -> int:
    return 0 if text is None else sys.getsizeof(text)


class CachedRef:
    """A search candidate from the cache: its entry as the cached columns it was ranked
    from hold it (see ``SqlStore.get_many`` for when that is used).

    Attributes:
        epoch: the store's count of its own writes when the search began.
    """

    __slots__ = ("at", "cols", "epoch")

    def __init__(self, cols: AgentColumns, at: int, epoch: int) -> None:
        self.cols, self.at, self.epoch = cols, at, epoch

    @property
    def id(self) -> int:
        """The row id."""
        return int(self.cols.ids[self.at])

    def entry(self) -> MemoryEntry | None:
        """The cached entry, or ``None`` if its value was not kept."""
        return self.cols.entry(self.at)

    def agent_key(self) -> tuple[str, str]:
        """The candidate's agent and key."""
        return self.cols.agent_id, self.cols.keys[self.at]

    def __int__(self) -> int:
        return self.id

    def __repr__(self) -> str:
        return f"CachedRef({self.id})"


class _RowsView(Sequence[Any]):
    """A sequence over an agent's cached rows ``positions`` (``None``: the first ``n``),
    each item made from its row only when asked for (the ranker reads few of them)."""

    __slots__ = ("n", "positions")

    def __init__(self, positions: Any, n: int) -> None:
        self.positions, self.n = positions, n

    def __len__(self) -> int:
        return self.n if self.positions is None else len(self.positions)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._item(int(i) if self.positions is None else int(self.positions[i]))

    @abstractmethod
    def _item(self, at: int) -> Any:
        """The item of the row at ``at``."""


class CachedRefs(_RowsView):
    """The refs of a search from the cache: a :class:`CachedRef` per row of ``cols``."""

    __slots__ = ("cols", "epoch")

    def __init__(self, cols: AgentColumns, positions: Any, n: int, epoch: int) -> None:
        super().__init__(positions, n)
        self.cols, self.epoch = cols, epoch

    def _item(self, at: int) -> CachedRef:
        return CachedRef(self.cols, at, self.epoch)


class PickedKeys(_RowsView):
    """The keys of the rows: ``keys[at]`` per row (an agent's cached keys)."""

    __slots__ = ("keys",)

    def __init__(self, keys: list[str], positions: Any, n: int) -> None:
        super().__init__(positions, n)
        self.keys = keys

    def _item(self, at: int) -> str:
        return self.keys[at]


class VectorCache:
    """Agents' :class:`AgentColumns`, least recently used dropped beyond the bounds."""

    #: Refresh locks are striped over this many locks (bounded memory, however many agents).
    STRIPES = 64

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._agents: OrderedDict[str, AgentColumns] = OrderedDict()
        self.lock = threading.Lock()
        self._rows = 0
        self._bytes = 0
        self._stripes = [threading.Lock() for _ in range(self.STRIPES)]

    @property
    def enabled(self) -> bool:
        """Whether anything may be cached at all."""
        return self.max_entries > 0 and self.max_bytes > 0

    def agent_lock(self, agent_id: str) -> threading.Lock:
        """The lock held while one agent's columns are refreshed (shared by a few agents)."""
        return self._stripes[hash(agent_id) % self.STRIPES]

    def get(self, agent_id: str) -> AgentColumns | None:
        """The agent's columns (marked as recently used), or ``None``."""
        with self.lock:
            found = self._agents.get(agent_id)
            if found is not None:
                self._agents.move_to_end(agent_id)
            return found

    def fits(self, rows: int, dim: int | None) -> bool:
        """Whether one agent of ``rows`` rows may be cached at all (estimated before
        reading it: its vectors and the fixed overhead, not its texts)."""
        return rows <= self.max_rows(dim)

    def max_rows(self, dim: int | None) -> int:
        """The most rows of vectors of size ``dim`` one agent may have to be cached (-1:
        none; see :meth:`fits`)."""
        if not self.enabled:
            return -1
        return min(self.max_entries, self.max_bytes // ((dim or 0) * 4 + ROW_OVERHEAD))

    def holds(self, columns: AgentColumns) -> bool:
        """Whether these columns, as read, may be cached (within both bounds alone)."""
        return self.enabled and columns.n <= self.max_entries and \
            columns.nbytes() <= self.max_bytes

    def put(self, columns: AgentColumns) -> None:
        """Keep ``columns``; drop other agents, oldest first, to stay within the bounds.

        Columns never change once put (a refresh puts a new copy), so their size is
        counted once.
        """
        with self.lock:
            self._pop(columns.agent_id)
            self._agents[columns.agent_id] = columns
            self._rows += columns.n
            self._bytes += columns.nbytes()
            while len(self._agents) > 1 and (
                    self._rows > self.max_entries or self._bytes > self.max_bytes):
                self._pop(next(iter(self._agents)))

    def has_room(self, agent_id: str, rows: int, dim: int | None) -> bool:
        """Whether ``rows`` rows of this agent (estimated as :meth:`fits` does) fit beside
        every other agent cached now, without dropping any."""
        with self.lock:
            held = self._agents.get(agent_id)
            other_rows = self._rows - (held.n if held is not None else 0)
            other_bytes = self._bytes - (held.nbytes() if held is not None else 0)
        return self.fits(rows, dim) and other_rows + rows <= self.max_entries and \
            other_bytes + rows * ((dim or 0) * 4 + ROW_OVERHEAD) <= self.max_bytes

    def drop(self, agent_id: str) -> None:
        """Forget one agent."""
        with self.lock:
            self._pop(agent_id)

    def _pop(self, agent_id: str) -> None:
        gone = self._agents.pop(agent_id, None)
        if gone is not None:
            self._rows -= gone.n
            self._bytes -= gone.nbytes()

    def entries(self) -> int:
        """Rows cached over all agents."""
        return self._rows

    def nbytes(self) -> int:
        """Bytes held over all agents (estimated, see :meth:`AgentColumns.nbytes`)."""
        return self._bytes

    def agents(self) -> int:
        """How many agents are cached."""
        return len(self._agents)

    def clear(self) -> None:
        """Forget everything."""
        with self.lock:
            self._agents.clear()
            self._rows = self._bytes = 0
