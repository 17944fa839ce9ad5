"""The suite's reference model agrees with the literal filter examples (so neither the model
nor the examples can drift from docs/memory.md unnoticed)."""

from __future__ import annotations

import pytest

from neuroflow.memory.model import MemoryEntry
from neuroflow.testing.memory_examples import ALL, ENTRIES, FILTER_EXAMPLES, T
from neuroflow.testing.memory_model import RefQuery, filter_holds, query_holds


def _entries() -> list[MemoryEntry]:
    rows: dict[str, MemoryEntry] = {}
    for key, value, tags, importance, at, ttl in ENTRIES:
        old = rows.get(key)
        rows[key] = MemoryEntry(
            "x", key, value, tuple(tags), importance,
            created_at=old.created_at if old else T + at, updated_at=T + at,
            expires_at=None if ttl is None else T + at + ttl,
            version=old.version + 1 if old else 1)
    return list(rows.values())


@pytest.mark.parametrize("operator", sorted(FILTER_EXAMPLES))
def test_model_gives_the_literal_answers(operator: str) -> None:
    entries = _entries()
    assert "".join(e.key for e in entries) == ALL
    for flt, want in FILTER_EXAMPLES[operator]:
        got = "".join(e.key for e in entries if filter_holds(flt, e))
        assert got == want, flt


def test_model_boundaries() -> None:
    e = MemoryEntry("x", "k", 1, ("a", "b"), 0.5, created_at=T, updated_at=T,
                    expires_at=T + 10)
    assert query_holds(RefQuery(since=T), e, T)
    assert not query_holds(RefQuery(until=T), e, T)
    assert query_holds(RefQuery(until=T + 0.5), e, T)
    assert query_holds(RefQuery(min_importance=0.5), e, T)
    assert not query_holds(RefQuery(), e, T + 10)
    assert query_holds(RefQuery(), e, T + 9.999)
    assert query_holds(RefQuery(tags=("a", "z")), e, T)
    assert not query_holds(RefQuery(tags=("a", "z"), tag_mode="all"), e, T)
