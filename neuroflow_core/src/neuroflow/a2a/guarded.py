"""Guard any A2A transport: every delegation is a ``delegate`` action judged by the gate.

``create_backend("transport")`` wraps a transport whose factory does not enforce the gate
itself in :class:`GuardedTransport`, so no binding can slip a call past the guards.  The
action's target is the callee's agent id (the endpoint when the id is unknown), which the
``tools`` guard's ``delegate`` rules match; the audit log records the decision and how the
call ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import anyio


class GuardedTransport:
    """Wraps an :class:`~neuroflow.a2a.AgentTransport` with an ``ActionGate``.

    Args:
        transport: the transport that makes the calls.
        gate: asked before every :meth:`send` (``SecurityError`` if denied: nothing is
            sent) and told how it ended (``success``, ``rejected``, ``error``, ``timeout``).
        actor: who delegates, for the audit records.
        component: names the transport in audit records (``"a2a.<name>"``).
    """

    def __init__(self, transport: Any, gate: Any, *, actor: str = "user",
                 component: str = "a2a") -> None:
        self.transport = transport
        self._gate = gate
        self._actor = actor
        self._component = component

    async def send(self, endpoint: str, text: str, *,
                   metadata: Mapping[str, Any] | None = None,
                   timeout: float | None = None, agent_id: str = "") -> Any:
        """Authorize the delegation, make it, record the outcome."""
        from neuroflow.a2a.context import METADATA_KEY
        from neuroflow.a2a.model import AgentTimeoutError
        from neuroflow.observability.context import current_trace_id
        from neuroflow.security.model import Action, ActionContext

        chain = ((metadata or {}).get(METADATA_KEY) or {}).get("chain") or []
        actor = chain[-1] if chain else self._actor
        action = Action(kind="delegate", target=agent_id or endpoint, actor=actor,
                        arguments={"endpoint": endpoint, "message": text},
                        resources={"hosts": (endpoint,)})
        context = ActionContext(component=self._component, trace_id=current_trace_id(),
                                extra={"chain": list(chain)})
        await self._gate.authorize(action, context)
        try:
            reply = await self.transport.send(endpoint, text, metadata=metadata,
                                              timeout=timeout, agent_id=agent_id)
        except BaseException as exc:
            outcome = "timeout" if isinstance(exc, (AgentTimeoutError, TimeoutError)) else "error"
            with anyio.CancelScope(shield=True):
                await self._gate.record_outcome(action, context, outcome,
                                                {"error": f"{type(exc).__name__}: {exc}"})
            raise
        state = getattr(reply, "state", "completed")
        await self._gate.record_outcome(
            action, context, "success" if state == "completed" else state,
            {"state": state, "task_id": getattr(reply, "task_id", "")})
        return reply

    async def fetch_card(self, url: str, *, etag: str | None = None,
                         timeout: float | None = None) -> Any:
        """Forward to the wrapped transport (reading a public card runs no action)."""
        return await self.transport.fetch_card(url, etag=etag, timeout=timeout)

    async def serve(self, agent: Any, *, host: str = "127.0.0.1", port: int = 0,
                    **options: Any) -> Any:
        """Forward to the wrapped transport."""
        return await self.transport.serve(agent, host=host, port=port, **options)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.transport, name)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
