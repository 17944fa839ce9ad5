"""``MemoryConfig``: the settings of the ``[memory]`` configuration section.

The store itself is chosen by ``[memory] backend = "..."`` and configured in its own table
(``[memory.sqlite] url = "..."``); these settings are what every store shares: limits,
expiry sweeping, ranking weights and the embedder used for semantic search.
"""

from __future__ import annotations

import attrs

from neuroflow.errors import ConfigError
from neuroflow.memory.validate import (
    DEFAULT_MAX_FILTER_DEPTH,
    DEFAULT_MAX_VALUE_BYTES,
    DEFAULT_MAX_VALUE_DEPTH,
    MAX_DEPTH_LIMIT,
)

EVICTION_SCOPES = ("agent", "global")


def _to_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"expected a number, got {value!r}")
    return float(value)


def _non_negative(_inst: object, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise ConfigError(f"{attribute.name}: expected a number >= 0, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{attribute.name}: expected a number > 0, got {value!r}")


def _share(_inst: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{attribute.name}: expected a number in 0..1, got {value!r}")


def _max_entries(_inst: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"max_entries: expected an integer >= 1 or none, got {value!r}")


def _depth(_inst: object, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DEPTH_LIMIT:
        raise ConfigError(f"memory.{attribute.name}: expected an integer from 1 to "
                          f"{MAX_DEPTH_LIMIT}, got {value!r}")


def _bytes(_inst: object, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"memory.{attribute.name}: expected a number of bytes >= 1, "
                          f"got {value!r}")


def _scope(_inst: object, attribute: attrs.Attribute, value: str) -> None:
    if value not in EVICTION_SCOPES:
        raise ConfigError(
            f"eviction_scope: expected one of {', '.join(EVICTION_SCOPES)}, got {value!r}"
        )


@attrs.frozen
class MemoryConfig:
    """Shared memory settings (``[memory]`` in ``neuroflow.toml``).

    Attributes:
        max_entries: most entries kept per agent (or in total, see ``eviction_scope``);
            storing past it evicts the lowest-importance, then oldest entries.  ``None``
            means no limit.
        eviction_scope: ``"agent"`` (the limit applies to each agent) or ``"global"``.
        gc_interval_seconds: how often expired entries are swept away.
        relevance_weight: weight of query relevance in the search score.
        importance_weight: weight of the entry's importance in the search score.
        recency_weight: weight of recency (``0.5 ** (age / recency_half_life_seconds)``).
        recency_half_life_seconds: age at which the recency term halves.
        semantic_share: share of relevance that comes from embedding similarity; the rest
            comes from keyword overlap (fraction of query words the entry contains).
        embedder: the embedder backend for semantic search; ``None`` uses the ``[embedder]``
            section (default ``"lexical"``).
        default_importance: importance of an entry stored without one.
        keep_history: record every change in the append-only history.
        max_value_depth: most lists and objects nested in a value (default 100, at most
            500); a deeper value is refused with ``InvalidMemoryError``.
        max_value_bytes: most bytes of a value's UTF-8 JSON text (default 16 MiB).
        max_filter_depth: most levels of nesting in a ``filter`` (every object and list,
            operands included; default 64, at most 500).
    """

    max_entries: int | None = attrs.field(default=10_000, validator=_max_entries)
    eviction_scope: str = attrs.field(default="agent", validator=_scope)
    gc_interval_seconds: float = attrs.field(default=300.0, converter=_to_float,
                                             validator=_positive)
    relevance_weight: float = attrs.field(default=0.6, converter=_to_float,
                                          validator=_non_negative)
    importance_weight: float = attrs.field(default=0.25, converter=_to_float,
                                           validator=_non_negative)
    recency_weight: float = attrs.field(default=0.15, converter=_to_float,
                                        validator=_non_negative)
    recency_half_life_seconds: float = attrs.field(default=7 * 86400.0, converter=_to_float,
                                                   validator=_positive)
    semantic_share: float = attrs.field(default=0.7, converter=_to_float, validator=_share)
    embedder: str | None = None
    default_importance: float = attrs.field(default=0.5, converter=_to_float, validator=_share)
    keep_history: bool = True
    max_value_depth: int = attrs.field(default=DEFAULT_MAX_VALUE_DEPTH, validator=_depth)
    max_value_bytes: int = attrs.field(default=DEFAULT_MAX_VALUE_BYTES, validator=_bytes)
    max_filter_depth: int = attrs.field(default=DEFAULT_MAX_FILTER_DEPTH, validator=_depth)
