"""An incremental in-process cache of each agent's ranking columns and embeddings.

Used by the SQL store, on PostgreSQL and on SQLite: every write to an agent's entries bumps
that agent's change counter (and its delete counter for removals) in the counts table, and
stamps the written row with the new counter value (``seq``).  The counter is taken under
the counts row's lock (SQLite: the database's write lock), so for one agent the stamps
commit in order.  A search first reads the two counters (one
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


class _RowLog:
    """The rows behind successive versions of one agent's :class:`AgentColumns`, only ever
    appended to: each version reads the first rows it knows of, a refresh appends what
    changed (a replaced row comes again at the end), so no version's rows ever change
    under a search that is ranking them.

    Per row: the numpy columns of :data:`_ARRAYS` (with spare capacity, grown by
    doubling), the key, the value and tags as JSON text, and the slots of its indexed
    words.  A slot is one (row, word) pair: ``token_row``/``token_word`` say whose and
    which word; ``postings`` maps a word id to its slots, ascending (arrays never changed
    in place: a refresh replaces them with longer ones).
    """

    def __init__(self, dim: int | None) -> None:
        self.dim = dim
        self.filled = 0
        self.cap = 0
        self.ids = np.zeros(0, dtype=np.int64)
        self.importance = np.zeros(0, dtype=np.float64)
        self.updated_at = np.zeros(0, dtype=np.float64)
        self.expires_at = np.zeros(0, dtype=np.float64)
        self.dims = np.zeros(0, dtype=np.int64)
        self.models = np.zeros(0, dtype=np.int32)  # code of the embedder's name, 0 = none
        self.created_at = np.zeros(0, dtype=np.float64)
        self.versions = np.zeros(0, dtype=np.int64)
        self.tstart = np.zeros(0, dtype=np.int64)
        self.tcount = np.zeros(0, dtype=np.int64)
        self.matrix = np.zeros((0, dim or 0), dtype=np.float32)
        self.keys: list[str] = []
        self.values: list[str | None] = []  # JSON text, None when too long to keep
        self.tags: list[str] = []  # JSON text
        self.text_bytes = 0
        self.codes: dict[str | None, int] = {None: 0}
        self.vocab: dict[str, int] = {}
        self.vocab_bytes = 0
        self.postings: dict[int, Any] = {}
        self.postings_bytes = 0
        self.token_row = np.zeros(0, dtype=np.int32)
        self.token_word = np.zeros(0, dtype=np.int32)
        self.token_n = 0

    def reserve(self, more: int) -> None:
        """Room for ``more`` rows after the filled ones (a first fill takes what it needs;
        later growth doubles, so appending one row at a time copies little over time)."""
        need = self.filled + more
        if need <= self.cap:
            return
        cap = need if self.cap == 0 else max(need, 2 * self.cap)
        for name in _ARRAYS:
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[: self.filled] = old[: self.filled]
            setattr(self, name, new)  # readers of the old array still see their rows
        self.cap = cap

    def code(self, model: str | None) -> int:
        """The small integer standing for an embedder name in :attr:`models`."""
        found = self.codes.get(model)
        if found is None:
            found = self.codes[model] = len(self.codes)
        return found

    def word_ids(self, words: str | None) -> list[int]:
        """The ids of space-separated ``words`` (new words get the next ids)."""
        vocab = self.vocab
        out = []
        for w in (words or "").split():
            found = vocab.get(w)
            if found is None:
                found = vocab[w] = len(vocab)
                self.vocab_bytes += sys.getsizeof(w) + WORD_OVERHEAD
            out.append(found)
        return out

    def append_tokens(self, words: Any, owners: Any) -> None:
        """Give these (word id, row) pairs the next slots and add those to the postings."""
        first, need = self.token_n, self.token_n + len(words)
        if need > len(self.token_row):
            size = max(need, 2 * len(self.token_row))
            for name in ("token_row", "token_word"):
                old = getattr(self, name)
                new = np.zeros(size, dtype=np.int32)
                new[:first] = old[:first]
                setattr(self, name, new)
        self.token_row[first:need] = owners
        self.token_word[first:need] = words
        self.token_n = need
        if not len(words):
            return
        words = np.asarray(words, dtype=np.int64)
        order = np.argsort(words, kind="stable")
        sorted_words = words[order]
        starts = np.flatnonzero(np.r_[True, sorted_words[1:] != sorted_words[:-1]])
        slots = order + first
        for word, part in zip(sorted_words[starts].tolist(),
                              np.split(slots, starts[1:]), strict=True):
            old = self.postings.get(word)
            self.postings[word] = part if old is None else np.concatenate((old, part))
            self.postings_bytes += part.nbytes + (0 if old is not None else 96)

    def nbytes(self) -> int:
        """Bytes held, estimated (see :meth:`AgentColumns.nbytes`)."""
        return (int(self.matrix.nbytes) + self.cap * ROW_OVERHEAD + self.text_bytes
                + int(self.token_row.nbytes) * 2 + self.postings_bytes + self.vocab_bytes)


class AgentColumns:
    """One agent's cached rows as seen at one moment: parallel arrays, one vector size.

    Successive versions share one :class:`_RowLog`; this version holds its first
    :attr:`n` rows, of which those marked in :attr:`alive` are the agent's entries (the
    others were replaced, removed, or appended by a refresh that was never kept).
    :meth:`clone` makes the next version, which :meth:`upsert` and :meth:`keep_only`
    change without changing this one; once a quarter of its rows are dead, a version is
    compacted into a log of its own.

    Rows whose embedding has another size, or none, keep a zero vector (they never match
    a query of the cached size).  Row order is arbitrary; the ranker breaks ties by
    recency and key.
    """

    def __init__(self, agent_id: str, dim: int | None, log: _RowLog | None = None) -> None:
        self.agent_id = agent_id
        self.dim = dim
        self.changes = -1
        self.deletes = -1
        #: The store's count of its own writes when these rows were read (-1: unknown).
        self.epoch = -1
        self._log = log if log is not None else _RowLog(dim)
        self.n = self._log.filled
        self.token_n = self._log.token_n
        self.alive = np.zeros(self.n, dtype=bool)
        self._pos: dict[int, int] = {}
        self._top: float | None = None
        self._soonest: float | None = None
        self._models_used: frozenset[tuple[int, int]] | None = None

    # The log's columns: a version reads only their first ``n`` rows.
    ids = property(lambda self: self._log.ids, doc="Row ids (int64).")
    importance = property(lambda self: self._log.importance, doc="Importance (float64).")
    updated_at = property(lambda self: self._log.updated_at, doc="Update times (float64).")
    expires_at = property(lambda self: self._log.expires_at,
                          doc="Expiry times (float64, ``inf``: never).")
    dims = property(lambda self: self._log.dims, doc="Vector sizes (0: none).")
    models = property(lambda self: self._log.models, doc="Embedder codes (0: none).")
    created_at = property(lambda self: self._log.created_at, doc="Creation times.")
    versions = property(lambda self: self._log.versions, doc="Entry versions.")
    matrix = property(lambda self: self._log.matrix, doc="Vectors (float32 rows).")
    keys = property(lambda self: self._log.keys, doc="Keys.")
    values = property(lambda self: self._log.values, doc="Values as JSON text (or None).")
    tags = property(lambda self: self._log.tags, doc="Tags as JSON text.")

    @property
    def live(self) -> int:
        """How many of the rows are the agent's entries (the others are dead)."""
        return len(self._pos)

    def clone(self) -> AgentColumns:
        """The next version, to update: this one never changes."""
        other = AgentColumns(self.agent_id, self.dim, self._log)
        other.changes, other.deletes = self.changes, self.deletes
        # Rows appended after this version by a refresh that was not kept stay dead.
        other.alive[: self.n] = self.alive
        other._pos = dict(self._pos)
        return other

    def position(self, rid: int) -> int | None:
        """Where row ``rid`` is, or ``None``."""
        return self._pos.get(rid)

    def nbytes(self) -> int:
        """Bytes held, estimated: the vectors, the kept texts, the word index, a fixed
        overhead per row (dead rows and spare room included, and the rows of the log's
        later versions once there are any)."""
        return self._log.nbytes() + self.n + 80 * len(self._pos)

    def keyword(self, words: Sequence[str]) -> Any:
        """Per row, the fraction of ``words`` (distinct) its indexed words hold."""
        n = self.n
        rows = self._word_rows(words)
        if rows is None:
            return np.zeros(n, dtype=np.float64)
        return np.bincount(rows, minlength=n)[:n] / len(words)

    def _word_rows(self, words: Sequence[str]) -> Any:
        """The row of each slot of this version holding one of ``words`` (``None``: none)."""
        log, limit = self._log, self.token_n
        slots = []
        for w in words:
            found = log.postings.get(log.vocab.get(w, -1))
            if found is not None:
                slots.append(found[: int(np.searchsorted(found, limit))])
        if not slots:
            return None
        return log.token_row[np.concatenate(slots) if len(slots) > 1 else slots[0]]

    def top_importance(self) -> float:
        """The highest importance of any live row (1.0 when there is none).

        This and :meth:`soonest_expiry` and :meth:`models_used` are computed once per
        version, as those never change once handed out.
        """
        if self._top is None:
            self._top = float(self.importance[: self.n][self.alive].max()) if self.live \
                else 1.0
        return self._top

    def soonest_expiry(self) -> float:
        """The earliest expiry of any live row (``inf``: none expires)."""
        if self._soonest is None:
            self._soonest = float(self.expires_at[: self.n][self.alive].min()) if self.live \
                else np.inf
        return self._soonest

    def models_used(self) -> frozenset[tuple[int, int]]:
        """The distinct (vector size, embedder code) pairs of the live rows."""
        if self._models_used is None:
            n, alive = self.n, self.alive
            self._models_used = frozenset(zip(self.dims[:n][alive].tolist(),
                                              self.models[:n][alive].tolist(), strict=True))
        return self._models_used

    def all_comparable(self, dim: int, model: str | None) -> bool:
        """Whether every live row's vector has size ``dim`` and was made by ``model``
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
        """The live rows holding any of ``words`` (distinct), ascending, and the fraction
        of ``words`` each holds: :meth:`keyword` without a pass over every row."""
        rows = self._word_rows(words)
        if rows is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        rows, counts = np.unique(rows, return_counts=True)
        if self.live < self.n:
            keep = self.alive[rows]
            rows, counts = rows[keep], counts[keep]
        return rows.astype(np.int64), counts / len(words)

    def entry(self, at: int) -> MemoryEntry | None:
        """The entry of the row at ``at``, or ``None`` if its value was too long to keep."""
        log = self._log
        value = log.values[at]
        if value is None:
            return None
        expires = float(log.expires_at[at])
        return MemoryEntry(
            agent_id=self.agent_id, key=log.keys[at], value=json.loads(value),
            tags=tuple(json.loads(log.tags[at])), importance=float(log.importance[at]),
            created_at=float(log.created_at[at]), updated_at=float(log.updated_at[at]),
            expires_at=None if expires == np.inf else expires,
            version=int(log.versions[at]))

    def code_of(self, model: str | None) -> int:
        """The code of an embedder name, or -1 if no cached row has it."""
        return self._log.codes.get(model, -1)

    def upsert(self, rows: Sequence[Sequence[Any]]) -> None:
        """Add or replace rows of :data:`ROW_COLUMNS` (a row id given twice: the last).

        Every row is appended (a replaced row's old place dies), so only this version and
        later ones see it.
        """
        rows = list({int(r[0]): r for r in rows}.values())
        if not rows:
            return
        log = self._log
        if log.filled != self.n:
            raise RuntimeError("only the newest version of an agent's columns is updated")
        first, k = log.filled, len(rows)
        log.reserve(k)
        end = first + k
        alive = np.zeros(end, dtype=bool)
        alive[: self.n] = self.alive
        alive[first:end] = True
        pos = self._pos
        words: list[int] = []
        owners: list[int] = []
        for i, row in enumerate(rows):
            rid, at = int(row[0]), first + i
            old = pos.get(rid)
            if old is not None:
                alive[old] = False
            pos[rid] = at
            ids = log.word_ids(row[12])
            log.tstart[at] = log.token_n + len(words)
            log.tcount[at] = len(ids)
            words += ids
            owners += [at] * len(ids)
        log.ids[first:end] = [int(r[0]) for r in rows]
        log.importance[first:end] = [r[2] for r in rows]
        log.updated_at[first:end] = [r[3] for r in rows]
        log.expires_at[first:end] = [np.inf if r[4] is None else r[4] for r in rows]
        log.dims[first:end] = [r[5] or 0 for r in rows]
        log.models[first:end] = [log.code(r[7]) for r in rows]
        log.created_at[first:end] = [r[10] for r in rows]
        log.versions[first:end] = [r[11] for r in rows]
        good = [r[6] is not None and r[5] == self.dim for r in rows]
        if all(good):
            log.matrix[first:end] = np.frombuffer(b"".join([r[6] for r in rows]),
                                                  dtype=np.float32).reshape(k, -1)
        else:
            for i, row in enumerate(rows):
                log.matrix[first + i] = np.frombuffer(row[6], dtype=np.float32) \
                    if good[i] else 0.0
        # Last, what cannot fail: a refresh that raised before here (a bad row) leaves
        # the log as it was for the next one (appended slots and rows beyond its filled
        # part are written over).
        log.append_tokens(words, owners)
        log.keys += [r[1] for r in rows]
        log.values += [r[8] for r in rows]
        log.tags += [r[9] for r in rows]
        log.text_bytes += sum(_text_size(r[8]) + _text_size(r[9]) for r in rows)
        log.filled = end
        self.n, self.token_n, self.alive = end, log.token_n, alive
        self._changed()

    def keep_only(self, present: Sequence[int]) -> None:
        """Drop every cached row whose id is not in ``present``."""
        kept = set(int(i) for i in present)
        for rid in [r for r in self._pos if r not in kept]:
            self.alive[self._pos.pop(rid)] = False
        self._changed()

    def compacts_after(self, rows: int) -> bool:
        """Whether the next version may be compacted once ``rows`` rows more are dead
        (compacting copies every live row: a refresh that does should not hold up a
        search on the event loop)."""
        return self._too_dead(self.n - self.live + rows, self.live - rows)

    @staticmethod
    def _too_dead(dead: int, live: int) -> bool:
        return dead > max(256, live // 4)

    def _changed(self) -> None:
        self._top = self._soonest = self._models_used = None
        if self._too_dead(self.n - self.live, self.live):
            self._compact()

    def _compact(self) -> None:
        """Move this version's live rows into a log of its own (in their order)."""
        old, keep = self._log, np.flatnonzero(self.alive)
        k = len(keep)
        log = _RowLog(self.dim)
        log.reserve(k)
        for name in _ARRAYS:
            if name not in ("tstart", "tcount"):
                getattr(log, name)[:k] = getattr(old, name)[keep]
        log.keys = [old.keys[i] for i in keep]
        log.values = [old.values[i] for i in keep]
        log.tags = [old.tags[i] for i in keep]
        log.text_bytes = sum(_text_size(v) + _text_size(t)
                             for v, t in zip(log.values, log.tags, strict=True))
        log.codes = dict(old.codes)
        log.vocab, log.vocab_bytes = dict(old.vocab), old.vocab_bytes
        counts = old.tcount[keep]
        starts = old.tstart[keep]
        log.tcount[:k] = counts
        log.tstart[:k] = np.cumsum(counts) - counts
        total = int(counts.sum())
        # The slots of every kept row, in row order: its start, plus 0..count-1.
        slots = np.repeat(starts - log.tstart[:k], counts) + np.arange(total, dtype=np.int64)
        log.append_tokens(old.token_word[slots], np.repeat(np.arange(k), counts))
        log.filled = k
        self._log, self.n, self.token_n = log, k, log.token_n
        self.alive = np.ones(k, dtype=bool)
        self._pos = {int(rid): i for i, rid in enumerate(log.ids[:k].tolist())}


#: The per-row numpy columns of a :class:`_RowLog`.
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
        self._counted: dict[str, tuple[int, int]] = {}  # (entries, bytes) when put
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
        return self.enabled and columns.live <= self.max_entries and \
            columns.nbytes() <= self.max_bytes

    def put(self, columns: AgentColumns) -> None:
        """Keep ``columns``; drop other agents, oldest first, to stay within the bounds.

        Their entries and bytes are counted as they are now (a later version of the same
        agent may add to the memory this one shares with it: it is counted then).
        """
        with self.lock:
            self._pop(columns.agent_id)
            counted = (columns.live, columns.nbytes())
            self._agents[columns.agent_id] = columns
            self._counted[columns.agent_id] = counted
            self._rows += counted[0]
            self._bytes += counted[1]
            while len(self._agents) > 1 and (
                    self._rows > self.max_entries or self._bytes > self.max_bytes):
                self._pop(next(iter(self._agents)))

    def has_room(self, agent_id: str, rows: int, dim: int | None) -> bool:
        """Whether ``rows`` rows of this agent (estimated as :meth:`fits` does) fit beside
        every other agent cached now, without dropping any."""
        with self.lock:
            held_rows, held_bytes = self._counted.get(agent_id, (0, 0))
            other_rows = self._rows - held_rows
            other_bytes = self._bytes - held_bytes
        return self.fits(rows, dim) and other_rows + rows <= self.max_entries and \
            other_bytes + rows * ((dim or 0) * 4 + ROW_OVERHEAD) <= self.max_bytes

    def drop(self, agent_id: str) -> None:
        """Forget one agent."""
        with self.lock:
            self._pop(agent_id)

    def _pop(self, agent_id: str) -> None:
        if self._agents.pop(agent_id, None) is not None:
            rows, nbytes = self._counted.pop(agent_id)
            self._rows -= rows
            self._bytes -= nbytes

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
            self._counted.clear()
            self._rows = self._bytes = 0
