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


def json_value(value: Any, name: str = "value") -> Any:
    """A JSON value, returned as it will come back from any store (tuples become lists)."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidMemoryError(f"{name}: must be JSON-serialisable: {exc}") from None
    encodable(name, text)
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
