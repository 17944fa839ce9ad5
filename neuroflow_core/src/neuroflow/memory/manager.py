"""``MemoryManager``: the memory API of SPEC.md §2 on top of any store and embedder."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial, wraps
from typing import Any, TypeVar

import anyio
import attrs

from neuroflow.backends import BackendKind, create_backend
from neuroflow.config import NeuroflowConfig, get_config
from neuroflow.errors import InvalidMemoryError, MemoryConflictError, MemoryStoreError
from neuroflow.memory import validate as check
from neuroflow.memory.config import MemoryConfig
from neuroflow.memory.filters import matches_everything, validate_filter
from neuroflow.memory.model import HistoryRecord, MemoryEntry, MemoryQuery
from neuroflow.memory.protocol import Embedder, MemoryStore
from neuroflow.memory.text import entry_text, query_words, search_words

log = logging.getLogger("neuroflow.memory")

_UNSET: Any = object()
_UPDATE_RETRIES = 8


_Op = TypeVar("_Op", bound=Callable[..., Awaitable[Any]])
_OPERATION: Any = None


def _operation() -> Any:
    """``neuroflow.observability.operations.operation``, imported on first use."""
    global _OPERATION
    if _OPERATION is None:
        from neuroflow.observability.operations import operation

        _OPERATION = operation
    return _OPERATION


def _traced(name: str, keyed: bool = False) -> Callable[[_Op], _Op]:
    """Run each call of a manager operation in an OpenTelemetry span ``name`` (API only:
    a no-op span without an SDK) with the agent id, key or result count and the store's
    backend as attributes, and count it in the built-in ``memory`` metrics."""

    def decorate(method: _Op) -> _Op:
        @wraps(method)
        async def run(self: MemoryManager, *args: Any, **kwargs: Any) -> Any:
            with _operation()(name, "memory", name) as op:
                result = await method(self, *args, **kwargs)
                if op.recording:
                    agent = args[0] if args else kwargs.get("agent_id")
                    op.set("neuroflow.memory.agent_id", agent if isinstance(agent, str)
                           else None)
                    op.set("neuroflow.memory.store", getattr(self.store, "name", None)
                           or type(self.store).__name__)
                    if keyed:
                        key = args[1] if len(args) > 1 else kwargs.get("key")
                        op.set("neuroflow.memory.key", key if isinstance(key, str) else None)
                    if isinstance(result, list):
                        op.set("neuroflow.memory.count", len(result))
                    elif isinstance(result, bool):
                        op.set("neuroflow.memory.found", result)
                    elif isinstance(result, int):
                        op.set("neuroflow.memory.count", result)
                    elif name == "retrieve_memory":
                        op.set("neuroflow.memory.found", result is not None)
                return result

        return run  # type: ignore[return-value]

    return decorate


class MemoryManager:
    """Store, retrieve, search, update, expire and evict memories of agents.

    Args:
        config: the shared settings; ``None`` reads ``[memory]`` from the effective
            configuration (``neuroflow.toml``, ``NEUROFLOW_MEMORY__*``).  A loaded
            ``NeuroflowConfig`` is accepted too.
        store: a :class:`MemoryStore` object or a backend name (``"memory"``,
            ``"sqlite"``, ``"postgres"``, ``"tiered"``); ``None`` uses ``[memory] backend``.
        embedder: an :class:`Embedder` or an embedder backend name; ``None`` uses
            ``config.embedder`` or the ``[embedder]`` section (default ``"lexical"``).
        clock: returns the current time in seconds since the epoch (tests pass their own).

    Expired entries are swept every ``gc_interval_seconds``: by a background task inside
    ``async with manager:`` (the block owns the task), or else lazily, by the first call
    after the interval has passed (after ``await manager.start()``, or with no start at
    all).
    """

    def __init__(
        self,
        config: MemoryConfig | Any | None = None,
        *,
        store: MemoryStore | str | None = None,
        embedder: Embedder | str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        loaded = None
        if config is None or not isinstance(config, MemoryConfig):
            loaded = _loaded_config(config)
            config = loaded.section("memory").settings or MemoryConfig()
        self.config: MemoryConfig = config
        self._loaded = loaded
        self._clock = clock or time.time
        if store is None or isinstance(store, str):
            store = create_backend(BackendKind.MEMORY, store, config=loaded)
        self.store: MemoryStore = store
        self._embedder_choice = embedder
        self._embedder: Embedder | None = embedder if not isinstance(embedder, (str, type(None))) \
            else None
        self._opened = False
        self._last_sweep = self._clock()
        self._task_group: Any = None
        self._sweep_scope: anyio.CancelScope | None = None

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The embedder used for semantic search (built on first use)."""
        if self._embedder is None:
            name = self._embedder_choice or self.config.embedder
            self._embedder = create_backend(BackendKind.EMBEDDER, name, config=self._loaded)
        return self._embedder

    async def _ready(self) -> float:
        if not self._opened:
            await self.store.open()
            self._opened = True
        now = self._clock()
        if self._task_group is None and now - self._last_sweep >= self.config.gc_interval_seconds:
            await self.sweep(now=now)
        return now

    async def start(self) -> None:
        """Open the store (close it with :meth:`aclose`); expired entries are swept lazily.

        No background task is started, so ``start`` and ``aclose`` may be called from any
        task, under a timeout or not.  ``async with manager:`` also runs the sweeper.
        """
        await self._ready()

    async def _sweeper(self, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                await anyio.sleep(self.config.gc_interval_seconds)
                try:
                    await self.sweep()
                except Exception:
                    log.exception("memory: expiry sweep failed")

    async def aclose(self) -> None:
        """Close the store (and stop the sweeper of an enclosing ``async with``)."""
        if self._sweep_scope is not None:
            # Only the sweeper's own scope: cancelling is safe from any task, and the body
            # of the enclosing ``async with`` goes on; __aexit__ joins the task.
            self._sweep_scope.cancel()
        if self._opened:
            self._opened = False
            await self.store.aclose()

    async def __aenter__(self) -> MemoryManager:
        await self.start()
        if self._task_group is None:
            # Entered and exited by this same task in __aenter__/__aexit__, as anyio needs.
            group = anyio.create_task_group()
            await group.__aenter__()
            self._task_group = group
            self._sweep_scope = anyio.CancelScope()
            group.start_soon(self._sweeper, self._sweep_scope)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        group, self._task_group = self._task_group, None
        self._sweep_scope = None
        try:
            if group is not None:
                group.cancel_scope.cancel()
                await group.__aexit__(None, None, None)
        finally:
            await self.aclose()

    # --- writes -----------------------------------------------------------------------------

    def _embedder_name(self) -> str | None:
        name = getattr(self.embedder, "name", None)
        return name if isinstance(name, str) else None

    def _vector(self, key: str, value: Any, tags: Iterable[str]) -> Any:
        return self.embedder.embed([entry_text(key, value, tags)])[0]

    def _index(self, entry: MemoryEntry) -> tuple[str, Any]:
        return (search_words(entry.key, entry.value, entry.tags),
                self._vector(entry.key, entry.value, entry.tags))

    async def _value(self, value: Any) -> Any:
        """The checked JSON value; a large one is encoded in a worker thread."""
        cfg = self.config
        checked = partial(check.json_value, value, max_depth=cfg.max_value_depth,
                          max_bytes=cfg.max_value_bytes)
        if check.is_large(value):
            return await anyio.to_thread.run_sync(checked)
        return checked()

    async def _put(
        self, entry: MemoryEntry, expected_version: int | None, now: float
    ) -> MemoryEntry:
        if check.is_large(entry.value):
            # Words and embedding of a large value are computed off the event loop.
            self.embedder  # noqa: B018 - built here, not in the worker thread
            words, vector = await anyio.to_thread.run_sync(self._index, entry)
        else:
            words, vector = self._index(entry)
        stored, created = await self.store.put(
            entry,
            words=words,
            vector=vector,
            embedder=self._embedder_name(),
            expected_version=expected_version,
            now=now,
            keep_history=self.config.keep_history,
        )
        limit = self.config.max_entries
        if created and limit is not None:
            scope = entry.agent_id if self.config.eviction_scope == "agent" else None
            evicted = await self.store.evict(scope, limit, now=now,
                                             keep_history=self.config.keep_history)
            if evicted:
                still = await self.store.get(entry.agent_id, entry.key, now=now)
                if still is None or still.version != stored.version:
                    log.warning("memory: %r of agent %r was evicted at once (max_entries=%d, "
                                "lowest importance)", entry.key, entry.agent_id, limit)
                    stored = attrs.evolve(stored, evicted=True)
        return stored

    @_traced("store_memory", keyed=True)
    async def store_memory(
        self,
        agent_id: str,
        key: str,
        value: Any,
        tags: Iterable[str] | None = None,
        importance: float | None = None,
        *,
        ttl: float | Any = None,
        expires_at: float | Any = None,
        expected_version: int | None = None,
    ) -> MemoryEntry:
        """Store (create or replace) a memory and return it with its new version.

        With ``max_entries`` set, storing a new key may evict the lowest-value entries;
        if that is the new entry itself, the returned entry has ``evicted=True`` (and
        ``retrieve_memory`` returns ``None`` for it).

        Args:
            agent_id: whose memory.
            key: its key, unique per agent.
            value: any JSON-serialisable value.
            tags: labels to search by.
            importance: 0..1 (default ``config.default_importance``).
            ttl: expire after this many seconds (or a ``timedelta``).
            expires_at: expire at this time (datetime or epoch seconds).
            expected_version: write only if the current version is this (``0``: only if the
                key does not exist); otherwise :class:`MemoryConflictError`.

        Raises:
            InvalidMemoryError: an argument is invalid (nothing is stored).
            MemoryConflictError: ``expected_version`` did not match.
        """
        agent_id = check.identifier("agent_id", agent_id)
        key = check.identifier("key", key)
        checked = await self._value(value)  # may take a while (off the loop) for a large one
        now = await self._ready()
        entry = MemoryEntry(
            agent_id=agent_id,
            key=key,
            value=checked,
            tags=check.tags(tags),
            importance=self.config.default_importance if importance is None
            else check.unit("importance", importance),
            expires_at=check.expiry(ttl, expires_at, now),
        )
        return await self._put(entry, check.version(expected_version), now)

    @_traced("store_many")
    async def store_many(
        self, items: Iterable[Mapping[str, Any]], *, batch_size: int = 256
    ) -> list[MemoryEntry]:
        """Store many memories: the embedder runs once per batch, off the event loop.

        Each item is a mapping with ``agent_id``, ``key``, ``value`` and optionally
        ``tags``, ``importance``, ``ttl`` and ``expires_at`` (as :meth:`store_memory`).
        A batch is checked whole before any of it is written; a store with ``put_many``
        writes it in one transaction.  With ``max_entries`` set, eviction runs once per
        batch (entries evicted at once are not flagged, unlike :meth:`store_memory`).

        Returns:
            the stored entries, in order.

        Raises:
            InvalidMemoryError: an item is invalid (``items[i].field: ...``); the batches
                before it are stored.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidMemoryError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        out: list[MemoryEntry] = []
        batch: list[Mapping[str, Any]] = []
        for n, item in enumerate(items):
            batch.append(item)
            if len(batch) == batch_size:
                out += await self._store_batch(batch, n + 1 - len(batch))
                batch = []
        if batch:
            out += await self._store_batch(batch, len(out))
        return out

    async def _store_batch(self, items: list[Mapping[str, Any]], first: int) -> list[MemoryEntry]:
        now = await self._ready()
        entries = []
        for i, item in enumerate(items):
            try:
                if not isinstance(item, Mapping):
                    raise InvalidMemoryError(f"item: expected a mapping, got {item!r}")
                unknown = set(item) - _ITEM_FIELDS
                if unknown:
                    raise InvalidMemoryError(
                        f"{sorted(unknown)[0]}: not a memory field (expected "
                        f"{', '.join(sorted(_ITEM_FIELDS))})")
                for need in ("agent_id", "key", "value"):
                    if need not in item:
                        raise InvalidMemoryError(f"{need}: missing")
                importance = item.get("importance")
                entries.append(MemoryEntry(
                    agent_id=check.identifier("agent_id", item["agent_id"]),
                    key=check.identifier("key", item["key"]),
                    value=await self._value(item["value"]),
                    tags=check.tags(item.get("tags")),
                    importance=self.config.default_importance if importance is None
                    else check.unit("importance", importance),
                    expires_at=check.expiry(item.get("ttl"), item.get("expires_at"), now),
                ))
            except InvalidMemoryError as exc:
                raise InvalidMemoryError(f"items[{first + i}].{exc}") from None
        self.embedder  # noqa: B018 - built here, not in the worker thread

        def index() -> tuple[list[str], Any]:
            words = [search_words(e.key, e.value, e.tags) for e in entries]
            vectors = self.embedder.embed([entry_text(e.key, e.value, e.tags)
                                           for e in entries])
            return words, vectors

        words, vectors = await anyio.to_thread.run_sync(index)
        keep = self.config.keep_history
        put_many = getattr(self.store, "put_many", None)
        if put_many is not None:
            done = await put_many(list(zip(entries, words, vectors, strict=True)), now=now,
                                  keep_history=keep, embedder=self._embedder_name())
        else:
            done = [await self.store.put(e, words=w, vector=v, expected_version=None, now=now,
                                         keep_history=keep, embedder=self._embedder_name())
                    for e, w, v in zip(entries, words, vectors, strict=True)]
        limit = self.config.max_entries
        if limit is not None and any(created for _, created in done):
            scopes = ({e.agent_id for e, created in done if created}
                      if self.config.eviction_scope == "agent" else {None})
            for scope in sorted(scopes, key=str):
                await self.store.evict(scope, limit, now=now, keep_history=keep)
        return [stored for stored, _ in done]

    async def update_memory(
        self,
        agent_id: str,
        key: str,
        *,
        value: Any = _UNSET,
        tags: Iterable[str] | None = _UNSET,
        importance: float = _UNSET,
        ttl: float | Any = _UNSET,
        expires_at: float | Any = _UNSET,
        expected_version: int | None = None,
    ) -> MemoryEntry:
        """Change some fields of an existing memory; the others are kept.

        With ``expected_version`` the update happens only if the entry is still at that
        version (else :class:`MemoryConflictError`); without it, a concurrent change is
        re-read and the update re-applied.  ``expires_at=None`` removes the expiry.

        Raises:
            MemoryStoreError: the memory does not exist.
            MemoryConflictError: ``expected_version`` did not match.
        """
        check.identifier("agent_id", agent_id)
        check.identifier("key", key)
        expected = check.version(expected_version)
        changes: dict[str, Any] = {}
        if value is not _UNSET:
            changes["value"] = await self._value(value)
        if tags is not _UNSET:
            changes["tags"] = check.tags(tags)
        if importance is not _UNSET:
            changes["importance"] = check.unit("importance", importance)
        for _ in range(_UPDATE_RETRIES):
            now = await self._ready()
            if ttl is not _UNSET or expires_at is not _UNSET:
                changes["expires_at"] = check.expiry(
                    None if ttl is _UNSET else ttl,
                    None if expires_at is _UNSET else expires_at, now)
            current = await self.store.get(agent_id, key, now=now)
            if current is None:
                if expected:
                    raise MemoryConflictError(agent_id, key, expected, 0)
                raise MemoryStoreError(
                    f"update_memory: agent {agent_id!r} has no memory {key!r}; "
                    "use store_memory to create it")
            if expected is not None and current.version != expected:
                raise MemoryConflictError(agent_id, key, expected, current.version)
            try:
                return await self._put(attrs.evolve(current, **changes), current.version, now)
            except MemoryConflictError:
                if expected is not None:
                    raise
        raise MemoryStoreError(
            f"update_memory: memory {key!r} of agent {agent_id!r} kept changing under "
            f"{_UPDATE_RETRIES} attempts; retry later or pass expected_version")

    @_traced("delete_memory", keyed=True)
    async def delete_memory(self, agent_id: str, key: str) -> bool:
        """Delete one memory; return whether it existed."""
        now = await self._ready()
        return await self.store.delete(
            check.identifier("agent_id", agent_id), check.identifier("key", key),
            now=now, keep_history=self.config.keep_history)

    @_traced("delete_memories")
    async def delete_memories(
        self,
        agent_id: str | None = None,
        *,
        tags: Iterable[str] | None = None,
        tag_mode: str = "any",
        min_importance: float | None = None,
        since: Any = None,
        until: Any = None,
        filter: Mapping[str, Any] | None = None,
        everything: bool = False,
    ) -> int:
        """Delete every memory matching all the given conditions; return how many.

        With no condition at all, ``everything=True`` is required (it empties the store).
        ``tags=[]``, ``min_importance=0`` and a filter that matches every entry by its
        form (``{}``, ``{"$and": [{}]}``, ``{"$or": [{}]}``, a condition or its opposite,
        see :func:`~neuroflow.memory.filters.matches_everything`) are no condition.
        """
        query = self._query(agent_id, tags, tag_mode, min_importance, since, until, filter)
        if _unconditional(query) and not everything:
            raise InvalidMemoryError(
                "delete_memories: give agent_id, tags, min_importance, since, until or "
                "filter, or everything=True to delete every memory of every agent")
        now = await self._ready()
        return await self.store.delete_where(query, now=now,
                                             keep_history=self.config.keep_history)

    async def sweep(self, *, now: float | None = None) -> int:
        """Delete expired memories now; return how many."""
        if not self._opened:
            await self.store.open()
            self._opened = True
        now = self._clock() if now is None else now
        self._last_sweep = now
        return await self.store.sweep_expired(now=now, keep_history=self.config.keep_history)

    # --- reads ---------------------------------------------------------------------------

    @_traced("retrieve_memory", keyed=True)
    async def retrieve_memory(self, agent_id: str, key: str) -> MemoryEntry | None:
        """Return a memory, or ``None`` if it does not exist or has expired."""
        now = await self._ready()
        return await self.store.get(
            check.identifier("agent_id", agent_id), check.identifier("key", key), now=now)

    async def list_memories(
        self,
        agent_id: str | None = None,
        *,
        tags: Iterable[str] | None = None,
        tag_mode: str = "any",
        min_importance: float | None = None,
        since: Any = None,
        until: Any = None,
        filter: Mapping[str, Any] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[MemoryEntry]:
        """Memories matching every condition, ordered by agent and key."""
        query = self._query(agent_id, tags, tag_mode, min_importance, since, until, filter)
        if limit is not None:
            check.limit(limit)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidMemoryError(f"offset: expected an integer >= 0, got {offset!r}")
        now = await self._ready()
        return await self.store.list(query, now=now, limit=limit, offset=offset)

    async def history(self, agent_id: str, key: str) -> list[HistoryRecord]:
        """Every recorded change of one memory, oldest first (kept after deletion)."""
        await self._ready()
        return await self.store.history(
            check.identifier("agent_id", agent_id), check.identifier("key", key))

    async def stats(self) -> dict[str, Any]:
        """``{"entries", "expired", "agents": {agent_id: count}}`` of the store."""
        now = await self._ready()
        return await self.store.stats(now=now)

    def _query(
        self,
        agent_id: str | None,
        tags: Iterable[str] | None,
        tag_mode: str,
        min_importance: float | None,
        since: Any,
        until: Any,
        flt: Mapping[str, Any] | None,
    ) -> MemoryQuery:
        return MemoryQuery(
            agent_id=None if agent_id is None else check.identifier("agent_id", agent_id),
            tags=check.tags(tags),
            tag_mode=check.tag_mode(tag_mode),
            min_importance=None if min_importance is None
            else check.unit("min_importance", min_importance),
            since=check.timestamp("since", since),
            until=check.timestamp("until", until),
            filter=validate_filter(flt, max_depth=self.config.max_filter_depth) or None,
        )

    @_traced("search_memories")
    async def search_memories(
        self,
        agent_id: str | None,
        query: str | None = None,
        tags: Iterable[str] | None = None,
        tag_mode: str = "any",
        min_importance: float | None = None,
        since: Any = None,
        until: Any = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        explain: bool = False,
    ) -> list[MemoryEntry]:
        """Find memories: filter first, then rank, best first, each with its ``score``.

        Filters (``tags``/``tag_mode``, ``min_importance``, ``since``/``until`` on
        ``updated_at``, ``filter``) decide which entries take part.  They are ranked by
        ``relevance_weight * relevance + importance_weight * importance + recency_weight *
        recency`` (weights normalised to sum 1), where relevance mixes embedding similarity
        and keyword overlap with ``query`` (``semantic_share``); without a query there is
        no relevance term.  Ties go to the most recently updated, then by key.
        ``explain=True`` puts every term on ``entry.explain``.
        """
        import numpy as np

        q = self._query(agent_id, tags, tag_mode, min_importance, since, until, filter)
        limit = check.limit(limit)
        if query is not None and not isinstance(query, str):
            raise InvalidMemoryError(f"query: expected a string or None, got {query!r}")
        if query:
            check.encodable("query", query)
        now = await self._ready()
        words = query_words(query) if query else None
        qvec = None
        if query:
            qvec = self.embedder.embed([query])[0]
        cands = scored = None
        if qvec is not None and np.any(qvec):
            found = await self._nearest(q, now, words, qvec, limit, bool(query))
            if found is not None:
                cands, scored = found
        if cands is None:
            cands = await self.store.candidates(
                q, now=now, words=words, vector_dim=len(qvec) if qvec is not None else None,
                embedder=self._embedder_name())
        if len(cands) == 0:
            return []
        score, importance, recency, semantic, keyword, relevance, weights = \
            scored or self._score(cands, qvec, now, bool(query))
        w_rel, w_imp, w_rec, total = weights
        order, entries = await self._winners(score, cands, limit)
        out = []
        for i, entry in zip(order, entries, strict=True):
            detail = None
            if explain:
                detail = {
                    "score": float(score[i]),
                    "importance": float(importance[i]),
                    "recency": float(recency[i]),
                    "weight_relevance": w_rel / total,
                    "weight_importance": w_imp / total,
                    "weight_recency": w_rec / total,
                }
                if query:
                    detail.update(relevance=float(relevance[i]), semantic=float(semantic[i]),
                                  keyword=float(keyword[i]))
            out.append(entry.scored(float(score[i]), detail))
        return out

    def _score(self, cands: Any, qvec: Any, now: float, has_query: bool) -> tuple[Any, ...]:
        """Every candidate's score and its terms (see :meth:`search_memories`)."""
        import numpy as np

        cfg = self.config
        importance = np.asarray(cands.importance, dtype=np.float64)
        age = np.maximum(now - np.asarray(cands.updated_at, dtype=np.float64), 0.0)
        recency = np.exp2(-age / cfg.recency_half_life_seconds)
        w_rel = cfg.relevance_weight if has_query else 0.0
        total = w_rel + cfg.importance_weight + cfg.recency_weight
        if total <= 0:
            total, w_imp, w_rec = 1.0, 1.0, 0.0
        else:
            w_imp, w_rec = cfg.importance_weight, cfg.recency_weight
        score = (w_imp * importance + w_rec * recency) / total
        semantic = keyword = relevance = None
        if has_query:
            keyword = np.asarray(cands.keyword, dtype=np.float64)
            if cands.vectors is not None and qvec is not None and np.any(qvec):
                semantic = cands.semantic(qvec)
                semantic = np.clip(semantic, 0.0, 1.0).astype(np.float64)
            else:
                semantic = np.zeros(len(cands), dtype=np.float64)
            relevance = cfg.semantic_share * semantic + (1 - cfg.semantic_share) * keyword
            score = score + w_rel * relevance / total
        return (score, importance, recency, semantic, keyword, relevance,
                (w_rel, w_imp, w_rec, total))

    async def _nearest(self, q: MemoryQuery, now: float, words: Any, qvec: Any, limit: int,
                       has_query: bool) -> Any:
        """Candidates from the store's vector index when it has one and they decide the
        top ``limit``, with their scores (``_score``); ``None`` otherwise (the caller reads
        every candidate).

        The store returns the nearest entries by embedding plus every keyword hit, and
        bounds on what any entry left out could score (its similarity, importance and
        recency at most those bounds, keyword 0).  If ``limit`` candidates score above
        that, no entry left out can enter the top ``limit``: the result equals the exact
        search.  Otherwise ask for four times as many, up to ``_NEAREST_MAX``.
        """
        import numpy as np

        near = getattr(self.store, "nearest", None)
        if near is None:
            return None
        cfg = self.config
        want = max(4 * limit, 40)
        while want <= _NEAREST_MAX:
            found = await near(q, now=now, words=words, vector=qvec, limit=want,
                               embedder=self._embedder_name())
            if found is None:
                return None
            cands, semantic_out, importance_out = found
            scored = self._score(cands, qvec, now, has_query)
            score, (w_rel, w_imp, w_rec, total) = scored[0], scored[-1]
            bound = (w_rel * cfg.semantic_share * min(max(semantic_out, 0.0), 1.0)
                     + w_imp * importance_out + w_rec * 1.0) / total
            if int(np.count_nonzero(score > bound + 1e-6)) >= limit:
                return cands, scored
            want *= 4
        return None

    async def _winners(self, score: Any, cands: Any, limit: int
                       ) -> tuple[list[int], list[MemoryEntry]]:
        """The best ``limit`` candidates that still exist, with their entries.

        Candidates are read before the winners are fetched; a winner deleted in between
        by another writer is skipped and the next-ranked candidate taken instead.
        """
        import numpy as np

        updated = np.asarray(cands.updated_at)
        found: dict[int, MemoryEntry] = {}
        gone: set[int] = set()
        want = limit
        while True:
            order = _top(score, updated, cands.agent_ids, cands.keys, want)
            todo = [i for i in order if i not in found and i not in gone]
            if todo:
                fetched = await self.store.get_many([cands.refs[i] for i in todo])
                for i, entry in zip(todo, fetched, strict=True):
                    if entry is None:
                        gone.add(i)
                    else:
                        found[i] = entry
            if len(order) - len(gone) >= limit or want >= len(score):
                kept = [i for i in order if i in found][:limit]
                return kept, [found[i] for i in kept]
            want = min(len(score), want + max(limit, 2 * len(gone)))


def describe_memory_store(config: Any = None, *, timeout: float = 5.0) -> dict[str, Any]:
    """Which memory store the configuration selects and, if the store can tell (it then
    connects), how it works: ``{"backend": name, ...}`` plus the store's ``describe()``,
    e.g. ``"vector_search": "pgvector"``, or ``"error"`` when it cannot be reached.

    For ``neuroflow doctor`` and ``neuroflow config show``; call it outside an event loop.
    """
    loaded = _loaded_config(config)
    name = loaded.section("memory").backend
    out: dict[str, Any] = {"backend": name}
    try:
        store = create_backend(BackendKind.MEMORY, name, config=loaded)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {**out, "error": str(exc)}
    describe = getattr(store, "describe", None)
    if describe is None:
        return out

    async def ask() -> dict[str, Any]:
        try:
            with anyio.fail_after(timeout):
                return dict(await describe())
        finally:
            with anyio.CancelScope(shield=True):
                await store.aclose()

    try:
        return {**out, **anyio.run(ask)}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {**out, "error": f"{type(exc).__name__}: {exc}"}


#: The keys an item of :meth:`MemoryManager.store_many` may have.
_ITEM_FIELDS = frozenset({"agent_id", "key", "value", "tags", "importance", "ttl",
                          "expires_at"})

#: Most candidates asked of a store's vector index before reading every candidate.
_NEAREST_MAX = 2560


def _unconditional(query: MemoryQuery) -> bool:
    """Whether a query has no condition at all, i.e. matches every live entry by its form."""
    return (query.agent_id is None and not query.tags and not query.min_importance
            and query.since is None and query.until is None
            and matches_everything(query.filter))


def _top(score: Any, updated: Any, agents: Any, keys: Any, limit: int) -> list[int]:
    """Indices of the ``limit`` best, by score, then recency, then agent and key."""
    import numpy as np

    n = len(score)
    if n > limit:
        kth = np.partition(score, n - limit)[n - limit]
        pool = np.flatnonzero(score >= kth)
    else:
        pool = np.arange(n)
    ranked = sorted(pool.tolist(), key=lambda i: (-score[i], -updated[i], agents[i], keys[i]))
    return ranked[:limit]


def _loaded_config(config: Any) -> Any:
    """The configuration to read sections from: ``config`` or the process-wide one."""
    if config is None:
        return get_config()
    if not isinstance(config, NeuroflowConfig):
        raise InvalidMemoryError(
            f"config: expected a MemoryConfig or a loaded NeuroflowConfig, got {config!r}")
    return config


__all__ = ["MemoryManager", "describe_memory_store"]
