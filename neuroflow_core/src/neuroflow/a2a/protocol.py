"""What A2A transports (kind ``transport``, section ``[a2a]``) and agent registry backends
(kind ``registry``, section ``[registry]``) must implement."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable


@runtime_checkable
class AgentTransport(Protocol):
    """Calls agents over one A2A binding, and serves agents on it.

    Built by ``create_backend("transport", name)``; a transport whose factory does not
    enforce the gate is wrapped so every :meth:`send` is a ``delegate`` action judged by
    the guards and written to the audit log.
    """

    async def send(self, endpoint: str, text: str, *,
                   metadata: Mapping[str, Any] | None = None,
                   timeout: float | None = None, agent_id: str = "") -> Any:
        """Send ``text`` to the agent at ``endpoint`` and wait for its answer (an
        ``AgentReply``).  ``metadata`` goes into the A2A message's metadata.  When
        ``timeout`` passes, the remote task is cancelled (``CancelTask``) and
        ``AgentTimeoutError`` is raised; a peer that is down or answers something that is
        not A2A raises ``AgentUnavailableError``; both name ``agent_id`` or the endpoint."""
        ...

    async def fetch_card(self, url: str, *, etag: str | None = None,
                         timeout: float | None = None) -> Any:
        """Fetch and validate the agent card at ``url`` (a ``CardFetch``); with ``etag``,
        a card that did not change comes back as ``not_modified``."""
        ...

    async def serve(self, agent: Any, *, host: str = "127.0.0.1", port: int = 0,
                    **options: Any) -> Any:
        """Start serving ``agent`` (a ``ServedAgent``) on this binding and return a handle
        with ``url``, ``card_url`` and ``aclose()``."""
        ...

    async def aclose(self) -> None:
        """Close connections (and servers this transport started)."""
        ...

    async def __aenter__(self) -> Self:
        ...

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        ...


@runtime_checkable
class AgentRegistryBackend(Protocol):
    """Stores agent registrations; ``AgentRegistryService`` is built on one.

    Times are seconds since the epoch; ``now`` decides which registrations are alive
    (``AgentRegistration.alive``) under the backend's default time to live.
    """

    async def put(self, registration: Any) -> None:
        """Add or replace the registration with its id."""
        ...

    async def remove(self, agent_id: str) -> bool:
        """Drop a registration; whether there was one."""
        ...

    async def get(self, agent_id: str) -> Any:
        """The registration with that id, or ``None``."""
        ...

    async def list(self, now: float | None = None) -> list[Any]:
        """Every registration alive at ``now`` (every one when ``now`` is ``None``)."""
        ...

    async def find(self, term: str, now: float) -> list[Any]:
        """Registrations alive at ``now`` whose capabilities, skills or tags include
        ``term`` (case-insensitively), ordered by id."""
        ...

    async def touch(self, agent_id: str, when: float) -> bool:
        """Record a heartbeat; whether the agent is registered."""
        ...

    async def purge(self, now: float) -> int:
        """Drop every registration not alive at ``now``; how many were dropped."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
