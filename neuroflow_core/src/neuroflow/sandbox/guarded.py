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


def command_action(
    command: str, args: Sequence[str], actor: str, component: str, *,
    cwd: str | None = None, executable: str | None = None, search_path: str | None = None,
) -> tuple[Any, Any]:
    """The :class:`Action` and :class:`ActionContext` describing one sandbox command.

    ``cwd`` (the sandbox's working directory), ``executable`` (the program it resolved
    and will run) and ``search_path`` go to ``context.extra``, so guards judge the very
    file the sandbox runs, not what the command means in the host's directory.
    """
    from neuroflow.observability.context import current_trace_id
    from neuroflow.security.model import Action, ActionContext

    extra = {name: value for name, value in (("cwd", cwd), ("executable", executable),
                                             ("search_path", search_path)) if value}
    action = Action(kind="command", target=command, actor=actor, arguments=list(args))
    return action, ActionContext(component=component, trace_id=current_trace_id(),
                                 extra=extra)


async def run_guarded(
    gate: Any, action: Any, context: Any, run: Callable[[], Awaitable[SandboxResult]]
) -> SandboxResult:
    """Authorize ``action`` with ``gate``, call ``run()``, record how it ended.

    Raises ``SecurityError`` (nothing runs) when the gate denies the command.  An
    exception or cancellation from ``run`` is recorded as an ``error`` outcome (shielded,
    so the record is written even when cancelled) and re-raised.
    """
    await gate.authorize(action, context)
    try:
        result = await run()
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await gate.record_outcome(action, context, "error",
                                      {"error": f"{type(exc).__name__}: {exc}"})
        raise
    exited = result.reason is TerminationReason.EXITED
    outcome = ("success" if result.ok else "error") if exited else result.reason.value
    await gate.record_outcome(action, context, outcome, {
        "exit_code": result.exit_code, "reason": result.reason.value,
        "wall_time_ms": round(result.wall_time_ms, 3)})
    return result


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
        """Authorize, run in the wrapped backend, and record the outcome."""
        action, context = command_action(command, args, self._actor, self._component)
        return await run_guarded(self._gate, action, context, lambda: self.backend.execute(
            command, args, stdin=stdin, env=env, timeout=timeout))

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self.backend.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
