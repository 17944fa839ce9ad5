"""The security capability's roles: what a guard and an action gate implement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from neuroflow.security.model import Action, ActionContext, Verdict


@runtime_checkable
class Guard(Protocol):
    """A guard judges actions; ``None`` means the guard has no opinion."""

    def check(self, action: Action, context: ActionContext) -> Verdict | None:
        """Return a verdict for ``action``, or ``None`` to abstain."""
        ...


@runtime_checkable
class ActionGate(Protocol):
    """What sandboxes, agents and tool runners call around every guarded action."""

    async def authorize(self, action: Action, context: ActionContext) -> Verdict:
        """Check ``action``; record the decision; raise ``SecurityError`` on deny.

        Must also raise ``SecurityError`` (fail closed) if the decision cannot be recorded.
        """
        ...

    async def record_outcome(
        self, action: Action, context: ActionContext, outcome: str, details: Mapping[str, Any]
    ) -> None:
        """Record how an authorized action ended (``"success"``, ``"error"``, ...)."""
        ...
