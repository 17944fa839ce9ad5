"""The ``filter`` language of ``search_memories``, ``list_memories`` and ``delete_memories``.

A filter is a dict from a field path to a condition; every condition must hold::

    {"value.lang": {"$eq": "zh"}, "value.stars": {"$gte": 3}, "importance": {"$lt": 0.9}}

Paths: ``value`` (the whole value), ``value.<field>[.<field>...]`` (a list index is a
number: ``value.items.0``), ``key``, ``importance``, ``created_at``, ``updated_at``,
``expires_at``, ``version``, ``tags``.  A condition is ``{operator: operand, ...}`` (all
must hold) or a bare value, meaning ``$eq``.

Operators: ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte`` (numbers with numbers,
strings with strings; anything else does not match), ``$in`` (operand is a list),
``$contains`` (a string field contains the operand as a substring, or a list field holds
it), ``$exists`` (true/false).  A missing field matches only ``$ne`` and
``{"$exists": false}``.  Logical groups: ``{"$and": [filter, ...]}``, ``{"$or": [...]}``,
``{"$not": filter}``.  An unknown operator or path is an error, raised before anything is
read or deleted.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

from neuroflow.errors import InvalidMemoryError

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$contains", "$exists")
_LOGICAL = ("$and", "$or", "$not")
_TOP_FIELDS = ("key", "importance", "created_at", "updated_at", "expires_at", "version", "tags")
_MISSING = object()

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le,
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _check(cond: Any, where: str) -> None:
    if not isinstance(cond, Mapping) or not any(str(k).startswith("$") for k in cond):
        try:
            json.dumps(cond, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidMemoryError(f"filter[{where!r}]: {cond!r} is not a JSON value") from None
        return
    for op, operand in cond.items():
        if op not in OPERATORS:
            raise InvalidMemoryError(
                f"filter[{where!r}]: unknown operator {op!r} (known: {', '.join(OPERATORS)})"
            )
        if op == "$in" and not isinstance(operand, (list, tuple)):
            raise InvalidMemoryError(f"filter[{where!r}]: $in expects a list, got {operand!r}")
        if op == "$exists" and not isinstance(operand, bool):
            raise InvalidMemoryError(
                f"filter[{where!r}]: $exists expects true or false, got {operand!r}"
            )
        if op in _ORDER and not (_is_number(operand) or isinstance(operand, str)):
            raise InvalidMemoryError(
                f"filter[{where!r}]: {op} expects a number or a string, got {operand!r}"
            )


def validate_filter(flt: Any, name: str = "filter") -> dict[str, Any] | None:
    """Check a filter and return it as a plain dict (``None`` stays ``None``).

    Raises:
        InvalidMemoryError: naming the path and the unknown operator or bad operand.
    """
    if flt is None:
        return None
    if not isinstance(flt, Mapping):
        raise InvalidMemoryError(f"{name}: expected a dict of field path -> condition, "
                                 f"got {flt!r}")
    for path, cond in flt.items():
        if not isinstance(path, str):
            raise InvalidMemoryError(f"{name}: field paths are strings, got {path!r}")
        if path in ("$and", "$or"):
            if not isinstance(cond, (list, tuple)) or not cond:
                raise InvalidMemoryError(f"{name}[{path!r}]: expected a non-empty list of filters")
            for i, sub in enumerate(cond):
                validate_filter(sub, f"{name}[{path!r}][{i}]")
        elif path == "$not":
            validate_filter(cond, f"{name}['$not']")
        elif path.startswith("$"):
            raise InvalidMemoryError(
                f"{name}: unknown operator {path!r} at the top level (known: "
                f"{', '.join(_LOGICAL)}, or a field path such as 'value.lang')"
            )
        elif path != "value" and not path.startswith("value.") and path not in _TOP_FIELDS:
            raise InvalidMemoryError(
                f"{name}: unknown field {path!r} (use 'value.<field>' or one of "
                f"{', '.join(_TOP_FIELDS)})"
            )
        else:
            _check(cond, path)
    return dict(flt)


def _resolve(entry: Any, path: str) -> Any:
    if path in _TOP_FIELDS:
        value = getattr(entry, path)
        return list(value) if path == "tags" else value
    target = entry.value
    for part in path.split(".")[1:]:
        if isinstance(target, dict):
            target = target.get(part, _MISSING)
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return _MISSING
        if target is _MISSING:
            return _MISSING
    return target


def _holds(op: str, have: Any, want: Any) -> bool:
    if op == "$exists":
        return (have is not _MISSING) == want
    if have is _MISSING:
        return op == "$ne"
    if op == "$eq":
        return _same(have, want)
    if op == "$ne":
        return not _same(have, want)
    if op == "$in":
        return any(_same(have, w) for w in want)
    if op == "$contains":
        if isinstance(have, str):
            return isinstance(want, str) and want in have
        if isinstance(have, list):
            return any(_same(h, want) for h in have)
        return False
    if (_is_number(have) and _is_number(want)) or (isinstance(have, str) and isinstance(want, str)):
        return _ORDER[op](have, want)
    return False


def matches_filter(flt: Mapping[str, Any], entry: Any) -> bool:
    """Whether ``entry`` satisfies a (validated) filter."""
    for path, cond in flt.items():
        if path == "$and":
            if not all(matches_filter(sub, entry) for sub in cond):
                return False
        elif path == "$or":
            if not any(matches_filter(sub, entry) for sub in cond):
                return False
        elif path == "$not":
            if matches_filter(cond, entry):
                return False
        else:
            have = _resolve(entry, path)
            if isinstance(cond, Mapping) and any(str(k).startswith("$") for k in cond):
                if not all(_holds(op, have, want) for op, want in cond.items()):
                    return False
            elif not _holds("$eq", have, cond):
                return False
    return True
