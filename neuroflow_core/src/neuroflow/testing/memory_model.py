"""The reference model of the memory conformance suite, written from ``docs/memory.md`` alone.

Nothing here calls the code it checks: the filter language, tags, importance, the
``since``/``until`` window, expiry, eviction and the search score are all evaluated by
code of this module, so a wrong operator in :mod:`neuroflow.memory.filters` or a wrong
boundary in a store gives a different answer than the model.

The only shared piece is the :class:`~neuroflow.memory.model.MemoryEntry` data class,
used to compare what the manager returns with what the model expects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from neuroflow.errors import MemoryConflictError, MemoryStoreError
from neuroflow.memory.config import MemoryConfig
from neuroflow.memory.model import MemoryEntry

#: The top-level fields a filter may name; they always exist (``expires_at`` is ``None``
#: on an entry without expiry).
TOP_FIELDS = ("key", "importance", "created_at", "updated_at", "expires_at", "version", "tags")

#: What :func:`field` returns for a path the entry does not have.
ABSENT = object()


# --- the filter language -----------------------------------------------------------------


def _number(x: Any) -> bool:
    return type(x) in (int, float)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values: numbers by value, everything else by type and content
    (``true`` is not ``1``, at any depth)."""
    if _number(a) and _number(b):
        return float(a) == float(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return a == b


def field(entry: MemoryEntry, path: str) -> Any:
    """The value at ``path`` in ``entry``, or ``ABSENT``."""
    if path in TOP_FIELDS:
        got = getattr(entry, path)
        return list(got) if path == "tags" else got
    assert path == "value" or path.startswith("value."), path
    here: Any = entry.value
    for step in path.split(".")[1:]:
        if type(here) is dict and step in here:
            here = here[step]
        elif type(here) is list and re.fullmatch(r"[0-9]+", step) and int(step) < len(here):
            here = here[int(step)]
        else:
            return ABSENT
    return here


def _operator(op: str, have: Any, want: Any) -> bool:
    if op == "$exists":
        return want if have is not ABSENT else not want
    if have is ABSENT:
        # A missing field matches only $ne (and $exists: false, above).
        return op == "$ne"
    if op == "$eq":
        return json_equal(have, want)
    if op == "$ne":
        return not json_equal(have, want)
    if op == "$in":
        return any(json_equal(have, w) for w in want)
    if op == "$contains":
        if type(have) is str:
            return type(want) is str and have.find(want) >= 0
        if type(have) is list:
            return any(json_equal(h, want) for h in have)
        return False
    comparable = (_number(have) and _number(want)) or (type(have) is str and type(want) is str)
    if not comparable:
        return False
    if op == "$gt":
        return have > want
    if op == "$gte":
        return have > want or have == want
    if op == "$lt":
        return want > have
    if op == "$lte":
        return want > have or have == want
    raise AssertionError(f"the model does not know {op}")


def _is_operator_dict(cond: Any) -> bool:
    return isinstance(cond, Mapping) and any(str(k)[:1] == "$" for k in cond)


def filter_holds(flt: Mapping[str, Any] | None, entry: MemoryEntry) -> bool:
    """Whether ``entry`` satisfies the filter, as documented."""
    if not flt:
        return True
    verdicts = []
    for path, cond in flt.items():
        if path == "$and":
            verdicts.append(all(filter_holds(sub, entry) for sub in cond))
        elif path == "$or":
            verdicts.append(any(filter_holds(sub, entry) for sub in cond))
        elif path == "$not":
            verdicts.append(not filter_holds(cond, entry))
        elif _is_operator_dict(cond):
            have = field(entry, path)
            verdicts.append(all(_operator(op, have, want) for op, want in cond.items()))
        else:
            verdicts.append(_operator("$eq", field(entry, path), cond))
    return all(verdicts)


# --- queries -----------------------------------------------------------------------------


@attrs.frozen
class RefQuery:
    """The conditions of a read or bulk delete, as the model keeps them."""

    agent_id: str | None = None
    tags: tuple[str, ...] = ()
    tag_mode: str = "any"
    min_importance: float | None = None
    since: float | None = None
    until: float | None = None
    filter: Mapping[str, Any] | None = None


def expired(entry: MemoryEntry, now: float) -> bool:
    """An entry whose ``expires_at`` is now or earlier is gone."""
    return entry.expires_at is not None and not entry.expires_at > now


def query_holds(q: RefQuery, entry: MemoryEntry, now: float) -> bool:
    """Every condition of ``q`` holds for a live ``entry``."""
    if expired(entry, now):
        return False
    if q.agent_id is not None and q.agent_id != entry.agent_id:
        return False
    if q.tags:
        missing = [t for t in q.tags if t not in entry.tags]
        if q.tag_mode == "all" and missing:
            return False
        if q.tag_mode == "any" and len(missing) == len(q.tags):
            return False
    if q.min_importance is not None and q.min_importance > entry.importance:
        return False
    if q.since is not None and q.since > entry.updated_at:  # since is inclusive
        return False
    if q.until is not None and not q.until > entry.updated_at:  # until is exclusive
        return False
    return filter_holds(q.filter, entry)


# --- an embedder the model can recompute ---------------------------------------------------


class VocabularyEmbedder:
    """A test embedder: one dimension per vocabulary word, 1 where the text contains it.

    Whatever text the manager builds from an entry, the vector only says which vocabulary
    words occur in it, so the model computes the same vector from the entry's words alone
    (as long as the vocabulary words do not occur inside the other parts of an entry).
    """

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = [w.lower() for w in vocabulary]
        self.dimension = len(self.vocabulary)
        self.name = f"suite-vocabulary-{self.dimension}"

    def embed(self, texts: Sequence[str]) -> Any:
        """Rows of 0/1 per vocabulary word, L2-normalised (float32)."""
        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            low = text.lower()
            for j, word in enumerate(self.vocabulary):
                if word in low:
                    out[i, j] = 1.0
            norm = float(np.sqrt((out[i] * out[i]).sum()))
            if norm:
                out[i] /= norm
        return out


def words_of(text: str) -> set[str]:
    """The distinct lower-case words of a space-separated text."""
    return {w.lower() for w in text.split()}


# --- the model ---------------------------------------------------------------------------


class ReferenceMemory:
    """The documented semantics of a memory store plus manager, as plainly as possible.

    Entries' values are ``{"text": "<space separated words>", ...}``; search relevance is
    computed from those words (the suite's vocabulary is chosen so that no other part of an
    entry contains a vocabulary word).
    """

    def __init__(self, config: MemoryConfig, clock: Any) -> None:
        self.config = config
        self.clock = clock
        self.rows: dict[tuple[str, str], MemoryEntry] = {}
        self.log: dict[tuple[str, str], list[tuple[str, int]]] = {}

    def _live(self, agent: str, key: str) -> MemoryEntry | None:
        e = self.rows.get((agent, key))
        return e if e is not None and not expired(e, self.clock.now) else None

    def _drop(self, e: MemoryEntry, op: str) -> None:
        del self.rows[(e.agent_id, e.key)]
        self.log.setdefault((e.agent_id, e.key), []).append((op, e.version))

    def store(self, agent: str, key: str, value: Any, tags: tuple[str, ...], importance: float,
              ttl: float | None, expected: int | None) -> MemoryEntry:
        now = self.clock.now
        live = self._live(agent, key)
        current = live.version if live else 0
        if expected is not None and expected != current:
            raise MemoryConflictError(agent, key, expected, current)
        unique: list[str] = []
        for t in tags:
            if t not in unique:
                unique.append(t)
        entry = MemoryEntry(agent, key, value, tuple(unique), importance,
                            live.created_at if live else now, now,
                            None if ttl is None else now + ttl, current + 1)
        self.rows[(agent, key)] = entry
        self.log.setdefault((agent, key), []).append(
            ("update" if live else "create", entry.version))
        limit = self.config.max_entries
        if live is None and limit is not None:
            mine = [e for e in self.rows.values() if e.agent_id == agent]
            if len(mine) > limit:
                # Expired entries do not count: they go first, as expired.
                for e in [e for e in mine if expired(e, now)]:
                    self._drop(e, "expire")
                alive = sorted((e for e in mine if not expired(e, now)),
                               key=lambda e: (e.importance, e.updated_at, e.agent_id, e.key))
                for victim in alive[: max(0, len(alive) - limit)]:
                    self._drop(victim, "evict")
                if (agent, key) not in self.rows:
                    entry = attrs.evolve(entry, evicted=True)
        return entry

    def update(self, agent: str, key: str, importance: float, expected: int | None,
               **changes: Any) -> MemoryEntry:
        live = self._live(agent, key)
        if live is None:
            if expected:
                raise MemoryConflictError(agent, key, expected, 0)
            raise MemoryStoreError("missing")
        if expected is not None and expected != live.version:
            raise MemoryConflictError(agent, key, expected, live.version)
        if "ttl" in changes:
            ttl = changes.pop("ttl")
            changes["expires_at"] = None if ttl is None else self.clock.now + ttl
        if "tags" in changes:
            changes["tags"] = tuple(dict.fromkeys(changes["tags"]))
        entry = attrs.evolve(live, importance=importance, updated_at=self.clock.now,
                             version=live.version + 1, **changes)
        self.rows[(agent, key)] = entry
        self.log[(agent, key)].append(("update", entry.version))
        return entry

    def retrieve(self, agent: str, key: str) -> MemoryEntry | None:
        return self._live(agent, key)

    def delete(self, agent: str, key: str) -> bool:
        e = self.rows.get((agent, key))
        if e is None:
            return False
        live = not expired(e, self.clock.now)
        self._drop(e, "delete" if live else "expire")
        return live

    def matching(self, query: RefQuery) -> list[MemoryEntry]:
        return [e for e in self.rows.values() if query_holds(query, e, self.clock.now)]

    def delete_where(self, query: RefQuery) -> int:
        doomed = self.matching(query)
        for e in doomed:
            self._drop(e, "delete")
        return len(doomed)

    def sweep(self) -> int:
        doomed = [e for e in self.rows.values() if expired(e, self.clock.now)]
        for e in doomed:
            self._drop(e, "expire")
        return len(doomed)

    def list(self, query: RefQuery) -> list[MemoryEntry]:
        return sorted(self.matching(query), key=lambda e: (e.agent_id, e.key))

    def history(self, agent: str, key: str) -> list[tuple[str, int]]:
        return list(self.log.get((agent, key), ()))

    def search(self, query: RefQuery, text: str | None) -> dict[str, float]:
        """Each matching entry's documented score (``text`` is words of the vocabulary)."""
        cfg, now = self.config, self.clock.now
        w_rel = cfg.relevance_weight if text else 0.0
        total = w_rel + cfg.importance_weight + cfg.recency_weight
        asked = words_of(text) if text else set()
        out = {}
        for e in self.matching(query):
            age = now - e.updated_at if now > e.updated_at else 0.0
            recency = 0.5 ** (age / cfg.recency_half_life_seconds)
            score = cfg.importance_weight * e.importance + cfg.recency_weight * recency
            if text:
                have = words_of(e.value["text"])
                shared = len(asked & have)
                semantic = shared / math.sqrt(len(asked) * len(have))
                keyword = shared / len(asked)
                score += w_rel * (cfg.semantic_share * semantic
                                  + (1 - cfg.semantic_share) * keyword)
            out[e.key] = score / total
        return out
