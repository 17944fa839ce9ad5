"""Guard any isolation backend: judge each command before it runs, audit how it ended.

The built-in ``process`` backend takes a ``gate`` itself.  A backend whose factory does
not accept ``gate=`` is wrapped in :class:`GuardedBackend` by :func:`open_sandbox`, so a
third-party backend cannot be used to slip past the guards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import anyio

from neuroflow.sandbox.result import SandboxResult, TerminationReason


def traceparent_env() -> dict[str, str]:
    """``TRACEPARENT`` (and ``TRACESTATE``) of the current span, for a sandboxed program's
    environment; empty outside a span with ids."""
    from neuroflow.observability.propagation import traceparent_env as current

    return current()


def command_action(
    command: str, args: Sequence[str], actor: str, component: str, *,
    env: Mapping[str, str] | None = None, cwd: str | None = None,
    executable: str | None = None, search_path: str | None = None,
) -> tuple[Any, Any]:
    """The :class:`Action` and :class:`ActionContext` describing one sandbox command.

    The names of the variables in ``env`` (the call's extra environment) are the
    action's ``resources["env"]``, so guards can judge them and the decision record
    shows them.  ``cwd`` (the sandbox's working directory), ``executable`` (the program
    it resolved and will run) and ``search_path`` go to ``context.extra``, so guards
    judge the very file the sandbox runs, not what the command means in the host's
    directory.
    """
    from neuroflow.observability.context import current_trace_id
    from neuroflow.security.model import Action, ActionContext

    resources = {"env": tuple(sorted(env))} if env else {}
    extra = {name: value for name, value in (("cwd", cwd), ("executable", executable),
                                             ("search_path", search_path)) if value}
    action = Action(kind="command", target=command, actor=actor, arguments=list(args),
                    resources=resources)
    return action, ActionContext(component=component, trace_id=current_trace_id(),
                                 extra=extra)


def redacted_env(gate: Any, env: Mapping[str, str] | None) -> dict[str, str]:
    """``env`` with every value replaced by the audit log's keyed digest (equal values,
    equal digests), or by ``"<redacted>"`` when the gate has no audit log."""
    if not env:
        return {}
    from neuroflow.security.manager import DefaultGate, get_default_gate

    if isinstance(gate, DefaultGate):
        gate = get_default_gate()
    redactor = getattr(getattr(gate, "audit", None), "redactor", None)
    if redactor is not None and hasattr(redactor, "digest"):
        return {name: redactor.digest(value) for name, value in env.items()}
    return dict.fromkeys(env, "<redacted>")


async def run_guarded(
    gate: Any, action: Any, context: Any, run: Callable[[], Awaitable[SandboxResult]],
    env: Mapping[str, str] | None = None,
) -> SandboxResult:
    """Authorize ``action`` with ``gate``, call ``run()``, record how it ended.

    ``env``: the call's extra environment; its names with redacted values are in the
    outcome record's details (``"env"``).

    The whole of it is one OpenTelemetry span, ``execute_sandbox {command}`` (kind
    internal; the backend, command, guard decision, exit code, termination reason and
    wall time as attributes), current while ``run()`` runs: a backend puts its
    ``TRACEPARENT`` into the program's environment (:func:`traceparent_env`).  It also
    counts in the built-in ``sandbox`` metrics.

    Raises ``SecurityError`` (nothing runs) when the gate denies the command.  An
    exception or cancellation from ``run`` is recorded as an ``error`` outcome (shielded,
    so the record is written even when cancelled) and re-raised.
    """
    from neuroflow.observability.operations import operation

    command = action.target
    backend = str(getattr(context, "component", "") or "").removeprefix("sandbox.")
    with operation(f"execute_sandbox {command}", "sandbox", "execute", {
        "neuroflow.sandbox.backend": backend, "neuroflow.sandbox.command": command,
    }) as op:
        try:
            verdict = await gate.authorize(action, context)
        except BaseException as exc:
            if op.recording and getattr(exc, "verdict", None) is not None:
                op.record_verdict("deny", exc.verdict)
            raise
        if op.recording:
            op.record_verdict("allow", verdict)
        extra = {"env": redacted_env(gate, env)} if env else {}
        try:
            result = await run()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await gate.record_outcome(action, context, "error",
                                          {"error": f"{type(exc).__name__}: {exc}", **extra})
            raise
        exited = result.reason is TerminationReason.EXITED
        outcome = _outcome(result)
        if op.recording:
            op.set("process.exit.code", result.exit_code)
            op.set("neuroflow.sandbox.reason", result.reason.value)
            op.set("neuroflow.sandbox.wall_time_ms", round(result.wall_time_ms, 3))
        if not result.ok:
            op.fail(result.reason.value if not exited else "exit_code",
                    f"{result.reason.value}, exit code {result.exit_code}")
        await gate.record_outcome(action, context, outcome, {
            "exit_code": result.exit_code, "reason": result.reason.value,
            "wall_time_ms": round(result.wall_time_ms, 3), **extra})
    return result


def _outcome(result: SandboxResult) -> str:
    exited = result.reason is TerminationReason.EXITED
    return ("success" if result.ok else "error") if exited else result.reason.value


async def spawn_guarded(
    gate: Any, action: Any, context: Any, start: Callable[[], Awaitable[Any]],
    env: Mapping[str, str] | None = None,
) -> GuardedProcess:
    """Authorize ``action`` with ``gate``, start the process with ``start()``, and return
    it wrapped so that the gate is told how it ended (once, when it is first waited for
    or closed).

    Authorizing and starting are one span, ``spawn_sandbox {command}`` (the guard
    decision and the pid as attributes).  Raises ``SecurityError`` (nothing starts) when
    the gate denies the command; a failure to start is recorded as an ``error`` outcome
    and re-raised.
    """
    from neuroflow.observability.operations import operation

    command = action.target
    backend = str(getattr(context, "component", "") or "").removeprefix("sandbox.")
    with operation(f"spawn_sandbox {command}", "sandbox", "spawn", {
        "neuroflow.sandbox.backend": backend, "neuroflow.sandbox.command": command,
    }) as op:
        try:
            verdict = await gate.authorize(action, context)
        except BaseException as exc:
            if op.recording and getattr(exc, "verdict", None) is not None:
                op.record_verdict("deny", exc.verdict)
            raise
        if op.recording:
            op.record_verdict("allow", verdict)
        extra = {"env": redacted_env(gate, env)} if env else {}
        try:
            process = await start()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await gate.record_outcome(action, context, "error",
                                          {"error": f"{type(exc).__name__}: {exc}", **extra})
            raise
        if op.recording:
            op.set("process.pid", process.pid)
    return GuardedProcess(process, gate, action, context, extra)


class GuardedProcess:
    """A spawned process whose end is recorded by the gate that allowed it.

    Delegates to the wrapped ``SandboxProcess``; the first ``wait()`` (or ``aclose()``)
    records the outcome (``success``, ``error``, ``timed_out``, ``memory_limit``...) with
    the exit code, reason and wall time.
    """

    def __init__(self, process: Any, gate: Any, action: Any, context: Any,
                 extra: Mapping[str, Any]) -> None:
        self.process = process
        self.pid: int = process.pid
        self.stdin = process.stdin
        self.stdout = process.stdout
        self.stderr = process.stderr
        self._gate = gate
        self._action = action
        self._context = context
        self._extra = dict(extra)
        self._recorded = False

    @property
    def returncode(self) -> int | None:
        """The wrapped process's exit status once reaped."""
        return self.process.returncode

    async def wait(self) -> SandboxResult:
        """Wait for the process (see ``SandboxProcess.wait``); record how it ended."""
        result = await self.process.wait()
        if not self._recorded:
            self._recorded = True
            with anyio.CancelScope(shield=True):
                await self._gate.record_outcome(self._action, self._context,
                                                _outcome(result), {
                    "exit_code": result.exit_code, "reason": result.reason.value,
                    "wall_time_ms": round(result.wall_time_ms, 3), **self._extra})
        return result

    def terminate(self) -> None:
        """``SIGTERM`` the process (see ``SandboxProcess.terminate``)."""
        self.process.terminate()

    def kill(self) -> None:
        """``SIGKILL`` the whole tree (see ``SandboxProcess.kill``)."""
        self.process.kill()

    async def aclose(self) -> None:
        """Close the wrapped process, then record its outcome if nobody waited."""
        with anyio.CancelScope(shield=True):
            await self.process.aclose()
            await self.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


class GuardedBackend:
    """Wraps an :class:`~neuroflow.sandbox.IsolationBackend` with an ``ActionGate``.

    Args:
        backend: the backend to run commands in.
        gate: asked before every command (``SecurityError`` if denied) and told the outcome.
        actor: who runs the commands, for the audit records.
        component: names the backend in audit records (``"sandbox.<name>"``).
    """

    def __init__(self, backend: Any, gate: Any, *, actor: str = "user",
                 component: str = "sandbox") -> None:
        self.backend = backend
        self._gate = gate
        self._actor = actor
        self._component = component

    async def execute(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> SandboxResult:
        """Authorize, run in the wrapped backend (with the run's ``TRACEPARENT`` added to
        ``env``), and record the outcome."""
        action, context = command_action(command, args, self._actor, self._component, env=env)

        def run() -> Awaitable[SandboxResult]:
            # Inside run_guarded's span: the program sees that span's TRACEPARENT, unless
            # the caller set one.
            traced = traceparent_env()
            run_env = {**traced, **env} if traced and env else (traced or env)
            return self.backend.execute(command, args, stdin=stdin, env=run_env,
                                        timeout=timeout)

        return await run_guarded(self._gate, action, context, run, env)

    async def spawn(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> GuardedProcess:
        """Authorize, start in the wrapped backend (see ``SpawningBackend.spawn``), and
        record how the process ended once it is waited for.

        Raises:
            UnsupportedOperationError: the wrapped backend has no ``spawn`` (before the
                gate is asked: nothing could run).
        """
        inner = getattr(self.backend, "spawn", None)
        if inner is None:
            from neuroflow.errors import UnsupportedOperationError
            from neuroflow.sandbox.spawned import unsupported_spawn

            raise UnsupportedOperationError(unsupported_spawn(self.backend))
        action, context = command_action(command, args, self._actor, self._component, env=env)

        def start() -> Awaitable[Any]:
            traced = traceparent_env()
            run_env = {**traced, **env} if traced and env else (traced or env)
            return inner(command, args, env=run_env, timeout=timeout)

        return await spawn_guarded(self._gate, action, context, start, env)

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self.backend.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
