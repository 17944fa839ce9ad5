"""WASI plumbing wasmtime-py does not offer as we need it.

- :class:`OutputSink`: stdout/stderr captured in memory up to a cap.  wasmtime-py's own
  ``stdout_custom`` keeps callbacks in a process-global slab that is not safe when many
  threads create and drop stores at once (one run's output could reach another's
  buffer), so the C callback here gets its own key and looks it up in a dict.  Passing
  the cap on either stream ends the run: nothing either stream gets afterwards is kept,
  and the module traps at its next epoch check or sleep.
- :func:`set_stdin_bytes`: stdin from bytes, without a temporary file.
- :func:`define_poll_oneoff`: WASI's ``poll_oneoff`` (sleep, ``select``) replaced by one
  that never sleeps past the execution's wall-clock deadline, and traps the module there
  (wasmtime's own blocks the thread for as long as the module asks, and epoch
  interruption cannot stop a host call).  It is defined through the C API so that it can
  return a trap of its own: wasmtime-py's host functions report a Python exception
  through one process-wide slot, which concurrent executions could read for each other.

These use ``wasmtime._ffi`` (the C API bindings), stable within wasmtime 49.x, which this
distribution pins.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import struct
import threading
import time
from typing import Any

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi

from neuroflow_sandbox_wasm.memory import MEMORY_MESSAGE, MemoryBudget

_OUTPUT_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t)
_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

_SINKS: dict[int, OutputSink] = {}
_KEYS = itertools.count(1)


class OutputSink:
    """What a module wrote to one stream, at most ``cap`` bytes (``None``: no cap).

    Past the cap the write fails with ``EIO`` (the module is told) and ``truncated``
    is set; the bytes kept are the first ``cap``.
    """

    __slots__ = ("buf", "cap", "control", "truncated")

    def __init__(self, cap: int | None, control: RunControl | None = None) -> None:
        self.buf = bytearray()
        self.cap = cap
        self.truncated = False
        self.control = control

    def write(self, ptr: Any, size: int) -> int:
        """Keep up to the cap; return the bytes accepted or ``-EIO``.

        Past the cap, the run's control (if any) is told: the run ends, and neither of
        its streams keeps anything more.
        """
        control = self.control
        if control is not None and control.output_capped:
            return -errno.EIO
        cap = self.cap
        if cap is not None and len(self.buf) + size > cap:
            room = cap - len(self.buf)
            if room > 0:
                self.buf += ctypes.string_at(ptr, room)
            self.truncated = True
            if control is not None:
                control.output_capped = True
            return -errno.EIO
        self.buf += ctypes.string_at(ptr, size)
        return size

    def attach(self, wasi: wasmtime.WasiConfig, stream: str) -> None:
        """Make this sink the ``stream`` (``"stdout"``/``"stderr"``) of ``wasi``."""
        key = next(_KEYS)
        _SINKS[key] = self
        setter = (ffi.wasi_config_set_stdout_custom if stream == "stdout"
                  else ffi.wasi_config_set_stderr_custom)
        setter(wasi.ptr(), _output_callback, key, _output_finalizer)


@_OUTPUT_CALLBACK
def _output_callback(key: int | None, ptr: Any, size: int) -> int:
    sink = _SINKS.get(key or 0)
    if sink is None:
        return -errno.EIO
    try:
        return sink.write(ptr, size)
    except BaseException:  # noqa: BLE001 - nothing may unwind into wasmtime
        return -errno.EIO


@_FINALIZER
def _output_finalizer(key: int | None) -> None:
    _SINKS.pop(key or 0, None)


def set_stdin_bytes(wasi: wasmtime.WasiConfig, data: bytes) -> None:
    """Give ``wasi`` a stdin that reads ``data`` then end-of-file."""
    vec = ffi.wasm_byte_vec_t()
    buffer = (ctypes.c_ubyte * len(data)).from_buffer_copy(data) if data else None
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data),
                          ctypes.cast(buffer, ctypes.POINTER(ctypes.c_ubyte)))
    ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))  # takes ownership


# --- wall-clock deadline and cancellation ---------------------------------------------------

#: Trap messages of an execution this module ended.
TIMED_OUT_MESSAGE = "neuroflow: the wall-clock timeout passed"
CANCELLED_MESSAGE = "neuroflow: the execution was cancelled"
OUTPUT_MESSAGE = "neuroflow: the output cap was reached"
#: Trap message of an inline execution that would block (it is run again in a worker).
MOVE_MESSAGE = "neuroflow: an inline execution would block"
#: Epoch ticks between two looks at a run's control (cancellation is seen this often).
CHECK_TICKS = 5

_EPOCH_CALLBACK = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[1]
_EPOCH_FINALIZER = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[3]
_CONTROLS: dict[int, RunControl] = {}


class RunControl:
    """The wall-clock deadline of one execution, and a flag that cancels it.

    wasmtime calls back each time the store's epoch deadline comes (every few ticks of the
    engine's ticker): past ``deadline`` or once ``cancel()`` was called, the callback
    returns an error and the module traps at once; otherwise it runs on.
    """

    __slots__ = ("budget", "cancelled", "deadline", "output_capped", "tick")

    def __init__(self, tick: float) -> None:
        self.deadline: float | None = None
        self.cancelled = False
        self.output_capped = False
        self.tick = tick
        self.budget: MemoryBudget | None = None

    def stop_message(self) -> str | None:
        """Why the execution must stop now (a trap message), or ``None``."""
        if self.cancelled:
            return CANCELLED_MESSAGE
        if self.output_capped:
            return OUTPUT_MESSAGE
        if self.budget is not None and self.budget.refused is not None:
            return MEMORY_MESSAGE
        if self.deadline is not None and self.deadline <= time.monotonic():
            return TIMED_OUT_MESSAGE
        return None

    def cancel(self) -> None:
        """End the execution at its next epoch check (thread-safe)."""
        self.cancelled = True

    def attach(self, store: wasmtime.Store) -> None:
        """Make this control the judge of ``store``'s epoch deadlines."""
        key = next(_KEYS)
        _CONTROLS[key] = self
        ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), _epoch_callback, key,
                                                   _epoch_finalizer)
        store.set_epoch_deadline(1)


def _error(message: str) -> int:
    return ctypes.cast(ffi.wasmtime_error_new(message.encode()), ctypes.c_void_p).value or 0


@_EPOCH_CALLBACK
def _epoch_callback(context: Any, key: int | None, delta: Any, kind: Any) -> int:
    try:
        control = _CONTROLS.get(key or 0)
        ticks = CHECK_TICKS
        if control is not None:
            stop = control.stop_message()
            if stop is not None:
                return _error(stop)
            if control.deadline is not None:
                left = control.deadline - time.monotonic()
                ticks = max(1, min(CHECK_TICKS, int(left / control.tick)))
        delta[0] = ticks
        kind[0] = 0  # continue
        return 0
    except BaseException:  # noqa: BLE001 - nothing may unwind into wasmtime
        return _error("neuroflow: the epoch deadline check failed")


@_EPOCH_FINALIZER
def _epoch_finalizer(key: int | None) -> None:
    _CONTROLS.pop(key or 0, None)


# --- poll_oneoff ---------------------------------------------------------------------------

#: The execution running on this thread: its wall-clock deadline (``time.monotonic()``).
_current = threading.local()

_SUBSCRIPTION = 48
_EVENT = 32
_ERRNO_SUCCESS = 0
_ERRNO_FAULT = 21
_ERRNO_INVAL = 28
_EVENTTYPE_CLOCK = 0
_SUBCLOCKFLAG_ABSTIME = 1
#: Past the deadline, sleep this long more so the epoch has certainly moved on and the
#: module is interrupted at its next function call or loop iteration.
_OVERSHOOT = 0.05


def set_deadline(deadline: float | None, control: RunControl | None = None,
                 inline: bool = False) -> None:
    """Set the wall-clock deadline (``time.monotonic()``) and the control of the execution
    on this thread; ``inline``: it runs on an event loop, and must not sleep."""
    _current.deadline = deadline
    _current.control = control
    _current.cut_short = False
    _current.inline = inline
    _current.moved = False


def must_move() -> bool:
    """Whether the inline execution on this thread stopped because it would block."""
    return bool(getattr(_current, "moved", False))


def sleep_cut_short() -> bool:
    """Whether a sleep of the execution on this thread was ended by its deadline."""
    return bool(getattr(_current, "cut_short", False))


def _now_ns(clock_id: int) -> int:
    return time.time_ns() if clock_id == 0 else time.monotonic_ns()


def _poll_oneoff(caller: wasmtime.Caller, in_ptr: int, out_ptr: int, count: int,
                 nevents_ptr: int) -> int:
    try:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            return _ERRNO_FAULT
        if count <= 0:
            return _ERRNO_INVAL
        size = memory.data_len(caller)
        if (in_ptr < 0 or in_ptr + count * _SUBSCRIPTION > size or out_ptr < 0
                or out_ptr + count * _EVENT > size or nevents_ptr < 0 or nevents_ptr + 4 > size):
            return _ERRNO_FAULT
        raw = bytes(memory.read(caller, in_ptr, in_ptr + count * _SUBSCRIPTION))
        events: list[bytes] = []
        soonest: tuple[int, int] | None = None  # (nanoseconds from now, userdata)
        for i in range(count):
            sub = raw[i * _SUBSCRIPTION:(i + 1) * _SUBSCRIPTION]
            userdata, tag = struct.unpack_from("<QB", sub, 0)
            if tag == _EVENTTYPE_CLOCK:
                clock_id, timeout, _precision, flags = struct.unpack_from("<I4xQQH", sub, 16)
                if flags & _SUBCLOCKFLAG_ABSTIME:
                    timeout = max(0, timeout - _now_ns(clock_id))
                if soonest is None or timeout < soonest[0]:
                    soonest = (timeout, userdata)
            elif tag in (1, 2):
                # stdin is in memory and files never block: every fd is ready at once.
                events.append(struct.pack("<QHBxxxxxQHxxxxxx", userdata, 0, tag, 0, 0))
            else:
                events.append(struct.pack("<QHBxxxxxQHxxxxxx", userdata, _ERRNO_INVAL, tag,
                                          0, 0))
        if not events and soonest is not None:
            wait = soonest[0] / 1e9
            if wait > 0 and getattr(_current, "inline", False):
                _current.moved = True  # trapped below; the sandbox runs it in a worker
                return _ERRNO_SUCCESS
            deadline = getattr(_current, "deadline", None)
            if deadline is not None:
                allowed = max(0.0, deadline - time.monotonic()) + _OVERSHOOT
                if wait > allowed:
                    wait = allowed
                    _current.cut_short = True
            _sleep(wait)
            events.append(struct.pack("<QHBxxxxxQHxxxxxx", soonest[1], 0, _EVENTTYPE_CLOCK,
                                      0, 0))
        memory.write(caller, b"".join(events), out_ptr)
        memory.write(caller, struct.pack("<I", len(events)), nevents_ptr)
        return _ERRNO_SUCCESS
    except BaseException:  # noqa: BLE001 - an exception would unwind through wasmtime
        return _ERRNO_FAULT


#: Longest single sleep: a sleeping module sees its cancellation this often.
_SLEEP_SLICE = 0.05


def _sleep(seconds: float) -> None:
    """Sleep ``seconds``, in slices, waking early when the run must stop."""
    end = time.monotonic() + seconds
    control = getattr(_current, "control", None)
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        if control is not None and control.stop_message() is not None:
            return
        time.sleep(min(left, _SLEEP_SLICE))


def _stop_after_poll() -> str | None:
    """The trap message ending the module after its ``poll_oneoff``, or ``None``."""
    if getattr(_current, "moved", False):
        return MOVE_MESSAGE
    if getattr(_current, "cut_short", False):
        return TIMED_OUT_MESSAGE
    control = getattr(_current, "control", None)
    return control.stop_message() if control is not None else None


@ffi.wasmtime_func_callback_t
def _poll_trampoline(env: Any, caller_ptr: Any, params: Any, nparams: int, results: Any,
                     nresults: int) -> int:
    caller = wasmtime.Caller(caller_ptr)
    try:
        errno_value = _poll_oneoff(caller, params[0].of.i32, params[1].of.i32,
                                   params[2].of.i32, params[3].of.i32)
        stop = _stop_after_poll()
        if stop is not None:
            raw = stop.encode()
            trap = ffi.wasmtime_trap_new(ctypes.create_string_buffer(raw), len(raw))
            return ctypes.cast(trap, ctypes.c_void_p).value or 0
        results[0].kind = ffi.WASMTIME_I32.value
        results[0].of.i32 = errno_value
        return 0
    except BaseException:  # noqa: BLE001 - nothing may unwind into wasmtime
        raw = b"neuroflow: poll_oneoff failed"
        trap = ffi.wasmtime_trap_new(ctypes.create_string_buffer(raw), len(raw))
        return ctypes.cast(trap, ctypes.c_void_p).value or 0
    finally:
        caller._invalidate()


@_FINALIZER
def _no_finalizer(env: int | None) -> None:
    return None


def define_poll_oneoff(linker: wasmtime.Linker) -> None:
    """Shadow WASI's ``poll_oneoff`` in ``linker`` (which must allow shadowing)."""
    i32 = wasmtime.ValType.i32()
    functype = wasmtime.FuncType([i32, i32, i32, i32], [i32])
    module, name = b"wasi_snapshot_preview1", b"poll_oneoff"
    error = ffi.wasmtime_linker_define_func(
        linker.ptr(), ctypes.create_string_buffer(module), len(module),
        ctypes.create_string_buffer(name), len(name), functype.ptr(), _poll_trampoline,
        None, _no_finalizer)
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
