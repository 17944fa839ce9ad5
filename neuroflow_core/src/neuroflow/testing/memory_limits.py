"""Conformance tests of the limits every store shares: nesting depth, value size, and
bulk deletes whose filter is no condition (mixed into
:class:`~neuroflow.testing.MemoryStoreSuite`)."""

from __future__ import annotations

from typing import Any

import pytest

from neuroflow.errors import InvalidMemoryError

#: Filters that hold for every entry by their form: each is no condition.
MATCH_EVERYTHING: list[dict[str, Any]] = [
    {},
    {"$and": [{}]},
    {"$or": [{}]},
    {"$and": [{}, {"$or": [{}, {"key": "a"}]}]},
    {"$not": {"$not": {}}},
    {"$or": [{"key": "a"}, {}]},
    {"key": {"$exists": True}},
    {"value": {"$exists": True}},
    {"expires_at": {"$exists": True}},
    {"$not": {"importance": {"$exists": False}}},
    {"$or": [{"value.x": {"$exists": False}}, {"value.x": {"$exists": True}}]},
    {"$not": {"$and": [{"value.x": {"$exists": False}}, {"value.x": {"$exists": True}}]}},
    {"$or": [{"key": "a"}, {"$not": {"key": "a"}}]},
    {"$or": [{"value.n": 1}, {"value.n": {"$ne": 1}}]},
    {"$not": {"value.n": {"$eq": 1, "$ne": 1}}},
]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _not_chain(depth: int) -> dict[str, Any]:
    flt: dict[str, Any] = {"key": "k"}
    for _ in range(depth):
        flt = {"$not": flt}
    return flt


class LimitExamples:
    """Limits and refusals, the same on every store."""

    @pytest.mark.anyio
    async def test_filters_that_match_everything_are_no_condition(
        self, manager: Any
    ) -> None:
        for agent in ("a", "b"):
            for key in ("a", "b"):
                await manager.store_memory(agent, key, {"n": 1})
        for flt in MATCH_EVERYTHING:
            with pytest.raises(InvalidMemoryError, match="everything"):
                await manager.delete_memories(filter=flt)
        with pytest.raises(InvalidMemoryError, match="everything"):
            await manager.delete_memories(min_importance=0)
        assert len(await manager.list_memories()) == 4
        # Real conditions still delete without everything=True ...
        assert await manager.delete_memories(filter={"$not": {}}) == 0
        assert await manager.delete_memories(
            filter={"$or": [{"key": "a"}, {"value.missing": 1}]}) == 2
        # ... and a filter that matches everything does with it.
        assert await manager.delete_memories(filter={"$and": [{}]}, everything=True) == 2
        assert await manager.list_memories() == []
        await manager.aclose()

    @pytest.mark.anyio
    async def test_deep_values_and_filters_are_refused_naming_the_limit(
        self, manager: Any
    ) -> None:
        with pytest.raises(InvalidMemoryError, match=r"value: .*max_value_depth = 100"):
            await manager.store_memory("a", "k", _nested(100_000))
        with pytest.raises(InvalidMemoryError, match=r"max_value_depth"):
            await manager.store_memory("a", "k", {"deep": _nested(101)})
        loop: list[Any] = []
        loop.append(loop)  # a value that contains itself is infinitely deep
        with pytest.raises(InvalidMemoryError, match=r"max_value_depth"):
            await manager.store_memory("a", "k", loop)
        await manager.store_memory("a", "k", _nested(100))
        with pytest.raises(InvalidMemoryError, match=r"max_value_depth"):
            await manager.update_memory("a", "k", value=_nested(5_000))
        assert (await manager.retrieve_memory("a", "k")).value == _nested(100)
        chain = _not_chain(5_000)
        for call in (manager.list_memories, manager.search_memories,
                     manager.delete_memories):
            with pytest.raises(InvalidMemoryError, match=r"filter: .*max_filter_depth = 64"):
                await call("a", filter=chain)
        with pytest.raises(InvalidMemoryError, match=r"max_filter_depth"):
            await manager.list_memories("a", filter={"value": {"$eq": _nested(100_000)}})
        assert [e.key for e in await manager.list_memories("a", filter=_not_chain(62))] \
            == ["k"]
        assert await manager.list_memories("a", filter=_not_chain(63)) == []
        await manager.aclose()

    @pytest.mark.anyio
    async def test_configured_limits_hold_at_their_edge(
        self, memory_store: Any, clock: Any
    ) -> None:
        from neuroflow.testing.memory import make_manager

        manager = make_manager(memory_store, clock, max_value_depth=3, max_value_bytes=64,
                               max_filter_depth=4)
        await manager.store_memory("a", "edge", {"a": {"b": [1]}})
        with pytest.raises(InvalidMemoryError, match=r"max_value_depth = 3"):
            await manager.store_memory("a", "deep", {"a": {"b": [[1]]}})
        text = "x" * 62  # 64 bytes as JSON, with the quotes
        await manager.store_memory("a", "big", text)
        with pytest.raises(InvalidMemoryError, match=r"65 bytes .*max_value_bytes = 64"):
            await manager.store_memory("a", "bigger", text + "x")
        with pytest.raises(InvalidMemoryError, match=r"max_value_bytes = 64"):
            await manager.store_memory("a", "wide", "é" * 32)  # 66 bytes in UTF-8
        with pytest.raises(InvalidMemoryError, match=r"max_value_bytes"):
            await manager.update_memory("a", "big", value=text + "x")
        assert (await manager.retrieve_memory("a", "big")).value == text
        assert [e.key for e in await manager.list_memories(
            "a", filter={"$not": {"$not": {"$not": {"key": "big"}}}})] == ["edge"]
        with pytest.raises(InvalidMemoryError, match=r"max_filter_depth = 4"):
            await manager.list_memories("a", filter={"$not": {"$not": {"$not": {"$not": {
                "key": "big"}}}}})
        await manager.aclose()


#: An 8 MiB value of ordinary text.
EIGHT_MIB = 8 * 1024 * 1024


def big_value() -> dict[str, Any]:
    """``{"text": ...}`` of 8 MiB of words (about 1.4 million of them)."""
    words = " ".join(f"word{i % 5000} text{i % 77}" for i in range(EIGHT_MIB // 10))
    return {"text": words[:EIGHT_MIB]}


async def longest_pause(work: Any) -> tuple[float, Any]:
    """Run ``await work()`` while a ticker task wakes every 10 ms; return the longest time
    the ticker waited between two wake-ups (how long the event loop was blocked, at most)
    and what ``work`` returned."""
    import time

    import anyio

    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.05)
        try:
            result = await work()
        finally:
            done.set()
    return max(gaps), result
