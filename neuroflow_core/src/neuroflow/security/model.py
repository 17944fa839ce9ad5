"""What the security layer talks about: actions, verdicts, audit events and the gate.

Every guarded action (running a sandbox command, calling a tool, calling an MCP tool,
delegating to another agent) is described as an :class:`Action` and passed through an
:class:`ActionGate` before it runs.  The gate asks every guard, records the decision in
the audit log (failing closed if it cannot) and raises
:class:`~neuroflow.errors.SecurityError` on a deny.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs


class ActionKind(str, enum.Enum):
    """What sort of thing an action does."""

    COMMAND = "command"  # a program run in a sandbox; target = the command
    TOOL = "tool"  # an agent tool call; target = the tool name
    MCP_TOOL = "mcp_tool"  # an MCP tool call; target = "server/tool"
    DELEGATE = "delegate"  # handing work to another agent; target = the agent id
    FILE_READ = "file_read"  # target = the path
    FILE_WRITE = "file_write"  # target = the path
    NETWORK = "network"  # target = host or host:port

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class Action:
    """One thing an agent is about to do.

    Attributes:
        kind: what sort of action it is.
        target: what it acts on (command, tool name, path, host, agent id).
        actor: who does it (an agent id, or ``"user"``).
        arguments: its arguments (a command's argv tail, a tool's keyword arguments).
        resources: further resources it touches, e.g. ``{"paths": [...], "hosts": [...]}``.
    """

    kind: ActionKind = attrs.field(converter=ActionKind)
    target: str
    actor: str = "user"
    arguments: Any = attrs.field(factory=dict)
    resources: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)


@attrs.frozen
class ActionContext:
    """Where an action happens.

    Attributes:
        session_id: the conversation or run it belongs to.
        trace_id: the trace it is part of, for correlating audit records and spans.
        component: what is asking ("sandbox.process", "agent", "mcp").
        extra: anything else a guard may want to know.
    """

    session_id: str | None = None
    trace_id: str | None = None
    component: str = ""
    extra: Mapping[str, Any] = attrs.field(factory=dict)


class Decision(str, enum.Enum):
    """A guard's answer."""

    ALLOW = "allow"
    DENY = "deny"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class Verdict:
    """A guard's decision about one action, and the rule that made it."""

    decision: Decision = attrs.field(converter=Decision)
    rule: str
    reason: str = ""
    #: The sequence number of the audit record of this decision, once it is written.
    audit_seq: int | None = None

    @classmethod
    def allow(cls, rule: str, reason: str = "") -> Verdict:
        """An allow verdict from ``rule``."""
        return cls(Decision.ALLOW, rule, reason)

    @classmethod
    def deny(cls, rule: str, reason: str = "") -> Verdict:
        """A deny verdict from ``rule``."""
        return cls(Decision.DENY, rule, reason)

    @property
    def allowed(self) -> bool:
        """Whether this verdict lets the action run."""
        return self.decision is Decision.ALLOW


@attrs.frozen
class AuditEvent:
    """One record of the audit log, before it is chained and written.

    Attributes:
        event_type: ``"guard_decision"``, ``"action_outcome"`` or a caller's own type.
        actor: who acted.
        action: what was done (the action kind, or the caller's event type).
        resource: what it was done to.
        decision: ``"allow"``/``"deny"`` for decisions, ``None`` for outcomes.
        rule: the rule that decided, if any.
        outcome: ``"success"``, ``"error"``, ``"denied"``... or ``None`` for a decision.
        details: further data; secrets in it are replaced by keyed digests when written.
        trace_id: the trace this event belongs to.
    """

    event_type: str
    actor: str
    action: str = ""
    resource: str = ""
    decision: str | None = None
    rule: str | None = None
    outcome: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)
    trace_id: str | None = None


