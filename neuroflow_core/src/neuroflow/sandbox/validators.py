"""Validators and converters shared by sandbox config classes (``SandboxConfig``, the
``wasm`` backend's ``WasmSandboxConfig``, a third party's).

Each raises :class:`~neuroflow.errors.ConfigError` naming only its field (``max_fuel:
expected an integer amount of fuel or None, got 'lots'``); the configuration layer adds
the section path and the source.  Use them as attrs ``validator=``/``converter=``::

    from neuroflow.sandbox import validators as v

    @attrs.frozen(kw_only=True)
    class MyConfig:
        timeout: float | None = attrs.field(default=30.0,
                                            validator=v.number("a number of seconds"))
        env: Mapping[str, str] = attrs.field(factory=dict, converter=v.env_table,
                                             validator=v.check_env)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from neuroflow.errors import ConfigError
from neuroflow.security.levels import SandboxSecurityLevel

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def number(kind: str, *, integer: bool | None = None, optional: bool = True,
           minimum: float = 0) -> Validator:
    """A validator: a number greater than ``minimum`` (or ``None`` when ``optional``).

    Args:
        kind: what the field holds, for messages (``"a number of seconds"``).
        integer: whether only integers are accepted; ``None`` (the default) reads it from
            ``kind`` (``"an integer ..."``).
        optional: whether ``None`` ("no limit") is accepted.
        minimum: the value must be greater than this.
    """
    whole = kind.startswith("an integer") if integer is None else integer
    expected = f"{kind} or None" if optional else kind

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{attribute.name}: expected {expected}, got {value!r}")
        if value <= minimum:
            raise ConfigError(
                f"{attribute.name}: expected {kind} greater than {minimum:g}, got {value!r}")
        if whole and not isinstance(value, int):
            raise ConfigError(f"{attribute.name}: expected {kind}, got {value!r}")

    return check


def check_bool(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A validator: ``True`` or ``False`` only (not 1, not ``"yes"``)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{attribute.name}: expected true or false, got {value!r}")


def check_optional_dir(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A validator: a non-empty directory path, or ``None``."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name}: expected a directory path or None, got {value!r}")


def path_str(value: Any) -> Any:
    """A converter: a ``PathLike`` becomes its ``str``; anything else is left to the
    validator."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def str_tuple(field: str, *, optional: bool = False) -> Callable[[Any], Any]:
    """A converter for field ``field``: a list of strings becomes a tuple (``None`` stays
    when ``optional``); a lone string is refused (it is not a list of one)."""

    def convert(value: Any) -> tuple[Any, ...] | None:
        if value is None and optional:
            return None
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{field}: expected a list of strings, got {value!r}")
        return tuple(value)

    return convert


def check_strings(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A validator: ``None`` or non-empty strings (after :func:`str_tuple`)."""
    if value is None:
        return
    for item in value:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{attribute.name}: expected non-empty strings, got {item!r}")


def env_table(value: Any) -> dict[str, str]:
    """A converter for ``env``: a mapping becomes a ``dict`` (checked by
    :func:`check_env`)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"env: expected a table of NAME = value strings, got {value!r}")
    return dict(value)


def check_env(instance: object, attribute: attrs.Attribute[Any],
              value: Mapping[str, str]) -> None:
    """A validator: variable names without ``=`` or NUL, string values without NUL."""
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ConfigError(f"{attribute.name}: invalid variable name {key!r}")
        if not isinstance(item, str) or "\0" in item:
            raise ConfigError(f"{attribute.name}.{key}: expected a string value, got {item!r}")


def security_level(value: Any) -> SandboxSecurityLevel:
    """A converter for ``security_level``: a level or its name."""
    try:
        return SandboxSecurityLevel(value)
    except ValueError:
        known = ", ".join(level.value for level in SandboxSecurityLevel)
        raise ConfigError(f"security_level: expected one of {known}, got {value!r}") from None
