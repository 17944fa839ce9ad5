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
    for step in range(600):
        fresh = cols.clone()  # as a refresh does: the old columns never change
        before = (cols.n, cols.ids[: cols.n].copy(), cols.keyword(["w1", "w2"]).copy(),
                  cols.alive.copy(), cols.matrix[: cols.n].copy(),
                  [cols.entry(at) for at in range(cols.n)])
        action = rnd.random()
        if action < 0.6 or not truth:
            batch = []
            for _ in range(rnd.randint(1, 30)):
                if truth and rnd.random() < 0.5:
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
            keep = [rid for rid in truth if rnd.random() < 0.8]
            fresh.keep_only(keep)
            truth = {rid: truth[rid] for rid in keep}
        compactions += fresh.n - fresh.live < cols.n - cols.live
        # The columns handed out before are untouched.
        assert cols.n == before[0] and (cols.ids[: cols.n] == before[1]).all()
        assert (cols.keyword(["w1", "w2"]) == before[2]).all()
        assert (cols.alive == before[3]).all() and (cols.matrix[: cols.n] == before[4]).all()
        assert [cols.entry(at) for at in range(cols.n)] == before[5]
        cols = fresh
        live = np.flatnonzero(cols.alive)
        assert cols.live == len(live) == len(truth)
        assert sorted(cols.ids[live].tolist()) == sorted(truth)
        assert [cols.position(rid) for rid in cols.ids[live].tolist()] == live.tolist()
        query = rnd.sample(vocab, rnd.randint(1, 4))
        got = cols.keyword(query)
        hit_rows, hit_scores = cols.keyword_hits(query)
        for at in live.tolist():
            r = truth[int(cols.ids[at])]
            assert got[at] == coverage(query, r[12]), (step, at, query, r[12])
            assert cols.keys[at] == r[1] and cols.importance[at] == r[2]
            assert cols.matrix[at].tobytes() == r[6]
            entry = cols.entry(at)
            assert entry is not None and entry.value == {"w": r[12]} and entry.version == r[11]
        want = [at for at in live.tolist() if got[at] > 0]
        assert hit_rows.tolist() == want and hit_scores.tolist() == [got[at] for at in want]
        if truth:
            assert cols.top_importance() == max(r[2] for r in truth.values())
        assert cols.n - cols.live <= max(256, cols.live // 4)
    assert cols.keyword(["nowhere"]).tolist() == [0.0] * cols.n
    assert compactions > 0  # dead rows were dropped along the way


def test_a_refresh_never_kept_leaves_no_trace() -> None:
    rnd = random.Random(4)
    kept = AgentColumns("a", 4)
    kept.upsert([row(i, f"w{i} all", rnd) for i in range(5)])
    lost = kept.clone()  # a refresh that failed, or was not kept: its rows stay behind
    lost.upsert([row(1, "w1 lost", rnd), row(9, "lost", rnd)])
    with pytest.raises(RuntimeError, match="newest version"):
        kept.upsert([row(2, "w2", rnd)])
    nxt = kept.clone()
    nxt.upsert([row(3, "w3 again", rnd)])
    live = np.flatnonzero(nxt.alive)
    assert sorted(nxt.ids[live].tolist()) == [0, 1, 2, 3, 4]
    assert nxt.keyword_hits(["lost"])[0].tolist() == []
    assert nxt.entry(nxt.position(1)).value == {"w": "w1 all"}
    assert nxt.entry(nxt.position(3)).value == {"w": "w3 again"}
    scores = nxt.keyword(["all"])
    assert {int(nxt.ids[at]): scores[at] for at in live} == {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.0,
                                                             4: 1.0}


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


def test_a_refresh_that_failed_leaves_the_next_one_right() -> None:
    rnd = random.Random(5)
    kept = AgentColumns("a", 4)
    kept.upsert([row(i, f"w{i}", rnd) for i in range(3)])
    bad = kept.clone()
    short = row(3, "w3 broken", rnd)
    with pytest.raises(ValueError):  # an embedding shorter than the vector size
        bad.upsert([row(4, "w4", rnd), (*short[:6], b"\0" * 12, *short[7:])])
    nxt = kept.clone()
    nxt.upsert([row(5, "w5 fine", rnd)])
    for rid in (0, 1, 2, 5):
        at = nxt.position(rid)
        assert nxt.keys[at] == f"k{rid}" and nxt.entry(at).value["w"].startswith(f"w{rid}")
    assert nxt.keyword_hits(["broken"])[0].tolist() == []
    assert nxt.keyword_hits(["fine"])[0].tolist() == [nxt.position(5)]
