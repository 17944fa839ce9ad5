"""Engines, their epoch tickers and their compiled-module caches (memory and disk).

One :class:`Runtime` per set of engine settings (:meth:`WasmSandboxConfig.engine_settings`)
lives for the whole process and is shared by every sandbox with those settings: one
wasmtime ``Engine``, one ``Linker`` with WASI defined, one :class:`EpochTicker` thread and
one in-memory LRU of compiled modules (each with its ``InstancePre``).  Compiled modules are
also kept on disk, keyed by the module's SHA-256, the wasmtime version and the engine
settings; a file that is corrupt, was written by another wasmtime version or is not
private to this user is ignored (and replaced), never trusted.

Everything here may block (compiling takes milliseconds to minutes): callers on an event
loop run it in a worker thread.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import platform
import stat
import threading
import time
from collections import OrderedDict
from typing import Any

import attrs
import wasmtime

from neuroflow.errors import SandboxError
from neuroflow_sandbox_wasm.memory import install as install_memory_creator
from neuroflow_sandbox_wasm.wasi_io import define_poll_oneoff

#: Seconds between two epoch ticks: the resolution of ``timeout_seconds``.
TICK_SECONDS = 0.01
CACHE_MAGIC = b"NFCWASM1\n"
CACHE_SUFFIX = ".cwasm"


def wasmtime_version() -> str:
    """The installed wasmtime-py version (part of every cache key)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wasmtime")
    except PackageNotFoundError:  # pragma: no cover - an unusual install
        return "unknown"


_WASMTIME_VERSION = wasmtime_version()


_TICKERS: list[EpochTicker] = []


@atexit.register
def _stop_tickers() -> None:
    for ticker in list(_TICKERS):
        ticker.stop()


class EpochTicker:
    """Advances one engine's epoch every :data:`TICK_SECONDS` while executions run.

    One daemon thread per engine, whatever the number of executions; it sleeps on a
    condition while nothing runs.  ``enter()``/``exit()`` bracket each execution.
    """

    def __init__(self, engine: wasmtime.Engine, tick: float = TICK_SECONDS) -> None:
        self._engine = engine
        self._tick = tick
        self._active = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.ticks = 0
        _TICKERS.append(self)

    @property
    def tick_seconds(self) -> float:
        """Seconds between ticks."""
        return self._tick

    def enter(self) -> None:
        """An execution starts: make sure the ticker runs."""
        with self._cond:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="neuroflow-wasm-epoch",
                                                 daemon=True)
                self._thread.start()
            elif self._active == 1:
                self._cond.notify()

    def exit(self) -> None:
        """An execution ended."""
        with self._cond:
            self._active -= 1

    def stop(self) -> None:
        """End the thread (at interpreter exit): a daemon thread woken while the
        interpreter finalizes is killed where it stands, and one killed inside wasmtime's
        native code aborts the process."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=1.0)

    def _loop(self) -> None:
        # Ticks follow the clock, not the number of sleeps: on a loaded machine a sleep
        # lasts longer than asked, and the missed ticks are made up at once.
        due = time.monotonic() + self._tick
        while True:
            with self._cond:
                if self._stopped:
                    return
                if self._active == 0:
                    while self._active == 0 and not self._stopped:
                        self._cond.wait()
                    if self._stopped:
                        return
                    due = time.monotonic() + self._tick
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            while due <= now:
                self._engine.increment_epoch()
                self.ticks += 1
                due += self._tick


@attrs.define(eq=False)
class CompiledModule:
    """A compiled module ready to instantiate.

    Attributes:
        sha256: hex SHA-256 of the module's bytes.
        module: the wasmtime ``Module``.
        pre: the module pre-linked against the runtime's linker (fast instantiation).
        source: ``"compiled"`` or ``"disk"``: where it came from the first time.
        size: the module's size in bytes.
        entry_shapes: export name -> (parameter count, result count) of that exported
            function, filled in as executions call it (a property of the module).
    """

    sha256: str
    module: wasmtime.Module
    pre: wasmtime.InstancePre
    source: str
    size: int = 0
    entry_shapes: dict[str, tuple[int, int]] = attrs.field(factory=dict)


def _private_dir(path: str) -> bool:
    """Create ``path`` (mode 0700) if missing; True if it is ours and not shared."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return False
    if st.st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError:
            return False
    return True


class DiskCache:
    """Compiled modules in one folder: ``<module sha256>-<settings hash>.cwasm``.

    A file holds a header line (magic, then JSON naming the wasmtime version, the engine
    settings, the module hash and the payload's hash) and the serialized module.  It is
    used only when every field matches and the payload hashes right: the payload is
    native code, so nothing else is ever deserialized.  Files are written atomically with
    mode 0600 in a folder of mode 0700 owned by this user.
    """

    def __init__(self, folder: str, settings: tuple[tuple[str, Any], ...]) -> None:
        self.folder = folder
        self.settings = [list(item) for item in settings]
        self.identity = {
            "wasmtime": _WASMTIME_VERSION,
            "settings": self.settings,
            "machine": platform.machine(),
            "system": platform.system(),
        }
        tag = json.dumps(self.identity, sort_keys=True).encode()
        self.settings_hash = hashlib.sha256(tag).hexdigest()[:16]

    def path_for(self, sha256: str) -> str:
        """The cache file of module ``sha256``."""
        return os.path.join(self.folder, f"{sha256}-{self.settings_hash}{CACHE_SUFFIX}")

    def load(self, engine: wasmtime.Engine, sha256: str) -> wasmtime.Module | None:
        """The cached module, or ``None`` if absent, stale, corrupt or not private."""
        path = self.path_for(sha256)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid()
                    or st.st_mode & 0o077):
                return None
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = fh.read()
        except OSError:
            return None
        finally:
            os.close(fd)
        header = self._header(data, sha256)
        if header is None:
            return None
        try:
            return wasmtime.Module.deserialize(engine, data[header:])
        except Exception:  # noqa: BLE001 - any failure means "not usable": recompile
            return None

    def _header(self, data: bytes, sha256: str) -> int | None:
        if not data.startswith(CACHE_MAGIC):
            return None
        end = data.find(b"\n", len(CACHE_MAGIC))
        if end < 0:
            return None
        try:
            meta = json.loads(data[len(CACHE_MAGIC):end])
        except ValueError:
            return None
        if not isinstance(meta, dict):
            return None
        payload = memoryview(data)[end + 1:]
        expected = dict(self.identity, module=sha256,
                        payload_sha256=hashlib.sha256(payload).hexdigest())
        return end + 1 if meta == expected else None

    def store(self, module: wasmtime.Module, sha256: str) -> bool:
        """Write ``module`` to the cache; False (and nothing written) on any failure."""
        if not _private_dir(self.folder):
            return False
        try:
            payload = bytes(module.serialize())
        except Exception:  # noqa: BLE001 - caching is an optimisation
            return False
        meta = dict(self.identity, module=sha256,
                    payload_sha256=hashlib.sha256(payload).hexdigest())
        path = self.path_for(sha256)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(CACHE_MAGIC)
                fh.write(json.dumps(meta, sort_keys=True).encode() + b"\n")
                fh.write(payload)
            os.replace(tmp, path)
            return True
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False


class Runtime:
    """One engine, its linker, epoch ticker and compiled-module cache (see the module doc)."""

    def __init__(self, settings: tuple[tuple[str, Any], ...]) -> None:
        self.settings = settings
        options = dict(settings)
        config = wasmtime.Config()
        config.consume_fuel = bool(options["consume_fuel"])
        config.epoch_interruption = True
        if options.get("max_wasm_stack") is not None:
            config.max_wasm_stack = int(options["max_wasm_stack"])
        install_memory_creator(config)
        self.engine = wasmtime.Engine(config)
        self.consume_fuel = bool(options["consume_fuel"])
        self.linker = wasmtime.Linker(self.engine)
        self.linker.allow_shadowing = True
        self.linker.define_wasi()
        define_poll_oneoff(self.linker)
        self.ticker = EpochTicker(self.engine)
        self._lock = threading.Lock()
        self._modules: OrderedDict[str, CompiledModule] = OrderedDict()
        self._inflight: dict[str, threading.Lock] = {}
        self._disk: dict[str, DiskCache] = {}

    def cached(self, sha256: str) -> CompiledModule | None:
        """The compiled module from memory, or ``None`` (never blocks for long)."""
        with self._lock:
            found = self._modules.get(sha256)
            if found is not None:
                self._modules.move_to_end(sha256)
            return found

    def disk_cache(self, folder: str) -> DiskCache:
        """The disk cache of this engine in ``folder``."""
        with self._lock:
            found = self._disk.get(folder)
            if found is None:
                found = self._disk[folder] = DiskCache(folder, self.settings)
            return found

    def load(self, data: bytes, sha256: str, *, cache_dir: str | None,
             keep: int) -> tuple[CompiledModule, str]:
        """Return the compiled module for ``data`` and where it came from.

        Looks in memory, then in ``cache_dir`` (if given), then compiles (once, even when
        many threads ask at the same time) and writes the result to ``cache_dir``.

        Raises:
            SandboxError: ``data`` is not a valid WebAssembly module, or it imports
                something other than WASI preview 1.
        """
        found = self.cached(sha256)
        if found is not None:
            return found, "memory"
        with self._lock:
            gate = self._inflight.setdefault(sha256, threading.Lock())
        with gate:
            found = self.cached(sha256)
            if found is not None:
                return found, "memory"
            try:
                compiled, source = self._load(data, sha256, cache_dir)
            finally:
                with self._lock:
                    self._inflight.pop(sha256, None)
        with self._lock:
            self._modules[sha256] = compiled
            while len(self._modules) > max(1, keep):
                self._modules.popitem(last=False)
        return compiled, source

    def _load(self, data: bytes, sha256: str, cache_dir: str | None
              ) -> tuple[CompiledModule, str]:
        disk = self.disk_cache(cache_dir) if cache_dir else None
        module = disk.load(self.engine, sha256) if disk is not None else None
        source = "disk"
        if module is None:
            source = "compiled"
            try:
                module = wasmtime.Module(self.engine, data)
            except Exception as exc:  # noqa: BLE001 - wasmtime raises several types
                raise SandboxError(f"module: not a valid WebAssembly module: "
                                   f"{_first_line(exc)}") from None
            if disk is not None:
                disk.store(module, sha256)
        try:
            pre = self.linker.instantiate_pre(module)
        except Exception as exc:  # noqa: BLE001
            imports = ", ".join(f"{i.module}.{i.name}" for i in module.imports)
            raise SandboxError(
                f"module: cannot be linked: {_first_line(exc)} (it imports {imports}; only "
                "wasi_snapshot_preview1 is provided)") from None
        return CompiledModule(sha256, module, pre, source, len(data)), source


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_RUNTIMES: dict[tuple[tuple[str, Any], ...], Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def runtime_for(settings: tuple[tuple[str, Any], ...]) -> Runtime:
    """The process-wide :class:`Runtime` for these engine settings (created once)."""
    with _RUNTIMES_LOCK:
        found = _RUNTIMES.get(settings)
        if found is None:
            found = _RUNTIMES[settings] = Runtime(settings)
        return found


def sha256_of(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of a module's bytes."""
    return hashlib.sha256(data).hexdigest()
