"""``SandboxConfig``: the limits and settings every isolation backend understands.

The same class is the option table of the built-in ``process`` backend
(``[sandbox.process]`` in ``neuroflow.toml``); other backends may reuse it or subclass it.
Every value is checked when the object is built, and errors name the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from neuroflow.config import file_relative
from neuroflow.errors import ConfigError
from neuroflow.security.levels import SandboxSecurityLevel
from neuroflow.units import ByteSize, size_converter

MiB = 1024 * 1024


def _positive_or_none(kind: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{attribute.name}: expected {kind} or None, got {value!r}")
        if value <= 0:
            raise ConfigError(f"{attribute.name}: expected {kind} greater than 0, got {value!r}")
        if kind.startswith("an integer") and not isinstance(value, int):
            raise ConfigError(f"{attribute.name}: expected {kind}, got {value!r}")

    return check


def _str_tuple(field: str, optional: bool = False) -> Any:
    def convert(value: Any) -> tuple[str, ...] | None:
        if value is None and optional:
            return None
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{field}: expected a list of strings, got {value!r}")
        return tuple(value)

    return convert


def _env_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"env: expected a table of NAME = value strings, got {value!r}")
    return dict(value)


def _check_bool(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{attribute.name}: expected true or false, got {value!r}")


def _check_strings(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    for item in value:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{attribute.name}: expected non-empty strings, got {item!r}")


def _check_env(instance: object, attribute: attrs.Attribute, value: Mapping[str, str]) -> None:
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ConfigError(f"{attribute.name}: invalid variable name {key!r}")
        if not isinstance(item, str) or "\0" in item:
            raise ConfigError(f"{attribute.name}.{key}: expected a string value, got {item!r}")


def _check_work_dir(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name}: expected a directory path or None, got {value!r}")


def _to_level(value: Any) -> SandboxSecurityLevel:
    try:
        return SandboxSecurityLevel(value)
    except ValueError:
        known = ", ".join(level.value for level in SandboxSecurityLevel)
        raise ConfigError(f"security_level: expected one of {known}, got {value!r}") from None


def _to_path_str(value: Any) -> Any:
    return str(value) if hasattr(value, "__fspath__") else value


@attrs.frozen(kw_only=True)
class SandboxConfig:
    """Limits and settings for running a command in a sandbox.

    ``None`` for a limit means "no limit".  Sizes are in bytes, times in seconds.

    Attributes:
        work_dir: working directory of the command, created if missing; ``None`` gives
            each isolator a private temporary directory, removed by ``aclose()``.
        cpu_time_limit: CPU seconds (``RLIMIT_CPU``, rounded up to whole seconds).
        memory_limit: memory in bytes (a memory cgroup when available, else ``RLIMIT_AS``).
        address_space_limit: an explicit ``RLIMIT_AS`` in bytes, on top of ``memory_limit``.
        wall_timeout: wall-clock seconds before the whole process tree is killed.
        max_open_files: open file descriptors (``RLIMIT_NOFILE``).
        max_file_size: largest file the command may write (``RLIMIT_FSIZE``).
        max_output_bytes: bytes kept from each of stdout and stderr (default 16 MiB);
            more ends the run with ``OUTPUT_LIMIT``.  ``None`` is an explicit opt-out:
            everything is kept until ``wall_timeout`` ends the run, so memory use grows
            with the output; keep a finite cap for programs you do not control.
        max_processes: processes and threads in the sandbox at once (needs a pids cgroup).
        env: extra environment variables for the command.
        inherit_env: names of host environment variables passed through (nothing else
            from the host environment is visible).
        enable_network: whether the command may use the network.
        enable_seccomp: whether system calls are filtered.
        allowed_commands: if set, only these commands may run.  The command is resolved
            once (a bare name on ``PATH``, a relative path against the working
            directory) and runs only if that file is one an entry resolves to.
        security_level: how strict the sandbox is (see ``SandboxSecurityLevel``).
        allow_weaker_isolation: run even when a requested guarantee cannot be enforced
            on this machine (otherwise ``UnsupportedLimitError``).
        exact_rlimits: apply rlimits in the child before it execs the program (a
            ``fork()`` per run: slower start).  By default the process backend spawns
            with ``vfork`` and applies them right after the exec, to the program and to
            anything it forked in between; cgroup limits apply from the first
            instruction either way.  ``security_level="strict"`` implies this.
    """

    work_dir: str | None = file_relative(
        default=None, converter=_to_path_str, validator=_check_work_dir
    )
    cpu_time_limit: float | None = attrs.field(
        default=30.0, validator=_positive_or_none("a number of seconds")
    )
    memory_limit: ByteSize | None = attrs.field(
        converter=size_converter('memory_limit'),
        default=512 * MiB, validator=_positive_or_none("an integer number of bytes")
    )
    address_space_limit: ByteSize | None = attrs.field(
        converter=size_converter('address_space_limit'),
        default=None, validator=_positive_or_none("an integer number of bytes")
    )
    wall_timeout: float | None = attrs.field(
        default=60.0, validator=_positive_or_none("a number of seconds")
    )
    max_open_files: int | None = attrs.field(
        default=256, validator=_positive_or_none("an integer count")
    )
    max_file_size: ByteSize | None = attrs.field(
        converter=size_converter('max_file_size'),
        default=256 * MiB, validator=_positive_or_none("an integer number of bytes")
    )
    max_output_bytes: ByteSize | None = attrs.field(
        converter=size_converter('max_output_bytes'),
        default=16 * MiB, validator=_positive_or_none("an integer number of bytes")
    )
    max_processes: int | None = attrs.field(
        default=64, validator=_positive_or_none("an integer count")
    )
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_env_dict, validator=_check_env)
    inherit_env: tuple[str, ...] = attrs.field(
        default=(), converter=_str_tuple("inherit_env"), validator=_check_strings
    )
    enable_network: bool = attrs.field(default=True, validator=_check_bool)
    enable_seccomp: bool = attrs.field(
        default=False, validator=_check_bool
    )
    allowed_commands: tuple[str, ...] | None = attrs.field(
        default=None, converter=_str_tuple("allowed_commands", optional=True),
        validator=_check_strings,
    )
    security_level: SandboxSecurityLevel = attrs.field(
        default=SandboxSecurityLevel.STANDARD, converter=_to_level
    )
    allow_weaker_isolation: bool = attrs.field(
        default=False, validator=_check_bool
    )
    exact_rlimits: bool = attrs.field(default=False, validator=_check_bool)

    @property
    def weaker_allowed(self) -> bool:
        """Whether unenforceable settings may be skipped (explicitly, or ``PERMISSIVE``)."""
        return self.allow_weaker_isolation or (
            self.security_level is SandboxSecurityLevel.PERMISSIVE
        )
