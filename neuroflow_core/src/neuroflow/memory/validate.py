"""Argument checks for the memory API: each error names the argument and what was expected."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable
from typing import Any

from neuroflow.errors import InvalidMemoryError

MAX_ID_LENGTH = 512
#: Every store indexes ids; PostgreSQL's index rows hold at most ~2.7 kB, so an agent id
#: and a key together must stay well under it.
MAX_ID_BYTES = 1024
MAX_TAG_LENGTH = 128
MAX_TAG_BYTES = 512
#: Defaults of ``MemoryConfig.max_value_depth``, ``max_value_bytes`` and ``max_filter_depth``.
DEFAULT_MAX_VALUE_DEPTH = 100
DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_FILTER_DEPTH = 64
#: The highest depth limit a configuration may set: deeper values would overflow the
#: recursion of the JSON encoder and of the filter evaluator.
MAX_DEPTH_LIMIT = 500
#: Values estimated larger than this are encoded, checked and indexed in a worker thread,
#: so that the event loop never waits for them.
OFF_LOOP_BYTES = 256 * 1024
_OFF_LOOP_NODES = 20_000


def encodable(name: str, value: str) -> int:
    """The UTF-8 size of ``value``; a lone surrogate (not storable anywhere) is an error."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidMemoryError(
            f"{name}: expected valid Unicode text, got {value!r} ({exc.reason} at "
            f"position {exc.start})") from None


def identifier(name: str, value: Any) -> str:
    """An agent id or key: a non-empty string without control characters."""
    if not isinstance(value, str):
        raise InvalidMemoryError(f"{name}: expected a non-empty string, got {value!r}")
    if not value.strip():
        raise InvalidMemoryError(f"{name}: expected a non-empty string, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidMemoryError(f"{name}: at most {MAX_ID_LENGTH} characters, got {len(value)}")
    size = encodable(name, value)
    if size > MAX_ID_BYTES:
        raise InvalidMemoryError(
            f"{name}: at most {MAX_ID_BYTES} bytes in UTF-8, got {size} ({len(value)} "
            "characters)")
    if any(ord(ch) < 32 for ch in value):
        raise InvalidMemoryError(f"{name}: control characters are not allowed, got {value!r}")
    return value


def tags(value: Any, name: str = "tags") -> tuple[str, ...]:
    """A list of tags: non-empty trimmed strings; duplicates dropped, order kept."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidMemoryError(f"{name}: expected a list of strings, got {value!r}")
    out: dict[str, None] = {}
    for tag in value:
        if not isinstance(tag, str) or not tag or tag != tag.strip():
            raise InvalidMemoryError(
                f"{name}: each tag must be a non-empty string without surrounding spaces, "
                f"got {tag!r}")
        if len(tag) > MAX_TAG_LENGTH or any(ord(ch) < 32 for ch in tag):
            raise InvalidMemoryError(
                f"{name}: tag {tag!r} is too long (max {MAX_TAG_LENGTH}) or has control "
                "characters")
        if encodable(name, tag) > MAX_TAG_BYTES:
            raise InvalidMemoryError(f"{name}: tag {tag!r} is over {MAX_TAG_BYTES} bytes in UTF-8")
        out[tag] = None
    return tuple(out)


def unit(name: str, value: Any) -> float:
    """A number in 0..1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        0.0 <= float(value) <= 1.0
    ):
        raise InvalidMemoryError(f"{name}: expected a number between 0 and 1, got {value!r}")
    return float(value)


def nesting_depth(value: Any, stop_above: int) -> int:
    """How many lists and dicts are nested in ``value`` (``1`` is 0, ``[1]`` is 1).

    Walks without recursion and stops as soon as the depth passes ``stop_above`` (then
    returns ``stop_above + 1``), so a value nested 100 000 deep, or one that contains
    itself, costs no more than the limit.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        if depth > stop_above:
            return stop_above + 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children
                     if isinstance(child, (dict, list, tuple)))
    return deepest


def is_large(value: Any, threshold: int = OFF_LOOP_BYTES) -> bool:
    """Whether ``value`` is (about) ``threshold`` bytes or more as JSON, or too many items
    to tell quickly: such values are encoded and indexed off the event loop.

    Cheap whatever the value: the walk stops at the threshold or after a fixed number
    of items.
    """
    total = 0
    seen = 0
    stack = [value]
    while stack:
        item = stack.pop()
        seen += 1
        if seen > _OFF_LOOP_NODES:
            return True
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, (dict, list, tuple)):
            if len(item) > _OFF_LOOP_NODES:
                return True
            if isinstance(item, dict):
                total += 2 + sum(len(str(k)) + 4 for k in item)
                stack.extend(item.values())
            else:
                total += 2 + len(item)
                stack.extend(item)
        else:
            total += 8
        if total >= threshold:
            return True
    return False


def json_value(
    value: Any,
    name: str = "value",
    *,
    max_depth: int = DEFAULT_MAX_VALUE_DEPTH,
    max_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> Any:
    """A JSON value, returned as it will come back from any store (tuples become lists).

    Args:
        value: the value.
        name: how errors name it.
        max_depth: most lists and dicts nested in it (``MemoryConfig.max_value_depth``).
        max_bytes: most bytes of its UTF-8 JSON text (``MemoryConfig.max_value_bytes``).

    Raises:
        InvalidMemoryError: not JSON, not valid Unicode, or over a limit (named).
    """
    if nesting_depth(value, max_depth) > max_depth:
        raise InvalidMemoryError(
            f"{name}: nested more than {max_depth} levels deep (the limit is "
            f"memory.max_value_depth = {max_depth})")
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidMemoryError(f"{name}: must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise InvalidMemoryError(
            f"{name}: nested too deeply to encode (memory.max_value_depth = "
            f"{max_depth} is above what this Python can encode)") from None
    size = encodable(name, text)
    if size > max_bytes:
        raise InvalidMemoryError(
            f"{name}: {size} bytes as JSON, more than memory.max_value_bytes = {max_bytes}")
    return json.loads(text)


def timestamp(name: str, value: Any) -> float | None:
    """Seconds since the epoch from a number or a datetime (naive means local time)."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidMemoryError(
            f"{name}: expected a datetime or seconds since the epoch, got {value!r}")
    return float(value)


def expiry(ttl: Any, expires_at: Any, now: float) -> float | None:
    """The absolute expiry time from ``ttl`` (seconds or timedelta) or ``expires_at``."""
    if ttl is not None and expires_at is not None:
        raise InvalidMemoryError("ttl, expires_at: give one of them, not both")
    if ttl is not None:
        if isinstance(ttl, _dt.timedelta):
            ttl = ttl.total_seconds()
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not (
            math.isfinite(ttl) and ttl > 0
        ):
            raise InvalidMemoryError(
                f"ttl: expected a positive number of seconds or a timedelta, got {ttl!r}")
        return now + float(ttl)
    return timestamp("expires_at", expires_at)


def limit(value: Any, name: str = "limit") -> int:
    """A positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidMemoryError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def tag_mode(value: Any) -> str:
    """``"any"`` or ``"all"``."""
    if value not in ("any", "all"):
        raise InvalidMemoryError(f"tag_mode: expected 'any' or 'all', got {value!r}")
    return value


def version(value: Any, name: str = "expected_version") -> int | None:
    """``None`` or an integer >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidMemoryError(f"{name}: expected an integer >= 0, got {value!r}")
    return value
