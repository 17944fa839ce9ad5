"""What a span and a tracer backend are: :class:`Span`, :class:`Tracer` and their enums.

A tracer backend (``local``, ``noop``, the ``otel`` plugin, a third party's) is any object
satisfying :class:`Tracer`.  :class:`~neuroflow.observability.TracingService` owns the
current-span context; it hands the backend the parent span explicitly, so a backend never
has to manage context itself (the OpenTelemetry plugin turns ``parent`` into an OTel
context and keeps its own ``trace_id``/``span_id``).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from typing import Union

from neuroflow.errors import ConfigError

#: A value :meth:`Span.set_attribute` accepts (the OpenTelemetry attribute types).
AttributeValue = Union[str, bool, int, float, Sequence[str], Sequence[bool], Sequence[int],
                       Sequence[float]]

_SCALARS = (str, bool, int, float)


class SpanKind(str, enum.Enum):
    """The role of a span in a trace, as in OpenTelemetry."""

    INTERNAL = "internal"
    SERVER = "server"
    CLIENT = "client"
    PRODUCER = "producer"
    CONSUMER = "consumer"

    def __str__(self) -> str:
        return self.value


class SpanStatus(str, enum.Enum):
    """The outcome of a span: unset until someone says ``ok`` or ``error``."""

    UNSET = "unset"
    OK = "ok"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def check_attribute(key: object, value: object) -> AttributeValue | None:
    """Return ``value`` as stored on a span (sequences become tuples), or raise ConfigError.

    ``None`` is returned for a ``None`` value, which backends treat as "do not record".
    """
    if type(key) is not str or not key:
        raise ConfigError(f"span attribute key: expected a non-empty string, got {key!r}")
    if value is None or type(value) in _SCALARS:
        return value  # type: ignore[return-value]
    if isinstance(value, _SCALARS):
        return value  # subclasses of str/int (enums) are fine as they are
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
        return tuple(value)
    raise ConfigError(
        f"span attribute {key!r}: expected str, bool, int, float or a list of them, "
        f"got {type(value).__name__} {value!r}"
    )


def check_status(status: object) -> SpanStatus:
    """Turn ``"ok"``/``"error"``/a :class:`SpanStatus` into a :class:`SpanStatus`."""
    if isinstance(status, SpanStatus):
        return status
    try:
        return SpanStatus(str(status).lower())
    except ValueError:
        raise ConfigError(
            f"span status: expected one of unset, ok, error, got {status!r}"
        ) from None


_random = random.Random()
_bits = _random.getrandbits


def new_trace_id() -> str:
    """Return a random, non-zero W3C trace id: 32 lowercase hex digits."""
    value = _bits(128)
    while not value:
        value = _bits(128)
    return f"{value:032x}"


def new_span_id() -> str:
    """Return a random, non-zero W3C span id: 16 lowercase hex digits."""
    value = _bits(64)
    while not value:
        value = _bits(64)
    return f"{value:016x}"


