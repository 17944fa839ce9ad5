"""Which filters are "no condition" by their form (literal cases)."""

from __future__ import annotations

import pytest

from neuroflow.memory.filters import matches_everything, validate_filter
from neuroflow.testing.memory_limits import MATCH_EVERYTHING

#: Filters that look close to a tautology but can fail for some entry.
CONDITIONS = [
    {"value.x": {"$exists": True}},
    {"value": {"$exists": False}},
    {"$not": {}},
    {"$and": [{}, {"key": "a"}]},
    {"$or": [{"value.n": {"$lt": 1}}, {"value.n": {"$gte": 1}}]},  # "1" or a list: neither
    {"$or": [{"key": "a"}, {"$not": {"key": "b"}}]},
    {"$or": [{"value.n": 1}, {"value.n": {"$ne": 2}}]},
    {"$or": [{"value.n": 1}, {"value.n": {"$ne": 1.0}}]},  # the same number, spelt apart
    {"$or": [{"value.x": {"$exists": True}}, {"value.y": {"$exists": False}}]},
    {"$not": {"$or": [{}, {"key": "a"}]}},
    {"$and": [{"value.x": {"$exists": True}}, {"$not": {"value.y": {"$exists": True}}}]},
    {"key": {"$exists": True}, "value.n": 1},
]


@pytest.mark.parametrize("flt", MATCH_EVERYTHING)
def test_match_everything(flt: dict) -> None:
    assert matches_everything(validate_filter(flt))


@pytest.mark.parametrize("flt", CONDITIONS)
def test_conditions(flt: dict) -> None:
    assert not matches_everything(validate_filter(flt))


def test_none_is_no_condition() -> None:
    assert matches_everything(None)
