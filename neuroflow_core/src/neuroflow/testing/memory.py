"""``MemoryStoreSuite``: the conformance tests every memory store must pass.

Subclass it in your plugin's tests and override the ``memory_store`` fixture to return a
fresh, unopened store::

    from neuroflow.testing import MemoryStoreSuite

    class TestRedisStore(MemoryStoreSuite):
        @pytest.fixture
        def memory_store(self):
            return RedisStore(RedisStoreConfig(url=..., prefix=unique_prefix()))

Every test drives the store through a :class:`~neuroflow.memory.MemoryManager` with a
clock the test controls (no sleeping).  ``test_matches_reference_model`` is a hypothesis
state machine: random sequences of store (single, batches) / update (value, tags,
importance, ttl) / delete / bulk delete / search (limits below the match count, since/until,
non-ASCII text) / list / history / clock advance / sweep, with expiry meeting eviction,
each answer compared with :class:`ReferenceMemory`, a
deliberately naive model of the documented semantics.  Async tests are marked
``anyio``; they run under every backend your ``anyio_backend`` fixture names.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest

from neuroflow.backends import create_backend
from neuroflow.errors import InvalidMemoryError, MemoryConflictError, MemoryStoreError
from neuroflow.memory.config import MemoryConfig
from neuroflow.memory.manager import MemoryManager
from neuroflow.memory.model import HistoryRecord, MemoryQuery
from neuroflow.testing.memory_examples import FilterExamples
from neuroflow.testing.memory_limits import LimitExamples
from neuroflow.testing.memory_model import (
    ABSENT,
    ReferenceMemory,
    RefQuery,
    VocabularyEmbedder,
    field,
)

START = 1_700_000_000.0
_BACKENDS = ["asyncio", *(["trio"] if importlib.util.find_spec("trio") else [])]
_runs = itertools.count()


class Clock:
    """A clock tests move by hand: ``clock()`` returns ``clock.now``."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


def make_manager(store: Any, clock: Clock, *, embedder: Any = None,
                 **config: Any) -> MemoryManager:
    """A manager over ``store`` with a hand-moved clock (and the lexical embedder, unless
    another is given)."""
    settings = {"gc_interval_seconds": 1e9, **config}
    return MemoryManager(MemoryConfig(**settings), store=store,
                         embedder=embedder or create_backend("embedder", "lexical"), clock=clock)


def _history_ops(records: list[HistoryRecord]) -> list[tuple[str, int]]:
    return [(r.op, r.version) for r in records]


def _query(agent: str, **kw: Any) -> RefQuery:
    kw["tags"] = tuple(kw.get("tags") or ())
    return RefQuery(agent_id=agent, **kw)


@contextmanager
def _portal(backend: str) -> Iterator[Any]:
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal(backend) as portal:
        yield portal


#: Random filters: each path with operands that often equal what entries hold, plus
#: operands of every other JSON type, so that boundaries and type mismatches are common.
_SOME = [0, 2.5, "2", "zh", "e", True, False, None, [1, "x"], {"in": 2}]
_PATH_OPERANDS: dict[str, list[Any]] = {
    "value.stars": [0, 1, 2, 3, 4, 5, 2.0, 2.5, "3"],
    "value.lang": ["zh", "en", "fr", "f", "z", "e"],
    "value.opt": [1, 2.5, "2", True, None, 1.0, 2, [1, "x"], {"in": 2}],
    "value.opt.in": [2, 2.0, 1, "2"],
    "value.opt.1": ["x", "w", "y", 1],
    "value.text": ["dark", "tea", "thé", "深色", "d", "z"],
    "importance": [0.0, 0.2, 0.5, 0.8, 1.0, 1],
    "key": ["a", "c", "d", "f", "b"],
    "tags": ["pref", "ui", "food", ["ui"]],
    "version": [1, 2, 3],
    "value.missing": [0, "a", None],
    "value.stars.deeper": [0, None],
    "value": [None, {"lang": "zh"}],
    "expires_at": [None, 0, 1e12],
}
_ORDERED = ("$gt", "$gte", "$lt", "$lte")


def _filter_strategy(words: list[str]) -> Any:
    """Random filters of every operator over present, missing and nested fields."""
    from hypothesis import strategies as st

    def leaf_for(path: str) -> Any:
        operand = st.sampled_from(_PATH_OPERANDS[path] + _SOME).filter(
            lambda o: not isinstance(o, dict) or path != "value")
        orderable = operand.filter(lambda o: isinstance(o, (int, float, str))
                                   and not isinstance(o, bool))
        one_op = st.one_of(
            st.tuples(st.sampled_from(("$eq", "$ne", "$contains")), operand),
            st.tuples(st.sampled_from(_ORDERED), orderable),
            st.tuples(st.just("$in"), st.lists(operand, min_size=1, max_size=3)),
            st.tuples(st.just("$exists"), st.booleans()),
        )
        condition = st.one_of(
            st.lists(one_op, min_size=1, max_size=2).map(dict),
            operand.filter(lambda o: not isinstance(o, dict)),  # a bare value means $eq
        )
        return condition.map(lambda c: {path: c})

    paths = ["value.stars", "value.stars", "value.lang", "value.opt", "value.opt",
             "importance", *_PATH_OPERANDS]
    leaf = st.sampled_from(paths).flatmap(leaf_for)
    return st.recursive(leaf, lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$and": fs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$or": fs}),
        inner.map(lambda f: {"$not": f}),
        st.tuples(leaf, inner).map(lambda p: {**p[0], "$not": p[1]}),
    ), max_leaves=4)


def _build_machine(store: Any, portal: Any) -> type:
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

    words = ["dark", "theme", "green", "tea", "jazz", "night", "mode", "light",
             "thé", "naïve", "深色", "主题", "Straße", "ёлка"]
    agents = st.sampled_from(["alice", "bob"])
    keys = st.sampled_from(["a", "b", "c", "d", "e", "f"])
    values = st.fixed_dictionaries({
        "lang": st.sampled_from(["zh", "en", "fr"]),
        "stars": st.integers(0, 5),
        "text": st.lists(st.sampled_from(words), min_size=1, max_size=4).map(" ".join),
    }, optional={"opt": st.sampled_from([1, 2.5, "2", True, None, [1, "x"], {"in": 2}])})
    tag_lists = st.lists(st.sampled_from(["pref", "ui", "food", "music"]), max_size=3)
    importances = st.sampled_from([0.0, 0.2, 0.5, 0.5, 0.8, 1.0])
    ttls = st.one_of(st.none(), st.sampled_from([1.0, 5.0, 20.0]))
    texts = st.one_of(st.none(), st.lists(st.sampled_from(words), min_size=1,
                                          max_size=3).map(" ".join))
    filters = st.one_of(st.none(), _filter_strategy(words))
    def rarely(strategy: Any, otherwise: Any = None) -> Any:
        """Mostly ``otherwise`` (no condition), so that combined conditions still match."""
        return st.sampled_from([False, False, False, True]).flatmap(
            lambda on: strategy if on else st.just(otherwise))

    batches = st.lists(st.tuples(keys, values, tag_lists, importances, ttls),
                       min_size=2, max_size=5)
    config = MemoryConfig(max_entries=4, gc_interval_seconds=1e9)
    base = {"now": START}

    class MemoryMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = Clock(base["now"])
            base["now"] += 1e7
            self.run = f"r{next(_runs)}-{id(self):x}-"
            self.manager = make_manager(store, self.clock, max_entries=config.max_entries,
                                        embedder=VocabularyEmbedder(words))
            self.model = ReferenceMemory(config, self.clock)

        def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
            async def run() -> Any:
                return await fn(*args, **kwargs)
            return portal.call(run)

        def both(self, ours: Any, theirs: Any) -> tuple[Any, Any]:
            results = []
            for fn in (ours, theirs):
                try:
                    results.append(("ok", fn()))
                except MemoryConflictError as exc:
                    results.append(("conflict", exc.actual))
                except MemoryStoreError as exc:
                    results.append(("error", type(exc).__name__))
            assert results[0][0] == results[1][0], results
            return results[0], results[1]

        @rule(agent=agents, key=keys, value=values, tags=tag_lists, importance=importances,
              ttl=ttls, versioned=st.sampled_from([None, "current", "stale"]))
        def store(self, agent: str, key: str, value: Any, tags: list[str], importance: float,
                  ttl: float | None, versioned: str | None) -> None:
            agent = self.run + agent
            live = self.model.retrieve(agent, key)
            expected = None if versioned is None else (
                (live.version if live else 0) + (0 if versioned == "current" else 1))
            ours, theirs = self.both(
                lambda: self.call(self.manager.store_memory, agent, key, value, tags,
                                  importance, ttl=ttl, expected_version=expected),
                lambda: self.model.store(agent, key, value, tuple(tags), importance, ttl,
                                         expected))
            assert ours == theirs

        @initialize(alice=batches, bob=batches)
        def seed(self, alice: list[Any], bob: list[Any]) -> None:
            self.store_many("alice", alice)
            self.store_many("bob", bob)

        @rule(agent=agents, batch=batches)
        def store_many(self, agent: str, batch: list[Any]) -> None:
            agent = self.run + agent
            for key, value, tags, importance, ttl in batch:
                ours, theirs = self.both(
                    partial(self.call, self.manager.store_memory, agent, key, value, tags,
                            importance, ttl=ttl),
                    partial(self.model.store, agent, key, value, tuple(tags), importance, ttl,
                            None))
                assert ours == theirs
                assert ours[1].evicted == theirs[1].evicted

        @rule(agent=agents, key=keys, importance=importances,
              versioned=st.sampled_from([None, "current", "stale"]),
              value=st.one_of(st.none(), values), tags=st.one_of(st.none(), tag_lists),
              ttl=st.sampled_from(["keep", None, 1.0, 20.0]))
        def update(self, agent: str, key: str, importance: float, versioned: str | None,
                   value: Any, tags: list[str] | None, ttl: Any) -> None:
            agent = self.run + agent
            live = self.model.retrieve(agent, key)
            expected = None if versioned is None else (
                (live.version if live else 0) + (0 if versioned == "current" else 1))
            changes: dict[str, Any] = {}
            if value is not None:
                changes["value"] = value
            if tags is not None:
                changes["tags"] = tags
            ours_changes = dict(changes)
            if ttl != "keep":
                changes["ttl"] = ttl
                if ttl is None:
                    ours_changes["expires_at"] = None
                else:
                    ours_changes["ttl"] = ttl
            ours, theirs = self.both(
                lambda: self.call(self.manager.update_memory, agent, key, importance=importance,
                                  expected_version=expected, **ours_changes),
                lambda: self.model.update(agent, key, importance, expected, **changes))
            assert ours == theirs

        @rule(agent=agents, key=keys)
        def retrieve(self, agent: str, key: str) -> None:
            agent = self.run + agent
            assert self.call(self.manager.retrieve_memory, agent, key) == \
                self.model.retrieve(agent, key)

        @rule(agent=agents, key=keys)
        def delete(self, agent: str, key: str) -> None:
            agent = self.run + agent
            assert self.call(self.manager.delete_memory, agent, key) == \
                self.model.delete(agent, key)

        @rule(agent=agents, tags=tag_lists.filter(bool), flt=filters)
        def delete_many(self, agent: str, tags: list[str], flt: Any) -> None:
            agent = self.run + agent
            got = self.call(self.manager.delete_memories, agent, tags=tags, filter=flt)
            assert got == self.model.delete_where(_query(agent, tags=tags, filter=flt))

        @rule(seconds=st.sampled_from([1.0, 4.0, 10.0]))
        def advance(self, seconds: float) -> None:
            self.clock.advance(seconds)

        @rule()
        def sweep(self) -> None:
            assert self.call(self.manager.sweep) == self.model.sweep()

        @rule(agent=agents, text=texts, tags=rarely(tag_lists, []),
              mode=st.sampled_from(["any", "all"]),
              min_importance=rarely(st.sampled_from([0.3, 0.6])),
              flt=rarely(filters), limit=st.sampled_from([1, 2, 3, 50]),
              since=rarely(st.sampled_from([3.0, 12.0])),
              until=rarely(st.sampled_from([0.0, 6.0])))
        def search(self, agent: str, text: str | None, tags: list[str], mode: str,
                   min_importance: float | None, flt: Any, limit: int,
                   since: float | None, until: float | None) -> None:
            agent = self.run + agent
            window = {
                "since": None if since is None else self.clock.now - since,
                "until": None if until is None else self.clock.now - until,
            }
            got = self.call(self.manager.search_memories, agent, text, tags=tags,
                            tag_mode=mode, min_importance=min_importance, filter=flt,
                            limit=limit, **window)
            want = self.model.search(
                _query(agent, tags=tags, tag_mode=mode, min_importance=min_importance,
                       filter=flt, **window), text)
            assert len(got) == min(limit, len(want))
            assert len({e.key for e in got}) == len(got) and {e.key for e in got} <= set(want)
            for e in got:
                assert math.isclose(e.score, want[e.key], rel_tol=1e-6, abs_tol=1e-6), e
            scores = [e.score for e in got]
            assert scores == sorted(scores, reverse=True)
            # Truncation keeps the best: nothing left out scores clearly higher.
            left_out = [v for k, v in want.items() if k not in {e.key for e in got}]
            if got and left_out:
                assert max(left_out) <= min(scores) + 1e-6

        @rule(agent=agents, flts=st.lists(_filter_strategy(words), min_size=4, max_size=8))
        def filtered_lists(self, agent: str, flts: list[Any]) -> None:
            agent = self.run + agent
            for flt in flts:
                got = self.call(self.manager.list_memories, agent, filter=flt, limit=None)
                assert [e.key for e in got] == \
                    [e.key for e in self.model.list(_query(agent, filter=flt))], flt

        @rule(agent=agents, data=st.data())
        def boundary_filters(self, agent: str, data: Any) -> None:
            """Every operator (and its ``$not``) with an operand equal to a stored field."""
            agent = self.run + agent
            live = self.model.list(_query(agent))
            if not live:
                return
            entry = data.draw(st.sampled_from(live))
            path = data.draw(st.sampled_from(["value.stars", "value.lang", "value.opt",
                                              "importance", "key", "version", "updated_at",
                                              "created_at", "value.opt.in"]))
            have = field(entry, path)
            if have is ABSENT:
                have = 0
            ops: list[dict[str, Any]] = [
                {"$eq": have}, {"$ne": have}, {"$in": [have]}, {"$contains": have},
                {"$exists": True}, {"$exists": False}]
            if isinstance(have, (int, float, str)) and not isinstance(have, bool):
                ops += [{op: have} for op in _ORDERED]
            for cond in ops:
                for flt in ({path: cond}, {"$not": {path: cond}}):
                    got = self.call(self.manager.list_memories, agent, filter=flt, limit=None)
                    assert [e.key for e in got] == \
                        [e.key for e in self.model.list(_query(agent, filter=flt))], flt

        @rule(agent=agents, tags=tag_lists)
        def list_(self, agent: str, tags: list[str]) -> None:
            agent = self.run + agent
            got = self.call(self.manager.list_memories, agent, tags=tags, limit=None)
            assert got == self.model.list(_query(agent, tags=tags))

        @rule(agent=agents, key=keys)
        def history(self, agent: str, key: str) -> None:
            agent = self.run + agent
            got = _history_ops(self.call(self.manager.history, agent, key))
            assert got == self.model.history(agent, key)

        @invariant()
        def counts_agree(self) -> None:
            for agent in ("alice", "bob"):
                agent = self.run + agent
                got = self.call(self.manager.list_memories, agent, limit=None)
                assert len(got) == len(self.model.list(_query(agent)))

        def teardown(self) -> None:
            # Leave nothing behind for the next example (they share the store).
            self.clock.advance(1e6)
            self.call(self.manager.sweep)
            for agent in ("alice", "bob"):
                self.call(self.manager.delete_memories, self.run + agent)

    return MemoryMachine


class _DeletesAfterCandidates:
    """A real store whose ``candidates`` is followed by deleting ``victims`` (a race, made
    deterministic: another writer deleting between the ranking read and the fetch)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.victims: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def candidates(self, query: MemoryQuery, **kwargs: Any) -> Any:
        found = await self.store.candidates(query, **kwargs)
        for agent, key in self.victims:
            await self.store.delete(agent, key, now=kwargs["now"], keep_history=True)
        self.victims = []
        return found

    async def nearest(self, query: MemoryQuery, **kwargs: Any) -> Any:
        """The same race for a store that answers from a vector index."""
        near = getattr(self.store, "nearest", None)
        if near is None:
            return None
        found = await near(query, **kwargs)
        if found is not None:
            for agent, key in self.victims:
                await self.store.delete(agent, key, now=kwargs["now"], keep_history=True)
            self.victims = []
        return found


# --- the suite ---------------------------------------------------------------------------------


class MemoryStoreSuite(FilterExamples, LimitExamples):
    """Subclass and override :meth:`memory_store`; every test then runs against your store."""

    #: hypothesis budget for the state machine; raise it in a subclass for a soak run.
    stateful_max_examples = 20
    stateful_step_count = 50

    @pytest.fixture(params=_BACKENDS)
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        """Run the async tests under asyncio and (if installed) trio."""
        return request.param

    @pytest.fixture
    def memory_store(self) -> Any:
        """Return a fresh, unopened store.  Override this."""
        pytest.fail("override the memory_store fixture to return your store")

    @pytest.fixture
    def clock(self) -> Clock:
        """The clock the manager uses."""
        return Clock()

    @pytest.fixture
    def manager(self, memory_store: Any, clock: Clock) -> MemoryManager:
        """A manager over the store under test."""
        return make_manager(memory_store, clock)

    # --- SPEC.md §2 ---

    @pytest.mark.anyio
    async def test_spec_example(self, manager: MemoryManager) -> None:
        async with manager:
            await manager.store_memory(
                agent_id="user-123", key="preference:theme",
                value={"theme": "dark", "lang": "zh"}, tags=["preference", "ui"],
                importance=0.8)
            memory = await manager.retrieve_memory(agent_id="user-123", key="preference:theme")
            assert memory is not None and memory.value == {"theme": "dark", "lang": "zh"}
            found = await manager.search_memories(
                agent_id="user-123", tags=["preference"], min_importance=0.5, limit=10)
            assert [m.key for m in found] == ["preference:theme"]
            assert await manager.delete_memory(agent_id="user-123", key="preference:theme")
            assert await manager.retrieve_memory("user-123", "preference:theme") is None

    # --- writes and versions ---

    @pytest.mark.anyio
    async def test_overwrite_bumps_version_keeps_created_at(
        self, manager: MemoryManager, clock: Clock
    ) -> None:
        first = await manager.store_memory("a", "k", 1)
        clock.advance(5)
        second = await manager.store_memory("a", "k", [2, "two"], tags=["x"], importance=0.9)
        assert (first.version, second.version) == (1, 2)
        assert second.created_at == first.created_at and second.updated_at == clock.now
        assert await manager.retrieve_memory("a", "k") == second
        await manager.aclose()

    @pytest.mark.anyio
    async def test_expected_version_conflicts_instead_of_overwriting(
        self, manager: MemoryManager
    ) -> None:
        await manager.store_memory("a", "k", "v1")
        updated = await manager.update_memory("a", "k", value="v2", expected_version=1)
        assert updated.version == 2
        with pytest.raises(MemoryConflictError) as info:
            await manager.update_memory("a", "k", value="lost", expected_version=1)
        assert (info.value.expected, info.value.actual) == (1, 2)
        with pytest.raises(MemoryConflictError):
            await manager.store_memory("a", "k", "dup", expected_version=0)
        assert (await manager.retrieve_memory("a", "k")).value == "v2"
        created = await manager.store_memory("a", "new", "x", expected_version=0)
        assert created.version == 1
        await manager.aclose()

    @pytest.mark.anyio
    async def test_bad_input_stores_nothing(self, manager: MemoryManager) -> None:
        bad: list[tuple[dict[str, Any], str]] = [
            ({"value": {1, 2}}, "value"),
            ({"value": float("nan")}, "value"),
            ({"importance": 1.5}, "importance"),
            ({"importance": -0.1}, "importance"),
            ({"key": ""}, "key"),
            ({"agent_id": "  "}, "agent_id"),
            ({"tags": ["ok", ""]}, "tags"),
            ({"tags": "single"}, "tags"),
            ({"ttl": -1}, "ttl"),
        ]
        for override, name in bad:
            args = {"agent_id": "a", "key": "k", "value": 1, **override}
            with pytest.raises(InvalidMemoryError, match=name):
                await manager.store_memory(**args)
        with pytest.raises(InvalidMemoryError, match=r"\$regex"):
            await manager.search_memories("a", filter={"value.x": {"$regex": "y"}})
        assert await manager.list_memories() == []
        await manager.aclose()

    # --- expiry, sweeping, eviction ---

    @pytest.mark.anyio
    async def test_expired_entries_are_never_returned_and_swept(
        self, manager: MemoryManager, clock: Clock
    ) -> None:
        await manager.store_memory("a", "short", 1, ttl=10, tags=["t"])
        await manager.store_memory("a", "abs", 2, expires_at=clock.now + 30, tags=["t"])
        await manager.store_memory("a", "forever", 3, tags=["t"])
        clock.advance(10)
        assert await manager.retrieve_memory("a", "short") is None
        assert [e.key for e in await manager.search_memories("a", tags=["t"])] == \
            ["abs", "forever"]
        assert sorted(e.key for e in await manager.search_memories("a", "short")) == \
            ["abs", "forever"]
        assert (await manager.stats())["expired"] == 1
        assert await manager.sweep() == 1
        clock.advance(100)
        assert await manager.sweep() == 1
        assert [e.key for e in await manager.list_memories("a")] == ["forever"]
        ops = [r.op for r in await manager.history("a", "short")]
        assert ops == ["create", "expire"]
        await manager.aclose()

    @pytest.mark.anyio
    async def test_lazy_sweep_after_interval(self, memory_store: Any, clock: Clock) -> None:
        manager = make_manager(memory_store, clock, gc_interval_seconds=60)
        await manager.store_memory("a", "k", 1, ttl=1)
        clock.advance(61)
        await manager.retrieve_memory("a", "other")  # any call past the interval sweeps
        assert (await manager.stats())["expired"] == 0
        assert [r.op for r in await manager.history("a", "k")] == ["create", "expire"]
        await manager.aclose()

    @pytest.mark.anyio
    async def test_max_entries_evicts_lowest_importance_then_oldest(
        self, memory_store: Any, clock: Clock
    ) -> None:
        manager = make_manager(memory_store, clock, max_entries=3)
        await manager.store_memory("a", "old-low", 1, importance=0.1)
        clock.advance(1)
        await manager.store_memory("a", "new-low", 1, importance=0.1)
        clock.advance(1)
        await manager.store_memory("a", "high", 1, importance=0.9)
        await manager.store_memory("b", "other-agent", 1, importance=0.0)
        clock.advance(1)
        await manager.store_memory("a", "mid", 1, importance=0.5)
        assert [e.key for e in await manager.list_memories("a")] == ["high", "mid", "new-low"]
        assert [r.op for r in await manager.history("a", "old-low")] == ["create", "evict"]
        assert await manager.retrieve_memory("b", "other-agent") is not None
        await manager.aclose()

    @pytest.mark.anyio
    async def test_global_eviction_scope(self, memory_store: Any, clock: Clock) -> None:
        manager = make_manager(memory_store, clock, max_entries=2, eviction_scope="global")
        await manager.store_memory("a", "k", 1, importance=0.2)
        await manager.store_memory("b", "k", 1, importance=0.1)
        await manager.store_memory("c", "k", 1, importance=0.3)
        assert [(e.agent_id, e.key) for e in await manager.list_memories()] == \
            [("a", "k"), ("c", "k")]
        await manager.aclose()

    @pytest.mark.anyio
    async def test_expired_entries_do_not_count_for_eviction(
        self, memory_store: Any, clock: Clock
    ) -> None:
        manager = make_manager(memory_store, clock, max_entries=2)
        await manager.store_memory("a", "A", 1, importance=0.9, ttl=1)
        await manager.store_memory("a", "B", 1, importance=0.5)
        clock.advance(2)
        stored = await manager.store_memory("a", "C", 1, importance=0.5)
        assert not stored.evicted
        assert [e.key for e in await manager.list_memories("a")] == ["B", "C"]
        assert [r.op for r in await manager.history("a", "A")] == ["create", "expire"]
        assert [r.op for r in await manager.history("a", "B")] == ["create"]
        await manager.aclose()

    @pytest.mark.anyio
    async def test_new_entry_evicted_at_once_says_so(
        self, memory_store: Any, clock: Clock
    ) -> None:
        manager = make_manager(memory_store, clock, max_entries=2)
        await manager.store_memory("a", "x", 1, importance=0.9)
        await manager.store_memory("a", "y", 1, importance=0.8)
        low = await manager.store_memory("a", "low", 1, importance=0.1)
        assert low.evicted and low.to_dict()["evicted"] is True
        assert await manager.retrieve_memory("a", "low") is None
        kept = await manager.store_memory("a", "high", 1, importance=1.0)
        assert not kept.evicted and "evicted" not in kept.to_dict()
        assert [e.key for e in await manager.list_memories("a")] == ["high", "x"]
        await manager.aclose()

    @pytest.mark.anyio
    async def test_vectors_of_another_embedder_are_not_compared(
        self, memory_store: Any, clock: Clock
    ) -> None:
        first = make_manager(memory_store, clock)
        await first.store_memory("a", "theme", {"text": "dark theme"})
        other = create_backend("embedder", "lexical")
        other.name = "another-model"  # the same size of vectors, another embedder
        second = MemoryManager(MemoryConfig(gc_interval_seconds=1e9), store=memory_store,
                               embedder=other, clock=clock)
        await second.store_memory("a", "mode", {"text": "dark mode"})
        for manager, same, alien in ((first, "theme", "mode"), (second, "mode", "theme")):
            found = {e.key: e.explain for e in await manager.search_memories(
                "a", "dark", explain=True)}
            assert found[same]["semantic"] > 0 and found[alien]["semantic"] == 0
            assert found[alien]["keyword"] == 1.0
        await first.aclose()

    # --- argument checks every store shares ---

    @pytest.mark.anyio
    async def test_unstorable_text_is_rejected_naming_the_argument(
        self, manager: MemoryManager
    ) -> None:
        bad: list[tuple[dict[str, Any], str]] = [
            ({"key": "k\ud800"}, "key"),
            ({"agent_id": "\ud800"}, "agent_id"),
            ({"tags": ["t\udfff"]}, "tags"),
            ({"value": {"text": "x\ud800"}}, "value"),
            ({"agent_id": "用" * 512}, "agent_id"),
            ({"key": "键" * 400}, "key"),
        ]
        for override, name in bad:
            args = {"agent_id": "a", "key": "k", "value": 1, **override}
            with pytest.raises(InvalidMemoryError, match=name):
                await manager.store_memory(**args)
        with pytest.raises(InvalidMemoryError, match="query"):
            await manager.search_memories("a", "\ud800")
        with pytest.raises(InvalidMemoryError, match="key"):
            await manager.retrieve_memory("a", "\ud800")
        # The longest ids allowed are storable everywhere (1023 UTF-8 bytes each).
        agent, key = "用" * 341, "键" * 341
        await manager.store_memory(agent, key, 1, tags=["标" * 128])
        assert (await manager.retrieve_memory(agent, key)).value == 1
        assert await manager.delete_memories(agent) == 1
        await manager.aclose()

    @pytest.mark.anyio
    async def test_huge_value_of_distinct_words_is_stored_and_found(
        self, manager: MemoryManager
    ) -> None:
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = [a + b + c + d for a in letters for b in letters for c in letters
                 for d in letters[:10]]
        text = " ".join(words)
        assert len(text) > 800_000
        await manager.store_memory("a", "big", {"text": text})
        await manager.store_memory("a", "small", {"text": "aaaa"})
        found = await manager.search_memories("a", "aaaa", limit=5)
        assert {e.key for e in found} == {"big", "small"}
        await manager.aclose()

    # --- bulk delete, list, history ---

    @pytest.mark.anyio
    async def test_empty_conditions_are_no_condition(self, manager: MemoryManager) -> None:
        await manager.store_memory("a", "k", 1)
        await manager.store_memory("b", "k", 1)
        for kwargs in ({"filter": {}}, {"tags": []}, {"filter": {}, "tags": ()}):
            with pytest.raises(InvalidMemoryError, match="everything"):
                await manager.delete_memories(**kwargs)
        assert len(await manager.list_memories()) == 2
        assert await manager.delete_memories("a", filter={}) == 1
        assert await manager.delete_memories(filter={}, everything=True) == 1
        await manager.aclose()

    @pytest.mark.anyio
    async def test_search_skips_winners_deleted_meanwhile(
        self, memory_store: Any, clock: Clock
    ) -> None:
        deleting = _DeletesAfterCandidates(memory_store)
        manager = make_manager(deleting, clock)
        for i in range(6):
            await manager.store_memory("a", f"k{i}", {"text": "dark theme"},
                                       importance=i / 10)
        deleting.victims = [("a", "k5"), ("a", "k4")]
        found = await manager.search_memories("a", "dark", limit=2)
        assert [e.key for e in found] == ["k3", "k2"]
        deleting.victims = [("a", f"k{i}") for i in range(4)]
        assert await manager.search_memories("a", "dark", limit=3) == []
        await manager.aclose()

    @pytest.mark.anyio
    async def test_search_while_another_task_deletes_and_restores(
        self, manager: MemoryManager
    ) -> None:
        import anyio

        for i in range(40):
            await manager.store_memory("a", f"k{i}", {"text": f"dark theme {i}"})
        failures: list[BaseException] = []
        done = anyio.Event()

        async def churn() -> None:
            i = 0
            while not done.is_set():
                key = f"k{i % 40}"
                await manager.delete_memory("a", key)
                await manager.store_memory("a", key, {"text": f"dark theme {i}"})
                i += 1
                await anyio.lowlevel.checkpoint()  # a store may never yield by itself

        async with anyio.create_task_group() as tg:
            tg.start_soon(churn)
            for _ in range(60):
                try:
                    found = await manager.search_memories("a", "dark theme", limit=10)
                    assert 9 <= len(found) <= 10
                except MemoryStoreError as exc:
                    failures.append(exc)
                await anyio.lowlevel.checkpoint()
            done.set()
        assert failures == []
        await manager.aclose()

    # --- bulk delete, list, history ---

    @pytest.mark.anyio
    async def test_bulk_delete_by_agent_tag_and_filter(self, manager: MemoryManager) -> None:
        for i in range(6):
            await manager.store_memory("a", f"k{i}", {"lang": "zh" if i % 2 else "en", "i": i},
                                       tags=["even" if i % 2 == 0 else "odd"])
        await manager.store_memory("b", "k0", {"lang": "zh"}, tags=["odd"])
        assert await manager.delete_memories("a", tags=["even"]) == 3
        assert await manager.delete_memories("a", filter={"value.i": {"$gte": 5}}) == 1
        assert [e.key for e in await manager.list_memories("a")] == ["k1", "k3"]
        with pytest.raises(InvalidMemoryError, match="everything"):
            await manager.delete_memories()
        assert await manager.delete_memories("a") == 2
        assert await manager.delete_memories(everything=True) == 1
        assert (await manager.stats())["entries"] == 0
        await manager.aclose()

    @pytest.mark.anyio
    async def test_list_orders_and_pages(self, manager: MemoryManager) -> None:
        for key in ["b", "a", "é", "c", "Z"]:
            await manager.store_memory("x", key, key)
        assert [e.key for e in await manager.list_memories("x")] == ["Z", "a", "b", "c", "é"]
        page = await manager.list_memories("x", limit=2, offset=1)
        assert [e.key for e in page] == ["a", "b"]
        await manager.aclose()

    @pytest.mark.anyio
    async def test_history_is_append_only_and_survives_delete(
        self, manager: MemoryManager, clock: Clock
    ) -> None:
        await manager.store_memory("a", "k", "v1", importance=0.2)
        clock.advance(1)
        await manager.update_memory("a", "k", importance=0.7)
        await manager.delete_memory("a", "k")
        await manager.store_memory("a", "k", "again")
        history = await manager.history("a", "k")
        assert _history_ops(history) == [("create", 1), ("update", 2), ("delete", 2),
                                         ("create", 1)]
        assert history[1].importance == 0.7 and history[1].value == "v1"
        assert history[0].at < history[1].at
        await manager.aclose()

    # --- search ---

    @pytest.mark.anyio
    async def test_filters_apply_before_ranking(self, manager: MemoryManager) -> None:
        for i in range(30):
            await manager.store_memory("a", f"noise{i}", {"text": "dark theme", "lang": "en"},
                                       importance=1.0)
        await manager.store_memory("a", "target", {"text": "unrelated", "lang": "zh"},
                                   importance=0.0)
        found = await manager.search_memories("a", "dark theme", limit=1,
                                              filter={"value.lang": "zh"})
        assert [e.key for e in found] == ["target"]
        await manager.aclose()

    @pytest.mark.anyio
    async def test_query_ranks_relevant_first_and_explains(self, manager: MemoryManager) -> None:
        await manager.store_memory("a", "pref:theme", {"theme": "dark mode at night"},
                                   importance=0.5)
        await manager.store_memory("a", "food", {"likes": "green tea"}, importance=0.5)
        await manager.store_memory("a", "music", {"likes": "jazz"}, importance=0.5)
        found = await manager.search_memories("a", "dark themes", explain=True)
        assert found[0].key == "pref:theme"
        top = found[0].explain
        assert top is not None and top["semantic"] > 0 and top["keyword"] == 0.5
        assert math.isclose(found[0].score, top["score"])
        total = sum(top[f"weight_{t}"] * top[t] for t in ("relevance", "importance", "recency"))
        assert math.isclose(total, top["score"], rel_tol=1e-9)
        assert [e.score for e in found] == sorted((e.score for e in found), reverse=True)
        await manager.aclose()

    @pytest.mark.anyio
    async def test_tags_any_all_importance_and_time_window(
        self, manager: MemoryManager, clock: Clock
    ) -> None:
        await manager.store_memory("a", "both", 1, tags=["x", "y"], importance=0.9)
        clock.advance(10)
        middle = clock.now
        await manager.store_memory("a", "x-only", 1, tags=["x"], importance=0.4)
        clock.advance(10)
        await manager.store_memory("a", "none", 1, importance=0.95)

        async def keys(**kw: Any) -> list[str]:
            return sorted(e.key for e in await manager.search_memories("a", **kw))

        assert await keys(tags=["x", "y"]) == ["both", "x-only"]
        assert await keys(tags=["x", "y"], tag_mode="all") == ["both"]
        assert await keys(tags=["x"], min_importance=0.5) == ["both"]
        assert await keys(since=middle) == ["none", "x-only"]
        assert await keys(until=middle) == ["both"]
        assert await keys(filter={"$or": [{"key": "none"}, {"tags": {"$contains": "y"}}]}) == \
            ["both", "none"]
        assert await keys(filter={"importance": {"$gte": 0.9}}) == ["both", "none"]
        await manager.aclose()

    @pytest.mark.anyio
    async def test_unicode_and_nested_values(self, manager: MemoryManager) -> None:
        value = {"lang": "zh", "text": "深色主题", "nested": {"list": [1, 2.5, None, True]}}
        await manager.store_memory("用户", "偏好:主题", value, tags=["偏好"])
        got = await manager.retrieve_memory("用户", "偏好:主题")
        assert got is not None and got.value == value and got.tags == ("偏好",)
        found = await manager.search_memories("用户", "深色主题", tags=["偏好"],
                                              filter={"value.nested.list.1": {"$gt": 2}})
        assert [e.key for e in found] == ["偏好:主题"]
        await manager.aclose()

    # --- the model check ---

    def test_matches_reference_model(self, memory_store: Any, anyio_backend: str) -> None:
        from hypothesis import HealthCheck, settings

        with _portal(anyio_backend) as portal:
            portal.call(memory_store.open)
            try:
                machine = _build_machine(memory_store, portal)
                machine.TestCase.settings = settings(
                    max_examples=self.stateful_max_examples,
                    stateful_step_count=self.stateful_step_count,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                )
                machine.TestCase().runTest()
            finally:
                portal.call(memory_store.aclose)
