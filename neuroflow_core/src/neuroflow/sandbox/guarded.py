"""Guard any isolation backend: judge each command before it runs, audit how it ended.

The built-in ``process`` backend takes a ``gate`` itself.  A backend whose factory does
not accept ``gate=`` is wrapped in :class:`GuardedBackend` by :func:`open_sandbox`, so a
third-party backend cannot be used to slip past the guards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import anyio

from neuroflow.sandbox.result import SandboxResult, TerminationReason


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
        from neuroflow.observability.context import current_trace_id
        from neuroflow.security.model import Action, ActionContext

        action = Action(kind="command", target=command, actor=self._actor,
                        arguments=list(args))
        context = ActionContext(component=self._component, trace_id=current_trace_id())
        await self._gate.authorize(action, context)
        try:
            result = await self.backend.execute(command, args, stdin=stdin, env=env,
                                                timeout=timeout)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._gate.record_outcome(action, context, "error",
                                                {"error": f"{type(exc).__name__}: {exc}"})
            raise
        exited = result.reason is TerminationReason.EXITED
        outcome = ("success" if result.ok else "error") if exited else result.reason.value
        await self._gate.record_outcome(action, context, outcome, {
            "exit_code": result.exit_code, "reason": result.reason.value})
        return result

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self.backend.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
