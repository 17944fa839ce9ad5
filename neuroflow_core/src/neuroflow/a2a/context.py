"""The collaboration budget that travels with every delegation.

A :class:`CollaborationContext` holds the chain of agents that have asked so far, how many
more hops are allowed and the deadline.  It crosses processes as plain JSON in the A2A
message's metadata under :data:`METADATA_KEY` (with the W3C ``traceparent``), so depth and
time limits hold across any number of real hops and ``A -> B -> A`` is refused wherever it
would happen.  The deadline is wall-clock time (seconds since the epoch): machines that
collaborate are assumed to keep their clocks in step (NTP), as HTTP caching does.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from typing import Any

import attrs

from neuroflow.a2a.model import CollaborationRefused

#: The metadata key of the budget in every A2A message NeuroFlow sends.
METADATA_KEY = "neuroflow.collaboration"

_CURRENT: contextvars.ContextVar[CollaborationContext | None] = contextvars.ContextVar(
    "neuroflow_a2a_collaboration", default=None)


def _chain(value: Any) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class CollaborationContext:
    """Where a collaboration stands: who asked whom so far, hops left, the deadline.

    Attributes:
        chain: agent ids from the first caller to the agent now working.
        depth_left: how many more delegations may follow from here.
        deadline: when the whole collaboration must be done (seconds since the epoch).
        traceparent: the W3C trace context of the delegating span, if any.
    """

    chain: tuple[str, ...] = attrs.field(default=(), converter=_chain)
    depth_left: int = 5
    deadline: float = attrs.field(factory=lambda: time.time() + 30.0)
    traceparent: str | None = None

    @classmethod
    def root(cls, agent_id: str, max_depth: int, timeout_seconds: float) -> CollaborationContext:
        """The budget of a collaboration that starts at ``agent_id``."""
        return cls(chain=(agent_id,), depth_left=max_depth,
                   deadline=time.time() + timeout_seconds)

    @property
    def depth(self) -> int:
        """How many delegations led here (0 at the first agent)."""
        return max(0, len(self.chain) - 1)

    def remaining(self) -> float:
        """Seconds left before the deadline (0 when it passed)."""
        return max(0.0, self.deadline - time.time())

    def within(self, agent_id: str, max_depth: int, timeout_seconds: float
               ) -> CollaborationContext:
        """This budget as seen by ``agent_id`` working on it under its own limits: the
        tighter of the two depths and deadlines; ``agent_id`` is added to the chain if it
        is not its last link already."""
        chain = self.chain if self.chain and self.chain[-1] == agent_id else (
            *self.chain, agent_id)
        return attrs.evolve(self, chain=chain,
                            depth_left=min(self.depth_left, max_depth),
                            deadline=min(self.deadline, time.time() + timeout_seconds))

    def check_delegation(self, target: str) -> None:
        """Raise :class:`CollaborationRefused` unless the last agent of the chain may ask
        ``target`` now: a hop must be left, ``target`` must not be in the chain already
        (a cycle), and the deadline must not have passed."""
        who = self.chain[-1] if self.chain else "?"
        if target in self.chain:
            raise CollaborationRefused(
                f"{who} -> {target} refused: {target} is already in the chain "
                f"{' -> '.join(self.chain)} (a cycle)", "cycle")
        if self.depth_left <= 0:
            raise CollaborationRefused(
                f"{who} -> {target} refused: the depth limit is reached "
                f"(chain {' -> '.join(self.chain)})", "depth")
        if self.remaining() <= 0:
            raise CollaborationRefused(
                f"{who} -> {target} refused: the collaboration's deadline has passed", "deadline")

    def for_delegation(self, target: str, traceparent: str | None = None) -> dict[str, Any]:
        """The metadata to send with a delegation to ``target`` (one hop used up); checks
        it with :meth:`check_delegation` first."""
        self.check_delegation(target)
        data: dict[str, Any] = {"chain": list(self.chain), "depth_left": self.depth_left - 1,
                                "deadline": self.deadline}
        if traceparent:
            data["traceparent"] = traceparent
        return {METADATA_KEY: data}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> CollaborationContext | None:
        """The budget a request carried, ``None`` if it carried none.

        Raises:
            CollaborationRefused: the budget is malformed (reason ``"invalid"``).
        """
        if not metadata or METADATA_KEY not in metadata:
            return None
        data = metadata[METADATA_KEY]
        try:
            chain = data["chain"]
            depth_left = data["depth_left"]
            deadline = data["deadline"]
            if (not isinstance(chain, list) or not all(isinstance(x, str) for x in chain)
                    or len(chain) > 64):
                raise TypeError("chain: expected a list of at most 64 agent ids")
            if isinstance(depth_left, bool) or not isinstance(depth_left, (int, float)):
                raise TypeError("depth_left: expected an integer")
            if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
                raise TypeError("deadline: expected seconds since the epoch")
            traceparent = data.get("traceparent")
            if traceparent is not None and not isinstance(traceparent, str):
                raise TypeError("traceparent: expected a string")
        except (KeyError, TypeError) as exc:
            raise CollaborationRefused(
                f"malformed {METADATA_KEY} metadata: {exc}", "invalid") from None
        return cls(chain=tuple(chain), depth_left=int(depth_left), deadline=float(deadline),
                   traceparent=traceparent)


def current_collaboration() -> CollaborationContext | None:
    """The budget of the request this task is serving, if it serves one."""
    return _CURRENT.get()


def set_current_collaboration(context: CollaborationContext | None) -> contextvars.Token:
    """Make ``context`` the budget delegations made from this task start from."""
    return _CURRENT.set(context)


def reset_current_collaboration(token: contextvars.Token) -> None:
    """Undo :func:`set_current_collaboration`."""
    _CURRENT.reset(token)
