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


_RUN_AS_WORDS = ("auto", "dedicated", "root")


def _to_run_as(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check_run_as(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value or "\0" in value or ":" in value:
        raise ConfigError(
            f"{attribute.name}: expected 'auto', 'dedicated', 'root', a user name or a "
            f"uid, got {value!r}"
        )
    if value.isdigit() and int(value) > 2**32 - 2:
        raise ConfigError(f"{attribute.name}: expected a uid below 2**32 - 1, got {value!r}")


def _check_uid_range(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name}: expected a positive integer, got {value!r}")
    base, count = instance.dedicated_uid_base, instance.dedicated_uid_count
    if isinstance(base, int) and isinstance(count, int) and base + count > 2**32 - 2:
        raise ConfigError(
            f"{attribute.name}: dedicated_uid_base + dedicated_uid_count must stay below "
            f"2**32 - 1, got {base} + {count}"
        )


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
            ``fork()`` per run: slower start).  The process backend always does so when
            it uses run cgroups or drops privileges (the child sets itself up before its
            exec); only without either does it spawn with ``vfork`` and apply them right
            after the exec.  ``security_level="strict"`` implies this.
        run_as: who the command runs as.  ``"auto"`` (default): when the host runs as
            root, a dedicated unprivileged uid per run (see ``dedicated_uid_base``),
            else the host's own uid.  ``"dedicated"``: always a dedicated uid (needs
            root).  ``"root"``: keep root (the command can then undo its own limits:
            allowed only with weaker isolation, never under ``"strict"``).  A user name
            or a uid: that user, its primary group, no supplementary groups.
        dedicated_uid_base: first uid of the range dedicated uids are taken from (gid =
            uid, no supplementary groups); pick a range no real user has.
        dedicated_uid_count: how many uids the range holds (runs at once, machine-wide).
        allowed_dangerous_env: names from :data:`DANGEROUS_ENV` that ``execute(env=...)``
            may set under ``security_level="strict"`` (``LD_PRELOAD``, ``PYTHONPATH``...
            are refused there otherwise).
        work_dir_max_bytes: a cap on the total size of ``work_dir``.  Neither the process
            nor the namespace backend can enforce it (it needs disk quotas on the host
            directory): asking for it is refused unless weaker isolation is allowed.
        work_dir_max_files: a cap on the number of files in ``work_dir`` (same caveat).
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
    run_as: str = attrs.field(default="auto", converter=_to_run_as, validator=_check_run_as)
    dedicated_uid_base: int = attrs.field(default=600_000, validator=_check_uid_range)
    dedicated_uid_count: int = attrs.field(default=10_000, validator=_check_uid_range)
    allowed_dangerous_env: tuple[str, ...] = attrs.field(
        default=(), converter=_str_tuple("allowed_dangerous_env"), validator=_check_strings
    )
    work_dir_max_bytes: ByteSize | None = attrs.field(
        default=None, converter=size_converter("work_dir_max_bytes"),
        validator=_positive_or_none("an integer number of bytes")
    )
    work_dir_max_files: int | None = attrs.field(
        default=None, validator=_positive_or_none("an integer count")
    )

    @property
    def weaker_allowed(self) -> bool:
        """Whether unenforceable settings may be skipped (explicitly, or ``PERMISSIVE``)."""
        return self.allow_weaker_isolation or (
            self.security_level is SandboxSecurityLevel.PERMISSIVE
        )


#: Environment variables that change what a program loads or runs before its own code
#: (the dynamic loader, interpreters' start-up, shells).  ``DANGEROUS_ENV_PREFIXES``
#: catches whole families.
DANGEROUS_ENV = frozenset({
    "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH", "GCONV_PATH",
    "GLIBC_TUNABLES", "HOSTALIASES", "LOCPATH", "NLSPATH", "RESOLV_HOST_CONF",
    "NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
    "CLASSPATH", "LUA_PATH", "LUA_CPATH", "LUA_INIT", "TCLLIBPATH", "OPENSSL_CONF",
    "OPENSSL_ENGINES", "GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND",
})
DANGEROUS_ENV_PREFIXES = ("LD_", "DYLD_", "PYTHON", "PERL5", "PERLLIB", "RUBY", "GEM_",
                          "BASH_FUNC_", "MALLOC_", "GIT_CONFIG_")


def is_dangerous_env(name: str) -> bool:
    """Whether setting ``name`` can make a program run other code than its own."""
    return name in DANGEROUS_ENV or name.startswith(DANGEROUS_ENV_PREFIXES)
