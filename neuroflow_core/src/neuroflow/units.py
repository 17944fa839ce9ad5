"""Units in configuration: byte sizes written as ``65536``, ``64K``, ``256M`` or ``1G``.

Fields annotated :data:`ByteSize` accept those strings in ``neuroflow.toml``, in
environment variables, on the command line and in Python alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NewType

#: A number of bytes; configuration accepts ``"256M"``-style strings for it.
ByteSize = NewType("ByteSize", int)

MiB = 1024 * 1024
_UNITS = {"": 1, "K": 1024, "M": MiB, "G": 1024 * MiB, "T": 1024 * 1024 * MiB}


def parse_size(text: str) -> int:
    """Parse ``"64M"``, ``"1G"``, ``"512k"``, ``"1MiB"`` or ``"1048576"`` into bytes.

    Units are binary (``K`` = 1024).  Raises ``ValueError`` saying what was expected.
    """
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = raw, ""
    if raw and raw[-1] in "KMGT":
        number, unit = raw[:-1], raw[-1]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(
            f"expected a size like 65536, 64K, 256M or 1G, got {text!r}") from None
    result = int(value * _UNITS[unit])
    if result <= 0:
        raise ValueError(f"expected a size greater than 0, got {text!r}")
    return result


def size_converter(field: str) -> Callable[[Any], Any]:
    """An attrs converter for field ``field``: a size string becomes bytes, anything else
    is left to the field's validator; a bad string is a ``ConfigError`` naming the field."""
    from neuroflow.errors import ConfigError

    def convert(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            raise ConfigError(f"{field}: {exc}") from None

    return convert
