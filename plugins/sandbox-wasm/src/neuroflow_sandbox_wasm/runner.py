"""One execution of a compiled module, synchronously (callers run it in a worker thread).

A fresh ``Store`` per execution, with its limits (memory, tables, instances, fuel, epoch
deadline), a WASI context that sees only the given arguments, environment, stdin and
preopened directories, and stdout/stderr captured in memory.  How it ended is read from
what wasmtime raised.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Mapping, Sequence

import attrs
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime._extern import wrap_extern
from wasmtime._func import enter_wasm

from neuroflow_sandbox_wasm.config import Preopen, WasmSandboxConfig
from neuroflow_sandbox_wasm.engine import CompiledModule, Runtime
from neuroflow_sandbox_wasm.memory import MEMORY_MESSAGE, MemoryBudget, set_budget
from neuroflow_sandbox_wasm.result import TRAP_EXIT_CODE, WasmEndReason, WasmResult
from neuroflow_sandbox_wasm.wasi_io import (
    CANCELLED_MESSAGE,
    OUTPUT_MESSAGE,
    TIMED_OUT_MESSAGE,
    OutputSink,
    RunControl,
    must_move,
    set_deadline,
    set_stdin_bytes,
    sleep_cut_short,
)

WASM_PAGE = 65536


@attrs.frozen(kw_only=True)
class RunPlan:
    """Everything one execution needs, checked and resolved by the sandbox."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    stdin: bytes | None
    entry: str
    timeout: float | None
    fuel: int | None
    preopens: tuple[Preopen, ...]
    files_dir: str | None = None
    files_guest_path: str = "/work"


#: ``argv`` tuples -> their C array (``wasi_config_set_argv`` copies the strings, so one
#: array serves every execution with the same arguments); at most :data:`_ARGV_KEEP`.
_ARGV_ARRAYS: dict[tuple[str, ...], tuple[int, object, object]] = {}
_ARGV_KEEP = 64
_CHAR_PP = ctypes.POINTER(ctypes.POINTER(ctypes.c_char))


def _set_argv(wasi: wasmtime.WasiConfig, argv: tuple[str, ...]) -> None:
    """``wasi.argv = argv``, the C array built once per distinct ``argv``."""
    found = _ARGV_ARRAYS.get(argv)
    if found is None:
        # The array holds the encoded strings; the cast pointer holds the array.
        array = (ctypes.c_char_p * len(argv))(*(arg.encode() for arg in argv))
        found = (len(argv), ctypes.cast(array, _CHAR_PP), array)
        if len(_ARGV_ARRAYS) >= _ARGV_KEEP:
            _ARGV_ARRAYS.clear()
        _ARGV_ARRAYS[argv] = found
    if not ffi.wasi_config_set_argv(wasi.ptr(), found[0], found[1]):
        raise wasmtime.WasmtimeError("failed to configure argv")


def _export(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> object:
    """The export ``name`` of ``instance`` (one lookup, not a map of every export), or
    ``None``."""
    raw = name.encode()
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_instance_export_get(
            store._context(), ctypes.byref(instance._instance),
            ctypes.cast(ctypes.c_char_p(raw), ctypes.POINTER(ctypes.c_char)), len(raw),
            ctypes.byref(item)):
        return None
    if item.kind == _EXTERN_FUNC:
        return wasmtime.Func._from_raw(item.of.func)
    return wrap_extern(item)


_EXTERN_FUNC = ffi.WASMTIME_EXTERN_FUNC.value
_NO_VALUES = (ffi.wasmtime_val_t * 0)()  # never written: nothing goes in or comes out


def _call_entry(store: wasmtime.Store, func: wasmtime.Func, compiled: CompiledModule,
                name: str) -> None:
    """Call the entry ``func`` (export ``name``) with no arguments, discarding results.

    An entry that takes and returns nothing (a WASI command's ``_start``: its type is
    looked up once per module) is called directly; any other goes through wasmtime-py's
    checks, which refuse one that needs arguments.  Traps raise as from ``func(store)``.
    """
    shape = compiled.entry_shapes.get(name)
    if shape is None:
        ty = func.type(store)
        shape = compiled.entry_shapes[name] = (len(ty.params), len(ty.results))
    if shape != (0, 0):
        func(store)
        return
    with enter_wasm(store) as trap:
        error = ffi.wasmtime_func_call(store._context(), ctypes.byref(func._func), _NO_VALUES,
                                       0, _NO_VALUES, 0, trap)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)


def _trap_reason(exc: BaseException) -> WasmEndReason:
    code = getattr(exc, "trap_code", None) if isinstance(exc, wasmtime.Trap) else None
    if code is wasmtime.TrapCode.OUT_OF_FUEL:
        return WasmEndReason.OUT_OF_FUEL
    if code is wasmtime.TrapCode.INTERRUPT:
        return WasmEndReason.TIMED_OUT
    text = str(exc).lower()
    if TIMED_OUT_MESSAGE.lower() in text:
        return WasmEndReason.TIMED_OUT
    if OUTPUT_MESSAGE.lower() in text:
        return WasmEndReason.OUTPUT_LIMIT
    if MEMORY_MESSAGE.lower() in text:
        return WasmEndReason.MEMORY_LIMIT
    if CANCELLED_MESSAGE.lower() in text:
        return WasmEndReason.ERROR
    if "all fuel consumed" in text or "out of fuel" in text:
        return WasmEndReason.OUT_OF_FUEL
    if "epoch deadline" in text or "interrupt" in text:
        return WasmEndReason.TIMED_OUT
    return WasmEndReason.TRAPPED


def _message(exc: BaseException) -> str:
    """The cause of a trap or error, without the backtrace (``wasm trap: ...``)."""
    text = str(exc).strip()
    if "Caused by:" in text:
        causes = [line.strip() for line in text.split("Caused by:", 1)[1].splitlines()]
        text = "; ".join(line for line in causes if line)
    elif text:
        text = text.splitlines()[0]
    return text or type(exc).__name__


def run_module(runtime: Runtime, compiled: CompiledModule, config: WasmSandboxConfig,
               plan: RunPlan, cache: str, control: RunControl | None = None, *,
               inline: bool = False) -> WasmResult | None:
    """Instantiate ``compiled`` in a fresh store, call the entry, return how it ended.

    ``control`` (made here when not given) lets another thread cancel the execution.
    ``inline``: it runs on an event loop's thread; if the module would sleep, it is
    stopped and ``None`` is returned (it had no effect but its discarded output: the
    caller runs it again in a worker thread).
    """
    if control is None:
        control = RunControl(runtime.ticker.tick_seconds)
    budget = MemoryBudget(config.max_memory_bytes)
    control.budget = budget
    stdout = OutputSink(config.max_output_bytes, control)
    stderr = OutputSink(config.max_output_bytes, control)
    store = wasmtime.Store(runtime.engine)
    instance: wasmtime.Instance | None = None
    exit_code = 0
    reason = WasmEndReason.EXITED
    trap: str | None = None
    fuel_left: int | None = None
    started_wall = time.perf_counter()
    started_cpu = time.thread_time()
    ticker = runtime.ticker
    ticker.enter()
    try:
        wasi = wasmtime.WasiConfig()
        _set_argv(wasi, plan.argv)
        if plan.env:
            wasi.env = list(plan.env.items())
        if plan.stdin:
            set_stdin_bytes(wasi, plan.stdin)
        stdout.attach(wasi, "stdout")
        stderr.attach(wasi, "stderr")
        for grant in plan.preopens:
            wasi.preopen_dir(grant.host_path, grant.guest_path, not grant.read_only)
        if plan.files_dir is not None:
            wasi.preopen_dir(plan.files_dir, plan.files_guest_path, True)
        store.set_wasi(wasi)
        # Linear memory is judged by the budget (see memory.py), which sees a refused grow.
        store.set_limits(
            table_elements=-1 if config.max_table_elements is None
            else config.max_table_elements,
            instances=-1 if config.max_instances is None else config.max_instances,
            tables=-1 if config.max_tables is None else config.max_tables,
            memories=-1 if config.max_memories is None else config.max_memories,
        )
        if runtime.consume_fuel:
            store.set_fuel(plan.fuel if plan.fuel is not None else 2**63 - 1)
        deadline = None if plan.timeout is None else time.monotonic() + plan.timeout
        control.deadline = deadline
        control.attach(store)
        set_deadline(deadline, control, inline)
        set_budget(budget)
        try:
            instance = compiled.pre.instantiate(store)
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            text = str(exc).lower()
            reason = (WasmEndReason.MEMORY_LIMIT if "memory" in text and (
                "limit" in text or "exceed" in text) else _trap_reason(exc))
            if reason is WasmEndReason.TRAPPED and not isinstance(exc, wasmtime.Trap):
                reason = WasmEndReason.ERROR
            trap = f"instantiation failed: {_message(exc)}"
        if instance is not None:
            entry = _export(store, instance, plan.entry)
            if not isinstance(entry, wasmtime.Func):
                reason = WasmEndReason.ERROR
                trap = f"the module exports no function {plan.entry!r}"
            else:
                try:
                    _call_entry(store, entry, compiled, plan.entry)
                except wasmtime.ExitTrap as exc:
                    exit_code = exc.code
                except wasmtime.Trap as exc:
                    reason = _trap_reason(exc)
                    trap = _message(exc)
                except wasmtime.WasmtimeError as exc:
                    reason = _trap_reason(exc)
                    if reason is WasmEndReason.TRAPPED:
                        reason = WasmEndReason.ERROR
                    trap = _message(exc)
        if runtime.consume_fuel:
            try:
                fuel_left = store.get_fuel()
            except wasmtime.WasmtimeError:
                fuel_left = 0
        if inline and must_move():
            store.close()
            return None
        if sleep_cut_short():
            # The deadline passed while it slept: whatever it did next, time was up.
            reason = WasmEndReason.TIMED_OUT
            trap = trap or "the wall-clock timeout passed while it slept (poll_oneoff)"
    finally:
        ticker.exit()
        set_deadline(None)
        set_budget(None)
        wall_ms = (time.perf_counter() - started_wall) * 1000.0
        cpu_ms = (time.thread_time() - started_cpu) * 1000.0
    peak = budget.peak
    store.close()  # frees the WASI context (and the output sinks' keys) now
    return _result(config, plan, compiled, cache, stdout, stderr, exit_code, reason, trap,
                   fuel_left, peak, wall_ms, cpu_ms, budget.refused is not None)


def _result(config: WasmSandboxConfig, plan: RunPlan, compiled: CompiledModule, cache: str,
            stdout: OutputSink, stderr: OutputSink, exit_code: int, reason: WasmEndReason,
            trap: str | None, fuel_left: int | None, peak: int, wall_ms: float,
            cpu_ms: float, memory_refused: bool) -> WasmResult:
    limits: list[str] = []
    files, files_truncated = (None, False)
    if plan.files_dir is not None:
        files, files_truncated = collect_files(plan.files_dir, config.max_output_bytes)
    # A memory.grow past the limit was refused: that ended the run, whatever stopped the
    # module afterwards (its next epoch check, an exit, a trap, or fuel or time running
    # out first).
    if reason is WasmEndReason.MEMORY_LIMIT or memory_refused:
        limits.append("memory")
        if reason is not WasmEndReason.ERROR:
            reason = WasmEndReason.MEMORY_LIMIT
    if stdout.truncated or stderr.truncated or files_truncated:
        limits.append("output")
    if reason is WasmEndReason.OUT_OF_FUEL:
        limits.append("fuel")
    if reason is WasmEndReason.TIMED_OUT:
        limits.append("timeout")
    if "output" in limits and reason in (WasmEndReason.EXITED, WasmEndReason.TRAPPED):
        reason = WasmEndReason.OUTPUT_LIMIT
    if reason is not WasmEndReason.EXITED:
        exit_code = TRAP_EXIT_CODE
    fuel_consumed = None
    if fuel_left is not None:
        budget = plan.fuel if plan.fuel is not None else 2**63 - 1
        fuel_consumed = budget - fuel_left
    return WasmResult(
        exit_code=exit_code,
        stdout=bytes(stdout.buf),
        stderr=bytes(stderr.buf),
        wall_time_ms=wall_ms,
        cpu_time_ms=cpu_ms,
        peak_memory_bytes=peak,
        reason=reason.termination,
        stdout_truncated=stdout.truncated,
        stderr_truncated=stderr.truncated,
        limits_hit=tuple(dict.fromkeys(limits)),
        wasm_reason=reason,
        fuel_consumed=fuel_consumed,
        trap=trap,
        module_sha256=compiled.sha256,
        files=files,
        cache=cache,
    )


MAX_FILES = 1000


def collect_files(folder: str, cap: int | None) -> tuple[dict[str, bytes], bool]:
    """The regular files under ``folder`` (relative path -> at most ``cap`` bytes each).

    Symbolic links the module made are never followed (they could point anywhere on
    the host); at most :data:`MAX_FILES` files are returned.  The second value says
    whether anything was cut.
    """
    out: dict[str, bytes] = {}
    truncated = False
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            if len(out) >= MAX_FILES:
                return out, True
            try:
                fd = os.open(path, os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0))
            except OSError:
                continue  # a symbolic link, a FIFO without writer, ...
            try:
                if not _is_regular(fd):
                    continue
                with os.fdopen(fd, "rb", closefd=False) as fh:
                    data = fh.read() if cap is None else fh.read(cap + 1)
            finally:
                os.close(fd)
            if cap is not None and len(data) > cap:
                data, truncated = data[:cap], True
            out[os.path.relpath(path, folder)] = data
    return out, truncated


def _is_regular(fd: int) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(fd).st_mode)


def argv_for(module_name: str, config_args: Sequence[str], args: Sequence[str]) -> tuple[str, ...]:
    """``argv``: the module's name, the config's arguments, then this run's."""
    return (module_name, *config_args, *args)
