"""Hand-written examples of the filter language and of every time boundary.

Literal entries, literal filters, literal expected keys: nothing here is computed by the
code under test, so a wrong operator or boundary in any store fails a named test.  The
examples follow ``docs/memory.md``; :class:`FilterExamples` is mixed into
:class:`~neuroflow.testing.MemoryStoreSuite`, so every store runs them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from neuroflow.errors import InvalidMemoryError, MemoryStoreError

T = 1_800_000_000.0

#: (key, value, tags, importance, seconds after T it is written, ttl).  ``b`` is written
#: twice (at T+1, then T+2: version 2, created_at T+1, updated_at T+2).
ENTRIES: list[tuple[str, Any, list[str], float, float, float | None]] = [
    ("a", {"n": 1, "s": "apple", "b": True, "z": None, "l": [1, "two", {"k": "v"}],
           "d": {"e": {"f": 5}}}, ["red", "fruit"], 0.2, 0, None),
    ("b", {"n": 2, "s": "banana", "b": False, "l": [], "d": {"e": {"f": "5"}}},
     ["yellow", "fruit"], 0.5, 1, None),
    ("b", {"n": 2, "s": "banana", "b": False, "l": [], "d": {"e": {"f": "5"}}},
     ["yellow", "fruit"], 0.5, 2, None),
    ("c", {"n": 2.0, "s": "Banana", "b": 1, "x": {"t": True}}, [], 0.8, 3, None),
    ("d", {"n": 3, "s": "cherry", "l": ["one"], "d": {"e": 5}}, ["red"], 1.0, 4, 1000.0),
    ("e", {"n": "2", "s": 2}, ["odd"], 0.0, 5, None),
    ("f", 7, [], 0.5, 6, None),
    ("g", None, [], 0.5, 7, None),
    ("h", [10, 20], [], 0.5, 8, None),
]
ALL = "abcdefgh"
NOT_B = "acdefgh"

#: Operator -> [(filter, the keys it selects)].
FILTER_EXAMPLES: dict[str, list[tuple[dict[str, Any], str]]] = {
    "eq": [
        ({"value.n": 2}, "bc"),
        ({"value.n": {"$eq": 2.0}}, "bc"),
        ({"value.n": {"$eq": "2"}}, "e"),
        ({"value.b": True}, "a"),
        ({"value.b": {"$eq": 1}}, "c"),
        ({"value.z": None}, "a"),
        ({"value.l": []}, "b"),
        ({"value.l": [1, "two", {"k": "v"}]}, "a"),
        ({"value.d": {"e": {"f": 5}}}, "a"),
        ({"value.d": {"e": {"f": 5.0}}}, "a"),
        ({"value.x": {"t": True}}, "c"),
        ({"value.x": {"t": 1}}, ""),
        ({"value.d.e.f": 5}, "a"),
        ({"value.d.e.f": {"$eq": "5"}}, "b"),
        ({"value": 7}, "f"),
        ({"value": 7.0}, "f"),
        ({"value": None}, "g"),
        ({"value": [10, 20]}, "h"),
        ({"value.l.1": "two"}, "a"),
        ({"value.l.2.k": "v"}, "a"),
        ({"value.l.0": 1}, "a"),
        ({"value.0": 10}, "h"),
        ({"key": "c"}, "c"),
        ({"tags": ["red", "fruit"]}, "a"),
        ({"tags": ["fruit", "red"]}, ""),
        ({"value.missing": {"$eq": None}}, ""),
        ({"value.n": 2, "value.s": "Banana"}, "c"),
    ],
    "ne": [
        ({"value.n": {"$ne": 2}}, "adefgh"),
        ({"value.z": {"$ne": None}}, "bcdefgh"),
        ({"value.b": {"$ne": True}}, "bcdefgh"),
        ({"value.d.e.f": {"$ne": 5}}, "bcdefgh"),
        ({"value.missing": {"$ne": 1}}, ALL),
        ({"value.missing.deeper": {"$ne": None}}, ALL),
        ({"key": {"$ne": "a"}}, "bcdefgh"),
        ({"expires_at": {"$ne": None}}, "d"),
    ],
    "lt": [
        ({"value.n": {"$lt": 2}}, "a"),
        ({"value.n": {"$lt": 1}}, ""),
        ({"value.n": {"$lt": "3"}}, "e"),
        ({"value.s": {"$lt": "b"}}, "ac"),
        ({"value.b": {"$lt": 2}}, "c"),
        ({"value.z": {"$lt": 1}}, ""),
        ({"value.missing": {"$lt": 1}}, ""),
        ({"importance": {"$lt": 0.5}}, "ae"),
        ({"updated_at": {"$lt": T + 1}}, "a"),
    ],
    "lte": [
        ({"value.n": {"$lte": 2}}, "abc"),
        ({"value.n": {"$lte": 0.5}}, ""),
        ({"value.s": {"$lte": "banana"}}, "abc"),
        ({"importance": {"$lte": 0.5}}, "abefgh"),
        ({"value.l": {"$lte": 5}}, ""),
        ({"updated_at": {"$lte": T + 2}}, "ab"),
    ],
    "gt": [
        ({"value.n": {"$gt": 2}}, "d"),
        ({"value.n": {"$gt": 1.5, "$lt": 2.5}}, "bc"),
        ({"value.s": {"$gt": "apple"}}, "bd"),
        ({"value.b": {"$gt": 0}}, "c"),
        ({"value.l": {"$gt": 0}}, ""),
        ({"importance": {"$gt": 0.5}}, "cd"),
        ({"expires_at": {"$gt": T}}, "d"),
        ({"value.missing": {"$gt": "a"}}, ""),
    ],
    "gte": [
        ({"value.n": {"$gte": 2}}, "bcd"),
        ({"value.n": {"$gte": "2"}}, "e"),
        ({"value.s": {"$gte": 2}}, "e"),
        ({"importance": {"$gte": 1}}, "d"),
        ({"version": {"$gte": 2}}, "b"),
        ({"updated_at": {"$gte": T + 7}}, "gh"),
        ({"key": {"$gte": "g"}}, "gh"),
    ],
    "in": [
        ({"value.n": {"$in": [2, 3]}}, "bcd"),
        ({"value.n": {"$in": ["2", 1]}}, "ae"),
        ({"value.n": {"$in": []}}, ""),
        ({"value.b": {"$in": [1]}}, "c"),
        ({"value.b": {"$in": [True, False]}}, "ab"),
        ({"value.missing": {"$in": [None]}}, ""),
        ({"value.z": {"$in": [None]}}, "a"),
        ({"key": {"$in": ["a", "h", "zz"]}}, "ah"),
        ({"value.l": {"$in": [[]]}}, "b"),
        ({"tags": {"$in": [["red"]]}}, "d"),
    ],
    "contains": [
        ({"value.s": {"$contains": "an"}}, "bc"),
        ({"value.s": {"$contains": "B"}}, "c"),
        ({"value.s": {"$contains": ""}}, "abcd"),
        ({"value.l": {"$contains": "two"}}, "a"),
        ({"value.l": {"$contains": 1}}, "a"),
        ({"value.l": {"$contains": 1.0}}, "a"),
        ({"value.l": {"$contains": {"k": "v"}}}, "a"),
        ({"value.l": {"$contains": True}}, ""),
        ({"tags": {"$contains": "red"}}, "ad"),
        ({"value.n": {"$contains": 2}}, ""),
        ({"value.s": {"$contains": 2}}, ""),
        ({"value.missing": {"$contains": "x"}}, ""),
        ({"value": {"$contains": 10}}, "h"),
    ],
    "exists": [
        ({"value.z": {"$exists": True}}, "a"),
        ({"value.z": {"$exists": False}}, "bcdefgh"),
        ({"value.l": {"$exists": True}}, "abd"),
        ({"value.d.e.f": {"$exists": True}}, "ab"),
        ({"value.d.e": {"$exists": True}}, "abd"),
        ({"value.d.e.f.g": {"$exists": True}}, ""),
        ({"value.l.5": {"$exists": True}}, ""),
        ({"value.l.0": {"$exists": True}}, "ad"),
        ({"value.s.0": {"$exists": True}}, ""),
        ({"value.0": {"$exists": True}}, "h"),
        ({"value": {"$exists": True}}, ALL),
        ({"expires_at": {"$exists": True}}, ALL),
        ({"key": {"$exists": False}}, ""),
        ({"value.n": {"$exists": True, "$ne": 2}}, "ade"),
        ({"value.missing.deeper": {"$exists": False}}, ALL),
    ],
    "and": [
        ({"$and": [{"value.n": {"$gte": 2}}, {"tags": {"$contains": "red"}}]}, "d"),
        ({"$and": [{"key": "a"}, {"key": "b"}]}, ""),
        ({"$and": [{"value.z": {"$exists": False}}, {"value.z": {"$exists": True}}]}, ""),
        ({"$and": [{"value.n": 2}, {"$and": [{"importance": {"$gte": 0.5}}]}]}, "bc"),
        ({"value.n": {"$gte": 2}, "$and": [{"tags": {"$contains": "fruit"}}]}, "b"),
    ],
    "or": [
        ({"$or": [{"key": "a"}, {"value.s": {"$contains": "err"}}]}, "ad"),
        ({"$or": [{"value.missing": 1}, {"value.n": 3}]}, "d"),
        ({"$or": [{"value.z": {"$exists": False}}, {"value.z": {"$exists": True}}]}, ALL),
        ({"$or": [{"$and": [{"value.n": 1}, {"value.b": True}]},
                  {"$not": {"importance": {"$lt": 1}}}]}, "ad"),
        ({"key": {"$lt": "c"}, "$or": [{"key": "b"}, {"key": "e"}]}, "b"),
    ],
    "not": [
        ({"$not": {"value.n": 2}}, "adefgh"),
        ({"$not": {"value.n": {"$exists": True}}}, "fgh"),
        ({"$not": {"$not": {"key": "a"}}}, "a"),
        ({"$not": {"$or": [{"key": "a"}, {"key": "b"}]}}, "cdefgh"),
        ({"$not": {"value.missing": {"$ne": 1}}}, ""),
        ({"$not": {"value.n": {"$lt": 2}}}, "bcdefgh"),
        ({"value.n": {"$gte": 2}, "$not": {"key": "d"}}, "bc"),
        ({"$not": {"$and": [{"value.z": {"$exists": False}},
                            {"value.z": {"$exists": True}}]}}, ALL),
    ],
    "fields": [
        ({"version": 1}, NOT_B),
        ({"created_at": T + 1}, "b"),
        ({"updated_at": T + 2}, "b"),
        ({"created_at": {"$gte": T + 1, "$lt": T + 3}}, "b"),
        ({"expires_at": None}, "abcefgh"),
        ({"expires_at": T + 4 + 1000}, "d"),
        ({"importance": 0.5}, "bfgh"),
    ],
}

#: Filters refused before anything is read, with a word the message must contain.
BAD_FILTERS: list[tuple[Any, str]] = [
    ({"value.n": {"$nin": [1]}}, r"\$nin"),
    ({"value.n": {"$regex": "a"}}, r"\$regex"),
    ({"value.n": {"$in": 1}}, r"\$in"),
    ({"value.n": {"$exists": 1}}, r"\$exists"),
    ({"value.n": {"$lt": [1]}}, r"\$lt"),
    ({"value.n": {"$gte": None}}, r"\$gte"),
    ({"$and": []}, r"\$and"),
    ({"$or": {}}, r"\$or"),
    ({"$not": 3}, r"\$not"),
    ({"$nor": [{"key": "a"}]}, r"\$nor"),
    ({"nonsense": 1}, "nonsense"),
    ({"value.n": float("nan")}, "value.n"),
    ([{"key": "a"}], "filter"),
]


async def seed(manager: Any, clock: Any, agent: str) -> None:
    """Write :data:`ENTRIES` for ``agent`` (the clock is set to each entry's time)."""
    for key, value, tags, importance, at, ttl in ENTRIES:
        clock.now = T + at
        await manager.store_memory(agent, key, value, tags=tags, importance=importance,
                                   ttl=ttl)
    clock.now = T + 10


def _keys(entries: list[Any]) -> str:
    return "".join(sorted(e.key for e in entries))


class FilterExamples:
    """The literal examples, run against the suite's store (mixed into the suite)."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("operator", sorted(FILTER_EXAMPLES))
    async def test_filter_examples(self, manager: Any, clock: Any, operator: str) -> None:
        """list_memories and search_memories select exactly the literal keys."""
        await seed(manager, clock, "x")
        await manager.store_memory("other", "a", ENTRIES[0][1], tags=["red"])
        for flt, want in FILTER_EXAMPLES[operator]:
            listed = await manager.list_memories("x", filter=flt, limit=None)
            assert _keys(listed) == want, ("list", flt)
            found = await manager.search_memories("x", filter=flt, limit=50)
            assert _keys(found) == want, ("search", flt)
        await manager.aclose()

    @pytest.mark.anyio
    @pytest.mark.parametrize("operator", sorted(FILTER_EXAMPLES))
    async def test_filter_examples_delete(self, manager: Any, clock: Any,
                                          operator: str) -> None:
        """delete_memories removes exactly the literal keys (and counts them)."""
        for i, (flt, want) in enumerate(FILTER_EXAMPLES[operator]):
            agent = f"del{i}"
            await seed(manager, clock, agent)
            assert await manager.delete_memories(agent, filter=flt) == len(want), flt
            left = await manager.list_memories(agent, limit=None)
            assert _keys(left) == "".join(k for k in ALL if k not in want), flt
        await manager.aclose()

    @pytest.mark.anyio
    async def test_bad_filters_are_refused_before_reading(self, manager: Any) -> None:
        await manager.store_memory("a", "k", 1)
        for flt, word in BAD_FILTERS:
            for call in (manager.list_memories, manager.search_memories):
                with pytest.raises(InvalidMemoryError, match=word):
                    await call("a", filter=flt)
            with pytest.raises(InvalidMemoryError, match=word):
                await manager.delete_memories("a", filter=flt)
        assert [e.key for e in await manager.list_memories("a")] == ["k"]
        await manager.aclose()

    @pytest.mark.anyio
    async def test_time_window_boundaries(self, manager: Any, clock: Any) -> None:
        """``since`` is inclusive, ``until`` exclusive, on ``updated_at``; datetimes too."""
        for i, key in enumerate(["t0", "t1", "t2", "t3"]):
            clock.now = T + i
            await manager.store_memory("w", key, i)
        clock.now = T + 1
        await manager.update_memory("w", "t0", value="moved")  # updated_at T+1 now
        clock.now = T + 100
        cases: list[tuple[dict[str, Any], str]] = [
            ({"since": T + 1}, "t0 t1 t2 t3"),
            ({"since": T + 1.5}, "t2 t3"),
            ({"since": T + 3}, "t3"),
            ({"since": T + 3.000001}, ""),
            ({"until": T + 1}, ""),
            ({"until": T + 1.000001}, "t0 t1"),
            ({"until": T + 2}, "t0 t1"),
            ({"since": T + 1, "until": T + 2}, "t0 t1"),
            ({"since": T + 2, "until": T + 2}, ""),
            ({"since": T + 3, "until": T + 1}, ""),
            ({"since": dt.datetime.fromtimestamp(T + 2, dt.UTC)}, "t2 t3"),
            ({"until": dt.datetime.fromtimestamp(T + 2, dt.UTC)}, "t0 t1"),
        ]
        for window, want in cases:
            for call in (manager.list_memories, manager.search_memories):
                got = " ".join(sorted(e.key for e in await call("w", **window)))
                assert got == want, (call.__name__, window)
        assert await manager.delete_memories("w", since=T + 2, until=T + 3) == 1
        assert " ".join(e.key for e in await manager.list_memories("w")) == "t0 t1 t3"
        await manager.aclose()

    @pytest.mark.anyio
    async def test_importance_and_tag_boundaries(self, manager: Any) -> None:
        await manager.store_memory("i", "low", 1, tags=["x"], importance=0.0)
        await manager.store_memory("i", "half", 1, tags=["x", "y"], importance=0.5)
        await manager.store_memory("i", "top", 1, tags=["y"], importance=1.0)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"min_importance": 0.5}, "half top"),
            ({"min_importance": 1.0}, "top"),
            ({"min_importance": 0.0}, "half low top"),
            ({"min_importance": 0.500001}, "top"),
            ({"tags": ["x"]}, "half low"),
            ({"tags": ["x", "y"]}, "half low top"),
            ({"tags": ["x", "y"], "tag_mode": "all"}, "half"),
            ({"tags": ["x", "nope"], "tag_mode": "all"}, ""),
            ({"tags": ["nope"]}, ""),
            ({"tags": ["X"]}, ""),
        ]
        for kwargs, want in cases:
            for call in (manager.list_memories, manager.search_memories):
                got = " ".join(sorted(e.key for e in await call("i", **kwargs)))
                assert got == want, (call.__name__, kwargs)
        await manager.aclose()

    @pytest.mark.anyio
    async def test_expiry_exactly_now(self, manager: Any, clock: Any) -> None:
        """An entry whose ``expires_at`` equals now is gone everywhere; a moment before,
        it is there."""
        clock.now = T
        await manager.store_memory("x", "ttl", 1, ttl=10, tags=["t"])
        await manager.store_memory("x", "abs", 2, expires_at=T + 20, tags=["t"])
        await manager.store_memory("x", "keep", 3, tags=["t"])

        async def visible() -> dict[str, str]:
            return {
                "list": " ".join(e.key for e in await manager.list_memories("x")),
                "search": " ".join(sorted(e.key for e in await manager.search_memories(
                    "x", tags=["t"]))),
                "filter": " ".join(e.key for e in await manager.list_memories(
                    "x", filter={"expires_at": {"$ne": None}})),
            }

        clock.now = T + 9.5
        assert await visible() == {"list": "abs keep ttl", "search": "abs keep ttl",
                                   "filter": "abs ttl"}
        clock.now = T + 10
        assert await visible() == {"list": "abs keep", "search": "abs keep", "filter": "abs"}
        assert await manager.retrieve_memory("x", "ttl") is None
        assert (await manager.stats())["expired"] == 1
        with pytest.raises(MemoryStoreError):
            await manager.update_memory("x", "ttl", value=9)
        assert not await manager.delete_memory("x", "ttl")  # removed as expired
        clock.now = T + 20
        assert await manager.retrieve_memory("x", "abs") is None
        assert await manager.delete_memories("x", tags=["t"]) == 1  # only "keep" is live
        # A key whose entry expired exactly now can be created again (version 1).
        again = await manager.store_memory("x", "abs", 4, expected_version=0)
        assert again.version == 1 and again.created_at == T + 20
        await manager.aclose()
