"""The data a memory store holds and answers with: entries, history records, queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

#: A JSON value: what ``value`` may hold.
JSON = Any


@attrs.frozen
class MemoryEntry:
    """One memory.

    Times are seconds since the epoch (UTC), as floats.

    Attributes:
        agent_id: the agent the memory belongs to.
        key: its key, unique per agent.
        value: any JSON value.
        tags: the entry's tags, in the order first given, without duplicates.
        importance: 0..1; higher is kept longer and ranks higher.
        created_at: when the key was first stored (since it last did not exist).
        updated_at: when it was last written.
        expires_at: when it stops being returned, or ``None``.
        version: 1 when created, +1 on every write; pass it as ``expected_version``.
        score: the search score (only on search results).
        explain: each term of the score (only with ``search_memories(explain=True)``).
        evicted: only on what ``store_memory`` returns: ``True`` when the new entry was
            itself evicted at once by ``max_entries`` (it had the lowest importance), so
            it is not stored any more.
    """

    agent_id: str
    key: str
    value: JSON
    tags: tuple[str, ...] = ()
    importance: float = 0.5
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None
    version: int = 1
    score: float | None = attrs.field(default=None, eq=False)
    explain: Mapping[str, float] | None = attrs.field(default=None, eq=False)
    evicted: bool = attrs.field(default=False, eq=False)

    def scored(self, score: float, explain: Mapping[str, float] | None = None
               ) -> MemoryEntry:
        """This entry as a search result: with its ``score`` (and ``explain``)."""
        # The fields written out: attrs.evolve inspects them on every call.
        return MemoryEntry(self.agent_id, self.key, self.value, self.tags, self.importance,
                           self.created_at, self.updated_at, self.expires_at, self.version,
                           score, explain, self.evicted)

    def is_expired(self, now: float) -> bool:
        """Whether the entry has expired at time ``now``."""
        return self.expires_at is not None and self.expires_at <= now

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the CLI prints)."""
        out = attrs.asdict(self, recurse=False)
        out["tags"] = list(self.tags)
        if out["score"] is None:
            del out["score"]
        if not out["evicted"]:
            del out["evicted"]
        if out["explain"] is None:
            del out["explain"]
        else:
            out["explain"] = dict(out["explain"])
        return out


@attrs.frozen
class HistoryRecord:
    """One change in the append-only history of a memory.

    Attributes:
        agent_id: the agent.
        key: the memory's key.
        version: the version written (for ``delete``/``expire``/``evict``: the version removed).
        op: ``"create"``, ``"update"``, ``"delete"``, ``"expire"`` or ``"evict"``.
        at: when it happened.
        value: the value written or removed.
        tags: its tags.
        importance: its importance.
        expires_at: its expiry time, if any.
    """

    agent_id: str
    key: str
    version: int
    op: str
    at: float
    value: JSON = None
    tags: tuple[str, ...] = ()
    importance: float | None = None
    expires_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = attrs.asdict(self, recurse=False)
        out["tags"] = list(self.tags)
        return out


@attrs.frozen
class MemoryQuery:
    """Which entries an operation applies to; every condition must hold.

    Attributes:
        agent_id: only this agent's entries (``None``: every agent).
        tags: tags to match; empty means no tag condition.
        tag_mode: ``"any"`` (at least one of ``tags``) or ``"all"``.
        min_importance: only entries with importance >= this.
        since: only entries updated at or after this time.
        until: only entries updated before this time.
        filter: a checked filter over the entry (see :mod:`neuroflow.memory.filters`).
    """

    agent_id: str | None = None
    tags: tuple[str, ...] = ()
    tag_mode: str = "any"
    min_importance: float | None = None
    since: float | None = None
    until: float | None = None
    filter: Mapping[str, Any] | None = None

    def matches(self, entry: MemoryEntry, now: float) -> bool:
        """Whether a live entry satisfies every condition (the reference semantics)."""
        from neuroflow.memory.filters import matches_filter

        if entry.is_expired(now):
            return False
        if self.agent_id is not None and entry.agent_id != self.agent_id:
            return False
        if self.tags:
            have = set(entry.tags)
            hit = (all if self.tag_mode == "all" else any)(t in have for t in self.tags)
            if not hit:
                return False
        if self.min_importance is not None and entry.importance < self.min_importance:
            return False
        if self.since is not None and entry.updated_at < self.since:
            return False
        if self.until is not None and entry.updated_at >= self.until:
            return False
        return not (self.filter and not matches_filter(self.filter, entry))


@attrs.define
class Candidates:
    """What a store hands the ranker: every live entry matching a query, column-wise.

    Columns may be lists or 1-d numpy arrays of the same length.

    Attributes:
        refs: opaque references the store resolves with ``get_many`` (row ids, keys...).
        agent_ids: each candidate's agent (for deterministic tie-breaking).
        keys: each candidate's key.
        importance: float64 array.
        updated_at: float64 array.
        keyword: float64 array, fraction of query words each candidate contains (0 without
            a query).
        vectors: ``len(refs) x dim`` float32 array of stored embeddings, or ``None`` when
            not asked for; rows of an entry stored without (or with another size of)
            embedding are zero.
        vector_rows: ``None``, or the row of ``vectors`` holding each candidate's
            embedding (an integer array of ``len(refs)``): a store may hand over a larger
            matrix it keeps rather than copy the candidates' rows out of it.
    """

    refs: Sequence[Any]
    agent_ids: Sequence[str]
    keys: Sequence[str]
    importance: Any
    updated_at: Any
    keyword: Any
    vectors: Any = None
    vector_rows: Any = None

    def semantic(self, query: Any) -> Any:
        """Each candidate's embedding dotted with ``query`` (:func:`similarities`)."""
        from neuroflow.memory.embedders import similarities

        rows = self.vector_rows
        if rows is None:
            return similarities(self.vectors, query)
        if 4 * len(rows) < len(self.vectors):
            return similarities(self.vectors[rows], query)  # few rows: copy them
        # Most rows: one pass over the matrix costs less than copying them out of it
        # (a row scores the same bits either way).
        return similarities(self.vectors, query)[rows]

    def __len__(self) -> int:
        return len(self.refs)
