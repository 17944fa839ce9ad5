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
store's), and its ``peak`` is the most the store held at once.
"""

from __future__ import annotations

import ctypes
import itertools
import mmap
import threading
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
    """

    __slots__ = ("limit", "lock", "peak", "refused", "used")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self.refused: int | None = None
        self.lock = threading.Lock()

    def take(self, extra: int) -> bool:
        """Account ``extra`` more bytes; False (and ``refused`` set) past the limit."""
        with self.lock:
            wanted = self.used + extra
            if self.limit is not None and wanted > self.limit:
                self.refused = wanted
                return False
            self.used = wanted
            self.peak = max(self.peak, wanted)
            return True

    def give_back(self, size: int) -> None:
        """A memory of ``size`` bytes was freed."""
        with self.lock:
            self.used -= size


class _Memory:
    __slots__ = ("base", "budget", "capacity", "mapped", "size")

    def __init__(self, base: int, size: int, capacity: int, mapped: int,
                 budget: MemoryBudget) -> None:
        self.base = base
        self.size = size
        self.capacity = capacity
        self.mapped = mapped
        self.budget = budget


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
    with _POOL_LOCK:
        free = _POOL.setdefault(memory.mapped, [])
        keep = len(free) < POOL_SIZE
        if keep:
            free.append((memory.base, accessible))
    if not keep:
        _munmap(memory.base, memory.mapped)
    elif accessible and _madvise(memory.base, accessible, mmap.MADV_DONTNEED) != 0:
        with _POOL_LOCK:  # cannot be zeroed: never reuse it
            free.remove((memory.base, accessible))
        _munmap(memory.base, memory.mapped)


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
        budget = getattr(_current, "budget", None) or MemoryBudget(None)
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
        key = next(_KEYS)
        _MEMORIES[key] = _Memory(base, minimum, capacity, mapped, budget)
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
