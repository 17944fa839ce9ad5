"""``NamespaceConfig``: ``[sandbox.namespace]``, every ``SandboxConfig`` option plus the
namespace sandbox's file-system ones (``binds``, ``tmp_size``, ``shm_size``, ...)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from neuroflow.errors import ConfigError
from neuroflow.sandbox import SandboxConfig
from neuroflow.units import ByteSize, size_converter

MiB = 1024 * 1024

#: What ``/etc`` holds inside (each bound read-only when the host has it): what the dynamic
#: loader, name lookups, TLS and time zones need; never ``shadow``, ``sudoers``, keys.
DEFAULT_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "passwd", "group",
               "hosts", "resolv.conf", "nsswitch.conf", "host.conf", "localtime", "ssl",
               "ca-certificates", "mime.types", "protocols", "services")

#: Top-level directories bound read-only (or recreated as the same symlink) when present.
DEFAULT_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

#: Targets a bind may not cover: the sandbox's own /proc, /dev and root.
_RESERVED = ("/", "/proc", "/dev")


@attrs.frozen
class Bind:
    """One host path made visible inside: ``source`` (host) at ``target`` (inside).

    Attributes:
        source: an absolute host path (a directory or a file).
        target: where it appears inside (absolute; default: the same path).
        writable: bound read-write; read-only otherwise.
    """

    source: str
    target: str
    writable: bool = False


def _clean(path: Any, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise ConfigError(f"{what}: expected an absolute path, got {path!r}")
    if ".." in path.split("/"):
        raise ConfigError(f"{what}: '..' is not allowed, got {path!r}")
    return os.path.normpath(path)


def _to_bind(item: Any) -> Bind:
    """``"SRC"``, ``"SRC:DST"``, ``"SRC:DST:rw"`` (or ``:ro``), a table
    ``{source, target, writable}`` or a :class:`Bind`."""
    if isinstance(item, Bind):
        source, target, writable = item.source, item.target, item.writable
    elif isinstance(item, str):
        parts = item.split(":")
        if len(parts) > 3 or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise ConfigError(f"binds: expected 'SRC', 'SRC:DST' or 'SRC:DST:ro|rw', got {item!r}")
        source = parts[0]
        target = parts[1] if len(parts) > 1 and parts[1] else source
        writable = len(parts) == 3 and parts[2] == "rw"
    elif isinstance(item, Mapping):
        unknown = set(item) - {"source", "target", "writable"}
        if unknown or "source" not in item:
            raise ConfigError(
                f"binds: expected a table with source (and target, writable), got {dict(item)!r}")
        source = item["source"]
        target = item.get("target") or source
        writable = item.get("writable", False)
        if not isinstance(writable, bool):
            raise ConfigError(f"binds: writable: expected true or false, got {writable!r}")
    else:
        raise ConfigError(f"binds: expected a path string or a table, got {item!r}")
    source = _clean(source, "binds: source")
    target = _clean(target, "binds: target")
    if target in _RESERVED or target.startswith(("/proc/", "/dev/")):
        raise ConfigError(f"binds: target: {target!r} belongs to the sandbox itself")
    return Bind(source, target, writable)


def _to_binds(value: Any) -> tuple[Bind, ...]:
    if isinstance(value, (str, bytes, Mapping, Bind)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"binds: expected a list of binds, got {value!r}")
    return tuple(_to_bind(item) for item in value)


def _to_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"etc: expected a list of names in /etc, got {value!r}")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
            raise ConfigError(f"etc: expected names relative to /etc, got {name!r}")
    return names


def _check_size(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 4096:
        raise ConfigError(f"{attribute.name}: expected a size of at least 4K, got {value!r}")


def _check_hostname(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if (not isinstance(value, str) or not value or len(value) > 64
            or not all(c.isalnum() or c in "-." for c in value)):
        raise ConfigError(f"hostname: expected 1-64 letters, digits, '-' or '.', got {value!r}")


@attrs.frozen(kw_only=True)
class NamespaceConfig(SandboxConfig):
    """``[sandbox.namespace]``: every ``SandboxConfig`` option, and:

    Attributes:
        binds: host paths made visible inside, read-only unless ``writable``
            (``"SRC"``, ``"SRC:DST:rw"`` or ``{source, target, writable}``).  The work
            directory is always bound read-write at its own path.
        tmp_size: size cap of the private ``/tmp`` (a tmpfs; charged to the run's memory
            cgroup).
        shm_size: size cap of the private ``/dev/shm``.
        etc: the names in ``/etc`` bound read-only when the host has them.
        system_dirs: the top-level directories bound read-only (``/usr``, ``/lib*``...).
        hostname: the host name inside (its own uts namespace).
    """

    # (Items are strings or tables in a file: the converter makes them Binds.)
    binds: tuple[Any, ...] = attrs.field(default=(), converter=_to_binds)
    tmp_size: ByteSize = attrs.field(default=64 * MiB, converter=size_converter("tmp_size"),
                                     validator=_check_size)
    shm_size: ByteSize = attrs.field(default=64 * MiB, converter=size_converter("shm_size"),
                                     validator=_check_size)
    etc: tuple[str, ...] = attrs.field(default=DEFAULT_ETC, converter=_to_names)
    system_dirs: tuple[str, ...] = attrs.field(
        default=DEFAULT_SYSTEM_DIRS,
        converter=lambda value: tuple(_clean(p, "system_dirs") for p in _to_paths(value)))
    hostname: str = attrs.field(default="sandbox", validator=_check_hostname)


def _to_paths(value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"system_dirs: expected a list of absolute paths, got {value!r}")
    return tuple(value)
