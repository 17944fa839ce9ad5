"""The span vocabulary NeuroFlow's API speaks, mapped onto OpenTelemetry's.

:class:`SpanKind` and :class:`SpanStatus` are string enums (``SpanKind.CLIENT == "client"``)
whose ``.otel`` property is OpenTelemetry's own value; spans themselves, their ids and the
current-span context are OpenTelemetry's (``opentelemetry-api``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Union

from opentelemetry import trace
from opentelemetry.trace import StatusCode

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

    @property
    def otel(self) -> trace.SpanKind:
        """The OpenTelemetry ``SpanKind`` of the same name."""
        return _OTEL_KINDS[self]


class SpanStatus(str, enum.Enum):
    """The outcome of a span: unset until someone says ``ok`` or ``error``."""

    UNSET = "unset"
    OK = "ok"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @property
    def otel(self) -> StatusCode:
        """The OpenTelemetry ``StatusCode`` of the same name."""
        return _OTEL_STATUS[self]


_OTEL_KINDS = {kind: getattr(trace.SpanKind, kind.name) for kind in SpanKind}
_OTEL_STATUS = {status: getattr(StatusCode, status.name) for status in SpanStatus}


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
    if isinstance(status, StatusCode):
        return SpanStatus(status.name.lower())
    try:
        return SpanStatus(str(status).lower())
    except ValueError:
        raise ConfigError(
            f"span status: expected one of unset, ok, error, got {status!r}"
        ) from None
