"""The per-agent cache's columns on their own: rows added, replaced and removed in any
order keep every column, entry and keyword score right (no database)."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from neuroflow.memory.text import coverage
from neuroflow_memory_sqlite.agent_cache import AgentColumns, CachedRefs, PickedKeys, VectorCache


def row(rid: int, words: str, rnd: random.Random, dim: int = 4) -> tuple[Any, ...]:
    """A refresh row (``ROW_COLUMNS`` order)."""
    vector = np.array([rnd.random() for _ in range(dim)], dtype=np.float32)
    return (rid, f"k{rid}", round(rnd.random(), 3), float(rid), None, dim, vector.tobytes(),
            "m", json.dumps({"w": words}), json.dumps([f"t{rid % 3}"]), 1.0, 1 + rid % 5,
            words)


def test_columns_and_keyword_scores_follow_any_changes() -> None:
    rnd = random.Random(3)
    vocab = [f"w{i}" for i in range(40)] + ["é", "日本", "x9"]
    cols = AgentColumns("a", 4)
    truth: dict[int, tuple[Any, ...]] = {}
    next_id = 0
    compactions = 0
    for step in range(400):
        fresh = cols.clone()  # as a refresh does: the old columns never change
        before = (cols.n, cols.ids[: cols.n].copy(), cols.keyword(["w1", "w2"]).copy())
        action = rnd.random()
        if action < 0.5 or not truth:
            batch = []
            for _ in range(rnd.randint(1, 30)):
                if truth and rnd.random() < 0.3:
                    rid = rnd.choice(list(truth))  # a replaced row
                else:
                    rid, next_id = next_id, next_id + 1
                words = " ".join(dict.fromkeys(rnd.choice(vocab)
                                               for _ in range(rnd.randint(0, 8))))
                batch.append(row(rid, words, rnd))
            fresh.upsert(batch)
            for r in batch:
                truth[r[0]] = r
        else:
            keep = [rid for rid in truth if rnd.random() < 0.7]
            fresh.keep_only(keep)
            truth = {rid: truth[rid] for rid in keep}
        compactions += fresh.token_dead < cols.token_dead
        # The columns handed out before are untouched.
        assert cols.n == before[0] and (cols.ids[: cols.n] == before[1]).all()
        assert (cols.keyword(["w1", "w2"]) == before[2]).all()
        cols = fresh
        assert cols.n == len(truth) and set(cols.ids[: cols.n].tolist()) == set(truth)
        query = rnd.sample(vocab, rnd.randint(1, 4))
        got = cols.keyword(query)
        for at in range(cols.n):
            r = truth[int(cols.ids[at])]
            assert got[at] == coverage(query, r[12]), (step, at, query, r[12])
            assert cols.keys[at] == r[1] and cols.importance[at] == r[2]
            assert cols.matrix[at].tobytes() == r[6]
            entry = cols.entry(at)
            assert entry is not None and entry.value == {"w": r[12]} and entry.version == r[11]
        assert cols.token_dead <= max(1024, cols.token_n // 2)
    assert cols.keyword(["nowhere"]).tolist() == [0.0] * cols.n
    assert compactions > 0  # dead word slots were dropped along the way


def test_refs_resolve_to_the_ranked_rows() -> None:
    rnd = random.Random(1)
    cols = AgentColumns("a", 4)
    cols.upsert([row(i, f"w{i}", rnd) for i in range(10)])
    refs = CachedRefs(cols, np.array([7, 2, 5]), cols.n, epoch=4)
    assert len(refs) == 3 and [r.id for r in refs] == [int(cols.ids[i]) for i in (7, 2, 5)]
    assert refs[-1].agent_key() == ("a", cols.keys[5]) and refs[0].epoch == 4
    assert [r.id for r in refs[1:]] == [int(cols.ids[2]), int(cols.ids[5])]
    every = CachedRefs(cols, None, cols.n, epoch=0)
    assert len(every) == 10 and every[9].entry() == cols.entry(9)


def test_the_cache_stays_within_its_bounds() -> None:
    rnd = random.Random(2)
    cache = VectorCache(max_entries=50, max_bytes=10**9)
    for agent in range(6):
        cols = AgentColumns(f"a{agent}", 4)
        cols.upsert([row(i, "w1 w2", rnd) for i in range(20)])
        cache.put(cols)
        assert cache.entries() <= 50
        assert cache.entries() == sum(c.n for c in cache._agents.values())
        assert cache.nbytes() == sum(c.nbytes() for c in cache._agents.values())
    assert cache.agents() == 2 and cache.get("a5") is not None and cache.get("a0") is None
    small = VectorCache(max_entries=10**6, max_bytes=4000)
    cols = AgentColumns("big", 4)
    cols.upsert([row(i, "w1 " * 50, rnd) for i in range(20)])
    assert not small.holds(cols) and small.fits(1, 4)


def test_picked_keys_read_the_keys_at_their_positions() -> None:
    keys = ["a", "b", "c", "d"]
    picked = PickedKeys(keys, np.array([3, 0, 2]), 4)
    assert len(picked) == 3 and list(picked) == ["d", "a", "c"]
    assert picked[-1] == "c" and picked[0:2] == ["d", "a"]
    first = PickedKeys(keys, None, 2)  # the first n rows
    assert list(first) == ["a", "b"] and first[-1] == "b"
    for bad in (3, -4):
        with pytest.raises(IndexError):
            picked[bad]
