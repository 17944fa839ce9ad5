"""``MemoryManager.store_many``: batched embedding off the event loop, checks per item."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import anyio
import numpy as np
import pytest

from neuroflow.errors import InvalidMemoryError
from neuroflow.memory import MemoryConfig, MemoryManager
from neuroflow.memory.embedders import LexicalEmbedder
from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.memory.tiered import TieredStore


class SlowCountingEmbedder:
    """Lexical vectors, but each call takes 50 ms and is recorded with its thread."""

    def __init__(self) -> None:
        self.inner = LexicalEmbedder()
        self.name, self.dimension = self.inner.name, self.inner.dimension
        self.calls: list[tuple[int, str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append((len(texts), threading.current_thread().name))
        time.sleep(0.05)
        return self.inner.embed(texts)


def items(n: int, agent: str = "a") -> list[dict[str, Any]]:
    return [{"agent_id": agent, "key": f"k{i}", "value": {"text": f"note {i} w{i}"},
             "tags": ["t", f"t{i % 3}"], "importance": i / n} for i in range(n)]


@pytest.mark.anyio
@pytest.mark.parametrize("tiered", [False, True])
async def test_one_embedder_call_per_batch_in_a_worker_thread(tiered: bool) -> None:
    embedder = SlowCountingEmbedder()
    store: Any = TieredStore(InMemoryStore(), hot_entries=5) if tiered else InMemoryStore()
    manager = MemoryManager(MemoryConfig(), store=store, embedder=embedder)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.005)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        stored = await manager.store_many(items(25), batch_size=10)
        tg.cancel_scope.cancel()
    assert [n for n, _ in embedder.calls] == [10, 10, 5]
    assert all(name != threading.main_thread().name for _, name in embedder.calls)
    assert ticks >= 10  # 150 ms of embedding did not stop the loop
    assert [e.key for e in stored] == [f"k{i}" for i in range(25)]
    assert all(e.version == 1 for e in stored)
    got = await manager.retrieve_memory("a", "k7")
    assert got is not None and got.value == {"text": "note 7 w7"} and got.tags == ("t", "t1")
    found = await manager.search_memories("a", "w13", limit=1)
    assert [e.key for e in found] == ["k13"]
    # The same vectors as storing one by one.
    one = MemoryManager(MemoryConfig(), store=InMemoryStore(), embedder=LexicalEmbedder())
    await one.store_memory("a", "k13", {"text": "note 13 w13"}, tags=["t", "t1"],
                           importance=13 / 25)
    assert (await one.search_memories("a", "w13"))[0].score == pytest.approx(found[0].score)


@pytest.mark.anyio
async def test_a_bad_item_names_its_index_and_its_batch_is_not_stored() -> None:
    manager = MemoryManager(MemoryConfig(), store=InMemoryStore(), embedder="lexical")
    bad = items(6)
    bad[4]["importance"] = 3
    with pytest.raises(InvalidMemoryError, match=r"^items\[4\]\.importance: "):
        await manager.store_many(bad, batch_size=3)
    assert sorted(e.key for e in await manager.list_memories("a")) == ["k0", "k1", "k2"]
    for item, message in [({"agent_id": "a", "key": "x"}, r"items\[0\]\.value: missing"),
                          ({"agent_id": "a", "key": "x", "value": 1, "colour": 2},
                           r"items\[0\]\.colour: not a memory field"),
                          ("text", r"items\[0\]\.item: expected a mapping")]:
        with pytest.raises(InvalidMemoryError, match=message):
            await manager.store_many([item])
    with pytest.raises(InvalidMemoryError, match="batch_size"):
        await manager.store_many(items(1), batch_size=0)


@pytest.mark.anyio
async def test_eviction_runs_after_each_batch() -> None:
    manager = MemoryManager(MemoryConfig(max_entries=5), store=InMemoryStore(),
                            embedder="lexical")
    await manager.store_many(items(12), batch_size=4)
    left = await manager.list_memories("a")
    # The lowest importance goes first: the five highest of the twelve are kept.
    assert sorted(e.key for e in left) == sorted(f"k{i}" for i in range(7, 12))
