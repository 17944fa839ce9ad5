"""Which transport calls which agent, and one built transport per binding."""

from __future__ import annotations

from typing import Any

from neuroflow.a2a.model import AgentRegistration


def transport_for(endpoint: str, chosen: str | None = None) -> str | None:
    """The transport name for ``endpoint``: ``chosen`` if given, ``in-process`` for
    ``local://``, ``grpc`` for ``grpc://``, else ``None`` (``[a2a] backend``)."""
    if chosen:
        return chosen
    if endpoint.startswith("local://"):
        return "in-process"
    if endpoint.startswith("grpc://"):
        return "grpc"
    return None


class TransportPool:
    """Builds each transport once, through ``create_backend``, and closes them together.

    Args:
        gate: the gate every delegation passes (``None``: the configured one; ``False``:
            none); card fetches never use one.
        actor: who delegates, for the audit records.
        default: the transport for ``http(s)://`` endpoints (``None``: ``[a2a] backend``).
    """

    def __init__(self, gate: Any = None, actor: str = "user", default: str | None = None) -> None:
        self._gate = gate
        self._actor = actor
        self._default = default
        self._built: dict[tuple[str | None, bool], Any] = {}

    def get(self, name: str | None, *, guarded: bool = True) -> Any:
        """The transport ``name`` (``None``: the default), built on first use."""
        from neuroflow.backends import create_backend

        name = name or self._default
        key = (name, guarded)
        if key not in self._built:
            self._built[key] = create_backend(
                "transport", name, gate=self._gate if guarded else False, actor=self._actor)
        return self._built[key]

    def for_agent(self, agent: AgentRegistration) -> Any:
        """The guarded transport that calls ``agent``."""
        return self.get(transport_for(agent.endpoint, agent.transport))

    def for_card(self, url: str, chosen: str | None = None) -> Any:
        """The (unguarded) transport that fetches the card at ``url``."""
        return self.get(transport_for(url, chosen), guarded=False)

    async def aclose(self) -> None:
        """Close every transport built."""
        built, self._built = list(self._built.values()), {}
        for transport in built:
            await transport.aclose()
