"""The :class:`MemoryStore` role: what a memory backend implements.

The :class:`~neuroflow.memory.MemoryManager` does validation, embedding, ranking, limits
and sweeping; a store only keeps entries and answers filtered questions about them.
Every method takes the current time ``now`` from the manager, so expiry is decided by one
clock (and tests can control it).  Entries that have expired are never returned, even
before a sweep removes them.  :class:`neuroflow.testing.MemoryStoreSuite` checks a store
against these rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from neuroflow.memory.model import Candidates, HistoryRecord, MemoryEntry, MemoryQuery


@runtime_checkable
class MemoryStore(Protocol):
    """An async store of :class:`~neuroflow.memory.MemoryEntry` objects.

    Ordering rules shared by every store: ``list`` is by ``(agent_id, key)`` in code-point
    order; eviction removes the lowest ``importance``, then oldest ``updated_at``, then
    ``(agent_id, key)``.
    """

    async def open(self) -> None:
        """Connect and create what is missing (idempotent)."""
        ...

    async def aclose(self) -> None:
        """Release connections (idempotent)."""
        ...

    async def put(
        self,
        entry: MemoryEntry,
        *,
        words: str,
        vector: np.ndarray | None,
        expected_version: int | None,
        now: float,
        keep_history: bool,
        embedder: str | None = None,
    ) -> tuple[MemoryEntry, bool]:
        """Create or replace ``(entry.agent_id, entry.key)`` atomically.

        The store sets ``version`` (1 for a new or expired entry, else current + 1),
        ``created_at`` (kept from a live entry, else ``now``) and ``updated_at = now``.
        ``words`` is the space-joined keyword text to index; ``vector`` the embedding,
        made by the embedder named ``embedder`` (kept with the vector).

        Returns:
            the stored entry and whether it is new (no live entry existed).

        Raises:
            MemoryConflictError: ``expected_version`` is given and differs from the live
                version (``0`` = must not exist).
        """
        ...

    async def get(self, agent_id: str, key: str, *, now: float) -> MemoryEntry | None:
        """Return the live entry, or ``None``."""
        ...

    async def get_many(self, refs: Sequence[Any]) -> list[MemoryEntry | None]:
        """Return the entries for ``refs`` from :meth:`candidates`, in the same order.

        ``None`` stands for an entry deleted since :meth:`candidates` read it (the manager
        then takes the next-ranked candidate); it must not raise for that.
        """
        ...

    async def delete(self, agent_id: str, key: str, *, now: float, keep_history: bool) -> bool:
        """Delete one entry; return whether a live entry was deleted."""
        ...

    async def delete_where(self, query: MemoryQuery, *, now: float, keep_history: bool) -> int:
        """Delete every live entry matching ``query``; return how many."""
        ...

    async def candidates(
        self,
        query: MemoryQuery,
        *,
        now: float,
        words: Sequence[str] | None,
        vector_dim: int | None,
        embedder: str | None = None,
    ) -> Candidates:
        """Every live entry matching ``query``, column-wise, for ranking.

        ``words``: fill ``Candidates.keyword`` with the fraction of these words each
        entry's indexed words contain.  ``vector_dim``: fill ``Candidates.vectors`` with
        the stored embeddings of that size made by ``embedder`` (zero rows for others: a
        vector of another size, or of another named embedder, is not comparable).
        """
        ...

    async def list(
        self, query: MemoryQuery, *, now: float, limit: int | None, offset: int = 0
    ) -> list[MemoryEntry]:
        """Live entries matching ``query``, ordered by ``(agent_id, key)``."""
        ...

    async def history(self, agent_id: str, key: str) -> list[HistoryRecord]:
        """Every recorded change of one key, oldest first."""
        ...

    async def sweep_expired(self, *, now: float, keep_history: bool) -> int:
        """Delete every expired entry; return how many."""
        ...

    async def evict(
        self, agent_id: str | None, max_entries: int, *, now: float, keep_history: bool
    ) -> int:
        """Keep at most ``max_entries`` live entries (of ``agent_id``, or in total).

        Nothing happens while the scope holds at most ``max_entries`` entries, expired or
        not.  Otherwise its expired entries are removed first (recorded as ``expire``),
        then the lowest-value live entries beyond ``max_entries`` (``evict``); return how
        many were evicted.
        """
        ...

    async def stats(self, *, now: float) -> dict[str, Any]:
        """``{"entries": n, "expired": n, "agents": {agent_id: n}}`` (live entries)."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed size.

    Attributes:
        name: identifies the model; vectors of different names are not compared.
        dimension: the vector size.
    """

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``len(texts) x dimension`` float32 array of L2-normalised rows."""
        ...
