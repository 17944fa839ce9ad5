"""Memory for agents: short-term, long-term (persistent) and semantic search.

::

    from neuroflow.memory import MemoryManager, MemoryConfig

    manager = MemoryManager(MemoryConfig(max_entries=10000, gc_interval_seconds=300))
    await manager.store_memory(agent_id="user-123", key="preference:theme",
                               value={"theme": "dark"}, tags=["preference"], importance=0.8)

Stores are plugins (``memory`` built in; ``sqlite`` and ``postgres`` from
``neuroflow-memory-sqlite``), and so are embedders (``lexical`` built in).  Names are
imported lazily to keep ``import neuroflow.memory`` cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "MemoryManager": "neuroflow.memory.manager",
    "describe_memory_store": "neuroflow.memory.manager",
    "MemoryConfig": "neuroflow.memory.config",
    "MemoryEntry": "neuroflow.memory.model",
    "HistoryRecord": "neuroflow.memory.model",
    "MemoryQuery": "neuroflow.memory.model",
    "Candidates": "neuroflow.memory.model",
    "MemoryStore": "neuroflow.memory.protocol",
    "Embedder": "neuroflow.memory.protocol",
    "LexicalEmbedder": "neuroflow.memory.embedders",
    "similarities": "neuroflow.memory.embedders",
    "InMemoryStore": "neuroflow.memory.inmemory",
    "TieredStore": "neuroflow.memory.tiered",
    "MemoryStoreError": "neuroflow.errors",
    "MemoryConflictError": "neuroflow.errors",
    "InvalidMemoryError": "neuroflow.errors",
    "matches_filter": "neuroflow.memory.filters",
    "tokenize": "neuroflow.memory.text",
    "coverage": "neuroflow.memory.text",
    "is_large": "neuroflow.memory.validate",
    "OFF_LOOP_BYTES": "neuroflow.memory.validate",
}

if TYPE_CHECKING:
    from neuroflow.errors import InvalidMemoryError, MemoryConflictError, MemoryStoreError
    from neuroflow.memory.config import MemoryConfig
    from neuroflow.memory.embedders import LexicalEmbedder, similarities
    from neuroflow.memory.filters import matches_filter
    from neuroflow.memory.inmemory import InMemoryStore
    from neuroflow.memory.manager import MemoryManager, describe_memory_store
    from neuroflow.memory.model import Candidates, HistoryRecord, MemoryEntry, MemoryQuery
    from neuroflow.memory.protocol import Embedder, MemoryStore
    from neuroflow.memory.text import coverage, tokenize
    from neuroflow.memory.tiered import TieredStore
    from neuroflow.memory.validate import OFF_LOOP_BYTES, is_large


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "OFF_LOOP_BYTES",
    "Candidates",
    "Embedder",
    "HistoryRecord",
    "InMemoryStore",
    "InvalidMemoryError",
    "LexicalEmbedder",
    "MemoryConfig",
    "MemoryConflictError",
    "MemoryEntry",
    "MemoryManager",
    "MemoryQuery",
    "MemoryStore",
    "MemoryStoreError",
    "TieredStore",
    "coverage",
    "describe_memory_store",
    "is_large",
    "matches_filter",
    "similarities",
    "tokenize",
]
