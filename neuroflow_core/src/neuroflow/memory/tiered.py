"""The tiered store (backend ``tiered``): recent entries in memory, everything persisted.

Every write goes to the persistent store first (it is the truth and acknowledges the
write), then into a bounded in-process cache of the most recently used entries, which
answers ``get`` without a round trip.  Searches, lists, history and deletes go to the
persistent store.  The cache belongs to one process: if other processes write the same
keys, use the persistent store directly (or keep ``hot_entries`` small).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs

from neuroflow.memory.model import Candidates, HistoryRecord, MemoryEntry, MemoryQuery
from neuroflow.memory.protocol import MemoryStore


def _not_tiered(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value == "tiered":
        from neuroflow.errors import ConfigError

        raise ConfigError(f"{attribute.name}: expected a persistent store ('sqlite', "
                          "'postgres', ...), got 'tiered'")


@attrs.frozen
class TieredStoreConfig:
    """Options of the ``tiered`` store (``[memory.tiered]``).

    Attributes:
        persistent: the backend that persists everything (its own options come from
            ``[memory.<name>]``).
        hot_entries: how many recently used entries to keep in memory.
    """

    persistent: str = attrs.field(default="sqlite", validator=_not_tiered)
    hot_entries: int = 1000


class TieredStore:
    """A write-through in-memory cache in front of a persistent :class:`MemoryStore`."""

    def __init__(self, persistent: MemoryStore, hot_entries: int = 1000) -> None:
        self.persistent = persistent
        self.hot_entries = hot_entries
        self._hot: OrderedDict[tuple[str, str], MemoryEntry] = OrderedDict()

    @classmethod
    def from_config(cls, config: TieredStoreConfig | None = None) -> TieredStore:
        """Build from configuration: the persistent backend with its configured options."""
        from neuroflow.backends import BackendKind, create_backend

        config = config or TieredStoreConfig()
        return cls(create_backend(BackendKind.MEMORY, config.persistent,
                                  field="memory.tiered.persistent"), config.hot_entries)

    def _remember(self, entry: MemoryEntry) -> None:
        self._hot[(entry.agent_id, entry.key)] = entry
        self._hot.move_to_end((entry.agent_id, entry.key))
        while len(self._hot) > self.hot_entries:
            self._hot.popitem(last=False)

    async def open(self) -> None:
        """Open the persistent store."""
        await self.persistent.open()

    async def aclose(self) -> None:
        """Close the persistent store and drop the cache."""
        self._hot.clear()
        await self.persistent.aclose()

    async def put(self, entry: MemoryEntry, **kwargs: Any) -> tuple[MemoryEntry, bool]:
        """Write through, then cache."""
        self._hot.pop((entry.agent_id, entry.key), None)
        stored, created = await self.persistent.put(entry, **kwargs)
        self._remember(stored)
        return stored, created

    async def put_many(self, items: list[tuple[MemoryEntry, str, Any]], **kwargs: Any
                       ) -> list[tuple[MemoryEntry, bool]]:
        """Write a batch through (in one call if the persistent store can), then cache."""
        for entry, _, _ in items:
            self._hot.pop((entry.agent_id, entry.key), None)
        many = getattr(self.persistent, "put_many", None)
        if many is not None:
            done = await many(items, **kwargs)
        else:
            done = [await self.persistent.put(e, words=w, vector=v, expected_version=None,
                                              **kwargs) for e, w, v in items]
        for stored, _ in done:
            self._remember(stored)
        return done

    async def get(self, agent_id: str, key: str, *, now: float) -> MemoryEntry | None:
        """From the cache if there, else from the persistent store."""
        hit = self._hot.get((agent_id, key))
        if hit is not None:
            if hit.is_expired(now):
                return None
            self._hot.move_to_end((agent_id, key))
            return hit
        found = await self.persistent.get(agent_id, key, now=now)
        if found is not None:
            self._remember(found)
        return found

    async def get_many(self, refs: Sequence[Any]) -> list[MemoryEntry | None]:
        """Resolve candidate references through the persistent store."""
        return await self.persistent.get_many(refs)

    async def delete(self, agent_id: str, key: str, *, now: float, keep_history: bool) -> bool:
        """Delete in both tiers."""
        self._hot.pop((agent_id, key), None)
        return await self.persistent.delete(agent_id, key, now=now, keep_history=keep_history)

    async def delete_where(self, query: MemoryQuery, *, now: float, keep_history: bool) -> int:
        """Delete in the persistent store; drop the cache."""
        self._hot.clear()
        return await self.persistent.delete_where(query, now=now, keep_history=keep_history)

    async def candidates(self, query: MemoryQuery, **kwargs: Any) -> Candidates:
        """Ask the persistent store."""
        return await self.persistent.candidates(query, **kwargs)

    async def describe(self) -> dict[str, Any]:
        """The persistent store's description (if it has one) and the cache size."""
        describe = getattr(self.persistent, "describe", None)
        out = dict(await describe()) if describe is not None else {}
        return {**out, "hot_entries": self.hot_entries}

    @asynccontextmanager
    async def bulk_load(self) -> AsyncIterator[None]:
        """The persistent store's ``bulk_load()`` around the block, if it has one."""
        bulk = getattr(self.persistent, "bulk_load", None)
        if bulk is None:
            yield
            return
        async with bulk():
            yield

    async def nearest(self, query: MemoryQuery, **kwargs: Any) -> Any:
        """Ask the persistent store's index, if it has one (else ``None``)."""
        near = getattr(self.persistent, "nearest", None)
        return None if near is None else await near(query, **kwargs)

    async def list(
        self, query: MemoryQuery, *, now: float, limit: int | None, offset: int = 0
    ) -> list[MemoryEntry]:
        """Ask the persistent store."""
        return await self.persistent.list(query, now=now, limit=limit, offset=offset)

    async def history(self, agent_id: str, key: str) -> list[HistoryRecord]:
        """Ask the persistent store."""
        return await self.persistent.history(agent_id, key)

    async def sweep_expired(self, *, now: float, keep_history: bool) -> int:
        """Sweep the persistent store; drop expired cache entries."""
        for k in [k for k, e in self._hot.items() if e.is_expired(now)]:
            del self._hot[k]
        return await self.persistent.sweep_expired(now=now, keep_history=keep_history)

    async def evict(
        self, agent_id: str | None, max_entries: int, *, now: float, keep_history: bool
    ) -> int:
        """Evict in the persistent store; drop the cache if anything went."""
        n = await self.persistent.evict(agent_id, max_entries, now=now, keep_history=keep_history)
        if n:
            self._hot.clear()
        return n

    async def stats(self, *, now: float) -> dict[str, Any]:
        """The persistent store's counts plus the cache size."""
        out = await self.persistent.stats(now=now)
        out["hot_entries"] = len(self._hot)
        return out
