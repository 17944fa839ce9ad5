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
from neuroflow.memory.validate import DEFAULT_MAX_FILTER_DEPTH, nesting_depth

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
    """JSON equality: numbers by value, everything else by type and content, at any depth
    (``true`` is not ``1`` inside lists and objects either)."""
    if _is_number(a) and _is_number(b):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


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


def validate_filter(
    flt: Any, name: str = "filter", max_depth: int = DEFAULT_MAX_FILTER_DEPTH
) -> dict[str, Any] | None:
    """Check a filter and return it as a plain dict (``None`` stays ``None``).

    Args:
        flt: the filter.
        name: how errors name it.
        max_depth: most levels of nesting (every ``{}`` and ``[]``, operands included);
            ``MemoryConfig.max_filter_depth``.

    Raises:
        InvalidMemoryError: naming the path and the unknown operator or bad operand, or
            the depth limit when the filter is nested deeper.
    """
    if flt is None:
        return None
    depth = nesting_depth(flt, max_depth)
    if depth > max_depth:
        raise InvalidMemoryError(
            f"{name}: nested more than {max_depth} levels deep (the limit is "
            f"memory.max_filter_depth = {max_depth})")
    return _validate(flt, name)


def _validate(flt: Any, name: str) -> dict[str, Any]:
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
                _validate(sub, f"{name}[{path!r}][{i}]")
        elif path == "$not":
            _validate(cond, f"{name}['$not']")
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
        elif (isinstance(target, list) and part.isascii() and part.isdigit()
              and int(part) < len(target)):
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


# --- filters that are no condition ------------------------------------------------------------

#: Paths every entry has (``value`` may be ``null``, ``expires_at`` may be ``None``).
_ALWAYS_PRESENT = ("value", *_TOP_FIELDS)

_Literal = tuple[Any, ...]


def matches_everything(flt: Mapping[str, Any] | None) -> bool:
    """Whether a (validated) filter holds for every entry by its form alone.

    Such a filter is no condition: ``{}``, ``{"$and": [{}]}``, ``{"$or": [{}, ...]}``,
    ``{"$not": {"$not": {}}}``, ``{"key": {"$exists": true}}``, an ``$or`` of a condition
    and its opposite (``$exists`` true/false, ``$eq``/``$ne`` of one operand, ``X`` and
    ``{"$not": X}``), or the ``$not`` of a group that can never hold.  It is a check of
    the filter's shape, not a proof: a filter that matches every entry only because of
    the data stored is still a condition.
    """
    return flt is None or _verdict(flt) is True


def _and(verdicts: list[bool | None]) -> bool | None:
    if any(v is False for v in verdicts):
        return False
    return True if all(v is True for v in verdicts) else None


def _or(verdicts: list[bool | None]) -> bool | None:
    if any(v is True for v in verdicts):
        return True
    return False if verdicts and all(v is False for v in verdicts) else None


def _ops(cond: Any) -> list[tuple[str, Any]]:
    if isinstance(cond, Mapping) and any(str(k).startswith("$") for k in cond):
        return list(cond.items())
    return [("$eq", cond)]


def _canon(operand: Any) -> str:
    return json.dumps(operand, sort_keys=True)


def _single(flt: Any) -> _Literal | None:
    """The one condition a filter consists of, as a comparable literal, or ``None``."""
    if not isinstance(flt, Mapping) or len(flt) != 1:
        return None
    ((path, cond),) = flt.items()
    if path == "$not":
        inner = _single(cond)
        return None if inner is None else ("$not", inner)
    if path in ("$and", "$or"):
        return _single(cond[0]) if len(cond) == 1 else None
    ops = _ops(cond)
    if len(ops) != 1:
        return None
    op, operand = ops[0]
    return (path, op, _canon(operand))


def _required(flt: Mapping[str, Any]) -> list[_Literal]:
    """Literals every entry matching ``flt`` must satisfy."""
    out: list[_Literal] = []
    for path, cond in flt.items():
        if path == "$and":
            for sub in cond:
                out.extend(_required(sub))
        elif path == "$or":
            if len(cond) == 1:
                out.extend(_required(cond[0]))
        elif path == "$not":
            inner = _single(cond)
            if inner is not None:
                out.append(("$not", inner))
        else:
            out.extend((path, op, _canon(operand)) for op, operand in _ops(cond))
    return out


def _opposite(a: _Literal, b: _Literal) -> bool:
    """Whether exactly one of two literals holds for any entry."""
    if a == ("$not", b) or b == ("$not", a):
        return True
    if a[0] == "$not" or b[0] == "$not" or a[0] != b[0]:
        return False
    if a[1] == b[1] == "$exists":
        return a[2] != b[2]
    return a[2] == b[2] and {a[1], b[1]} == {"$eq", "$ne"}


def _has_opposites(literals: list[_Literal | None]) -> bool:
    known = [lit for lit in literals if lit is not None]
    return any(_opposite(a, b) for i, a in enumerate(known) for b in known[i + 1:])


def _verdict(flt: Mapping[str, Any]) -> bool | None:
    """``True``: holds for every entry; ``False``: for none; ``None``: it depends."""
    parts: list[bool | None] = []
    for path, cond in flt.items():
        if path == "$and":
            parts.append(_and([_verdict(sub) for sub in cond]))
        elif path == "$or":
            verdict = _or([_verdict(sub) for sub in cond])
            if verdict is None and _has_opposites([_single(sub) for sub in cond]):
                verdict = True
            parts.append(verdict)
        elif path == "$not":
            inner = _verdict(cond)
            parts.append(None if inner is None else not inner)
        else:
            parts.append(_and([
                bool(operand) if op == "$exists" and path in _ALWAYS_PRESENT else None
                for op, operand in _ops(cond)]))
    verdict = _and(parts)
    if verdict is None and _has_opposites(list(_required(flt))):
        return False
    return verdict
