"""MemoryManager beyond the store suite: configuration, plugins, sweeper, embedders, filters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest

from neuroflow.backends import BackendKind
from neuroflow.config import structure
from neuroflow.errors import ConfigError, InvalidMemoryError, MemoryStoreError
from neuroflow.memory import MemoryConfig, MemoryManager
from neuroflow.memory.embedders import LexicalEmbedder
from neuroflow.memory.filters import validate_filter
from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.plugins import get_plugin_manager
from neuroflow.testing.memory import Clock, make_manager


def test_config_checks_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"memory\.max_entries"):
        structure({"max_entries": "lots"}, MemoryConfig, path="memory")
    with pytest.raises(ConfigError, match="eviction_scope"):
        MemoryConfig(eviction_scope="planet")
    with pytest.raises(ConfigError, match="semantic_share"):
        MemoryConfig(semantic_share=2)
    cfg = MemoryConfig(max_entries=10000, gc_interval_seconds=300)
    assert cfg.gc_interval_seconds == 300.0 and isinstance(cfg.gc_interval_seconds, float)


def test_manager_reads_memory_section_from_neuroflow_toml() -> None:
    Path("neuroflow.toml").write_text(
        "[memory]\nbackend = \"memory\"\nmax_entries = 7\nrecency_weight = 0.0\n")
    manager = MemoryManager()
    assert isinstance(manager.store, InMemoryStore)
    assert manager.config.max_entries == 7 and manager.config.recency_weight == 0.0
    assert isinstance(manager.embedder, LexicalEmbedder)


def test_unknown_store_says_what_to_install() -> None:
    with pytest.raises(ConfigError, match="unknown memory store 'redis'"):
        MemoryManager(MemoryConfig(), store="redis")


def test_builtin_backends_are_registered() -> None:
    manager = get_plugin_manager()
    assert {"memory", "tiered"} <= set(manager.backends(BackendKind.MEMORY))
    assert "lexical" in manager.backends(BackendKind.EMBEDDER)


def test_plugin_modules_are_cheap_to_import() -> None:
    code = ("import sys, neuroflow.memory.builtin, neuroflow.memory; "
            "heavy = [m for m in ('numpy', 'sqlalchemy') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.anyio
async def test_background_sweeper_removes_expired_entries() -> None:
    clock = Clock()
    manager = make_manager(InMemoryStore(), clock, gc_interval_seconds=0.01)
    async with manager:
        await manager.store_memory("a", "k", 1, ttl=5)
        clock.advance(6)
        with anyio.fail_after(10):
            while (await manager.stats())["expired"]:
                await anyio.sleep(0.01)
        assert [r.op for r in await manager.history("a", "k")] == ["create", "expire"]
    # closed: a second close is harmless, and the manager can be started again
    await manager.aclose()
    await manager.start()
    await manager.aclose()


class _CountingStore(InMemoryStore):
    """The in-memory store, counting how often it is opened and closed."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = self.closed = 0

    async def open(self) -> None:
        self.opened += 1
        await super().open()

    async def aclose(self) -> None:
        self.closed += 1
        await super().aclose()


@pytest.mark.anyio
async def test_start_under_a_timeout_then_close() -> None:
    """``start()`` opens the store and returns, leaving no task in the caller's scope:
    the timeout around it does not fire, and the manager works once the scope is gone."""
    store, clock = _CountingStore(), Clock()
    manager = make_manager(store, clock, gc_interval_seconds=10)
    with anyio.move_on_after(5) as scope:
        await manager.start()
    assert not scope.cancelled_caught
    assert (store.opened, store.closed) == (1, 0)
    await manager.store_memory("a", "k", 1, ttl=1)
    entry = await manager.retrieve_memory("a", "k")
    assert entry is not None and entry.value == 1
    clock.advance(11)  # no sweeper task was started: the next call sweeps
    assert await manager.retrieve_memory("a", "other") is None
    assert [r.op for r in await manager.history("a", "k")] == ["create", "expire"]
    assert store.opened == 1  # opened once by start(), not again by each call
    await manager.aclose()
    assert (store.opened, store.closed) == (1, 1)
    await manager.aclose()  # a second close is a no-op
    assert (store.opened, store.closed) == (1, 1)


@pytest.mark.anyio
async def test_start_in_one_task_close_in_another() -> None:
    clock = Clock()
    manager = make_manager(InMemoryStore(), clock, gc_interval_seconds=10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.start)
    await manager.store_memory("a", "k", 1, ttl=1)
    clock.advance(11)
    assert await manager.retrieve_memory("a", "other") is None  # started: sweeps lazily
    assert [r.op for r in await manager.history("a", "k")] == ["create", "expire"]
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.aclose)
    await manager.aclose()


@pytest.mark.anyio
async def test_aclose_inside_async_with_is_safe() -> None:
    async with make_manager(InMemoryStore(), Clock(), gc_interval_seconds=0.01) as manager:
        await manager.store_memory("a", "k", 1)
        await manager.aclose()
        await anyio.sleep(0.05)
    assert manager._task_group is None


@pytest.mark.anyio
async def test_update_of_missing_memory_is_an_error() -> None:
    manager = make_manager(InMemoryStore(), Clock())
    with pytest.raises(InvalidMemoryError, match="key"):
        await manager.update_memory("a", "", importance=0.1)
    with pytest.raises(MemoryStoreError, match="use store_memory"):
        await manager.update_memory("a", "missing", importance=0.1)


@pytest.mark.anyio
async def test_update_keeps_fields_and_can_clear_expiry() -> None:
    clock = Clock()
    manager = make_manager(InMemoryStore(), clock)
    await manager.store_memory("a", "k", {"x": 1}, tags=["t"], importance=0.3, ttl=10)
    updated = await manager.update_memory("a", "k", importance=0.6)
    assert updated.value == {"x": 1} and updated.tags == ("t",)
    assert updated.expires_at == clock.now + 10
    cleared = await manager.update_memory("a", "k", expires_at=None)
    assert cleared.expires_at is None
    clock.advance(100)
    assert await manager.retrieve_memory("a", "k") is not None


def test_filter_language_errors_name_the_problem() -> None:
    with pytest.raises(InvalidMemoryError, match="unknown operator '\\$like'"):
        validate_filter({"value.name": {"$like": "x"}})
    with pytest.raises(InvalidMemoryError, match="unknown field 'colour'"):
        validate_filter({"colour": "red"})
    with pytest.raises(InvalidMemoryError, match="\\$in expects a list"):
        validate_filter({"value.x": {"$in": 3}})
    with pytest.raises(InvalidMemoryError, match="top level"):
        validate_filter({"$nor": []})
    assert validate_filter({"$or": [{"value.a": 1}, {"value.b": {"$exists": False}}]})


def test_lexical_embedder_is_deterministic_and_lexically_sensible() -> None:
    first = LexicalEmbedder().embed(["dark theme preference", "green tea", "dark themes", ""])
    again = LexicalEmbedder().embed(["dark theme preference", "green tea", "dark themes", ""])
    assert np.array_equal(first, again)
    assert first.dtype == np.float32 and first.shape == (4, 256)
    assert np.allclose(np.linalg.norm(first[:3], axis=1), 1.0)
    assert not first[3].any()
    assert first[0] @ first[2] > first[0] @ first[1]


def test_lexical_vectors_match_across_processes() -> None:
    code = ("from neuroflow.memory.embedders import LexicalEmbedder; import sys; "
            "sys.stdout.buffer.write(LexicalEmbedder().embed(['über theme 42']).tobytes())")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True).stdout
    assert out == LexicalEmbedder().embed(["über theme 42"]).tobytes()


def test_a_scored_entry_keeps_every_field_and_takes_the_score() -> None:
    """Every field set to something other than its default, so one dropped or moved by
    ``MemoryEntry.scored`` shows."""
    import attrs

    from neuroflow.memory import MemoryEntry

    entry = MemoryEntry(agent_id="a", key="k", value={"v": [1]}, tags=("x", "y"),
                        importance=0.25, created_at=1.0, updated_at=2.0, expires_at=3.0,
                        version=4, evicted=True)
    got = entry.scored(0.75, {"score": 0.75})
    want = {f.name: getattr(entry, f.name) for f in attrs.fields(MemoryEntry)}
    want.update(score=0.75, explain={"score": 0.75})
    assert {f.name: getattr(got, f.name) for f in attrs.fields(MemoryEntry)} == want
    assert got.value is entry.value
    assert entry.score is None and entry.scored(0.5).explain is None


def test_similarities_give_a_row_the_same_bits_among_all_rows_or_a_few() -> None:
    """Each search path scores its own selection of rows: a row must score the same
    wherever it sits (expected values: float64 dot products, within float32 rounding)."""
    from neuroflow.memory import similarities

    rng = np.random.default_rng(3)
    rows = rng.standard_normal((1000, 384)).astype(np.float32)
    query = rng.standard_normal(384).astype(np.float32)
    every = similarities(rows, query)
    assert every.dtype == np.float32 and every.shape == (1000,)
    assert np.allclose(every, rows.astype(np.float64) @ query.astype(np.float64),
                       rtol=1e-5, atol=1e-4)
    picked = np.array([999, 3, 500, 0, 501])
    assert np.array_equal(similarities(rows[picked], query), every[picked])
    assert np.array_equal(similarities(rows[:1], query.astype(np.float64)), every[:1])
    assert similarities(rows[:0], query).shape == (0,)
    # Strided inputs (a Fortran-ordered copy, a query taken as a column) score the same.
    columns = np.stack([query, query], axis=1)
    assert np.array_equal(similarities(np.asfortranarray(rows[picked]), columns[:, 0]),
                          every[picked])


@pytest.mark.parametrize("share", [0.1, 0.9])
def test_candidates_score_rows_picked_from_a_larger_matrix_as_their_own(share: float) -> None:
    """A store may hand the ranker its whole matrix with the candidates' rows in it
    (``vector_rows``): each candidate scores exactly as its row alone (few rows are
    copied out, most are scored in one pass; the same bits either way), in their order;
    expected values are float64 dot products within float32 rounding."""
    from neuroflow.memory import Candidates, similarities

    rng = np.random.default_rng(4)
    matrix = rng.standard_normal((400, 64)).astype(np.float32)
    query = rng.standard_normal(64).astype(np.float32)
    rows = rng.permutation(400)[: int(400 * share)]
    cands = Candidates(refs=list(rows), agent_ids=["a"] * len(rows), keys=list(rows),
                       importance=np.zeros(len(rows)), updated_at=np.zeros(len(rows)),
                       keyword=np.zeros(len(rows)), vectors=matrix, vector_rows=rows)
    got = cands.semantic(query)
    assert got.shape == (len(rows),)
    assert np.allclose(got, matrix[rows].astype(np.float64) @ query.astype(np.float64),
                       rtol=1e-5, atol=1e-4)
    for i, row in enumerate(rows[:20]):
        assert got[i] == similarities(matrix[row : row + 1], query)[0]
