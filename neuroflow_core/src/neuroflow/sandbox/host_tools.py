"""Host tools: functions of the host that code running in a sandbox may call.

Code mode (:mod:`neuroflow.agent.codemode`) hands a sandbox a :class:`HostTools`: what the
guest may call, one async ``call(name, arguments)`` that runs a call on the host (through the
guards, the audit log and a span), and the bounds.  A backend that can run code with host
tools accepts ``run_code(..., host_tools=...)``, shows each tool to the guest as a Python
function (``from host import tools; tools.NAME(...)``) and lists every call the guest made
in ``SandboxResult.host_calls``, so the host can reconcile that list with its own.

The guest only ever sees the message of a failed or refused call, never a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

#: What a guest may learn of a call that did not succeed (the ``kind`` of a
#: :class:`HostToolError` and the ``outcome`` of a :class:`HostCallRecord`).
FAILURE_KINDS = frozenset({
    "unknown_tool",  # no tool of that name is offered
    "invalid_arguments",  # the arguments do not match the tool's schema
    "denied",  # a guard refused the call
    "tool_error",  # the tool raised
    "timeout",  # the tool ran past its time
    "too_large",  # the request or the answer went over its byte bound
    "budget_exceeded",  # the run used up its tool calls or its time
    "cancelled",  # the run ended while the call was in flight
    "protocol",  # the guest sent something that is not a call
})


class HostToolError(Exception):
    """A host tool call that did not succeed; only ``message`` reaches the guest.

    Attributes:
        kind: one of :data:`FAILURE_KINDS`.
        message: what the guest is told.
    """

    def __init__(self, kind: str, message: str) -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"kind: expected one of {sorted(FAILURE_KINDS)}, got {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message


@attrs.frozen
class HostTool:
    """One host function offered to the guest.

    Attributes:
        name: the name the guest calls it by (a Python identifier).
        description: its documentation, shown to the guest as the function's docstring.
        input_schema: the JSON schema of its keyword arguments.
        timeout_seconds: how long one call may run on the host.
    """

    name: str
    description: str
    input_schema: Mapping[str, Any]
    timeout_seconds: float


@attrs.frozen
class HostTools:
    """What a sandbox needs to let its guest call host tools.

    Attributes:
        tools: the tools offered.
        call: ``await call(name, arguments)`` runs one call on the host and returns its
            JSON-ready result, or raises :class:`HostToolError`.  It is called on the event
            loop that called ``run_code``.
        max_calls: calls allowed in one run.
        max_request_bytes: the largest request (a call's JSON-encoded arguments) accepted.
        max_response_bytes: the largest answer (a result's JSON encoding) handed back.
    """

    tools: tuple[HostTool, ...]
    call: Callable[[str, dict[str, Any]], Awaitable[Any]] = attrs.field(repr=False)
    max_calls: int = 50
    max_request_bytes: int = 64 * 1024
    max_response_bytes: int = 256 * 1024


@attrs.frozen
class HostCallRecord:
    """One call the guest made, as the sandbox's runtime saw it.

    Attributes:
        seq: its number in the run, from 1.
        tool: the tool's name as the guest gave it.
        outcome: ``"ok"`` or one of :data:`FAILURE_KINDS`.
        message: what the guest was told when it failed.
        abandoned: the guest was answered while the call still ran on the host.
    """

    seq: int
    tool: str
    outcome: str
    message: str | None = None
    abandoned: bool = False
