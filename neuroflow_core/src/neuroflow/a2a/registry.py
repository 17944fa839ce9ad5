"""``AgentRegistryService``: register agents, find them by what they can do, drop the dead."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Self

import attrs

from neuroflow.a2a.model import A2AError, AgentNotFoundError, AgentRegistration
from neuroflow.a2a.transports import TransportPool
from neuroflow.errors import ConfigError

_BINDINGS = {"JSONRPC": "jsonrpc", "HTTP+JSON": "http-json", "GRPC": "grpc",
             "IN-PROCESS": "in-process"}
_PREFERENCE = ("JSONRPC", "HTTP+JSON", "GRPC", "IN-PROCESS")


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.:-]+", "-", name).strip("-._:")[:128]
    return slug or "agent"


def registration_from_card(card: Mapping[str, Any], card_url: str, *,
                           agent_id: str | None = None, capabilities: Sequence[str] = (),
                           tags: Sequence[str] = (), transport: str | None = None,
                           ttl_seconds: float | None = None) -> AgentRegistration:
    """An :class:`AgentRegistration` from an agent card (A2A 1.0 JSON form, or 0.3's
    ``url``/``preferredTransport``).  Skill ids and names become ``skills``, skill tags
    become ``tags``.

    Raises:
        A2AError: the card lacks a name or an interface NeuroFlow can call.
    """
    where = f"agent card at {card_url}"
    name = card.get("name")
    if not isinstance(name, str) or not name:
        raise A2AError(f"{where}: 'name' is missing")
    interfaces = card.get("supportedInterfaces") or card.get("supported_interfaces") or []
    if not interfaces and isinstance(card.get("url"), str):  # an A2A 0.3 card
        interfaces = [{"url": card["url"],
                       "protocolBinding": card.get("preferredTransport", "JSONRPC")}]
    usable = {}
    for interface in interfaces:
        if not isinstance(interface, Mapping):
            raise A2AError(f"{where}: an interface is not an object: {interface!r}")
        binding = str(interface.get("protocolBinding") or interface.get("protocol_binding")
                      or "").upper()
        url = interface.get("url")
        if binding in _BINDINGS and isinstance(url, str) and binding not in usable:
            usable[binding] = url
    wanted = None
    if transport is not None:
        wanted = next((b for b, n in _BINDINGS.items() if n == transport), None)
        if wanted not in usable:
            raise A2AError(f"{where}: it offers no {transport} interface "
                           f"(it offers: {', '.join(usable) or 'none'})")
    else:
        wanted = next((b for b in _PREFERENCE if b in usable), None)
        if wanted is None:
            raise A2AError(f"{where}: no JSONRPC, HTTP+JSON or GRPC interface")
    endpoint = usable[wanted]
    if wanted == "GRPC" and "://" not in endpoint:
        endpoint = f"grpc://{endpoint}"
    skills = card.get("skills") or []
    if not isinstance(skills, list) or not all(isinstance(s, Mapping) for s in skills):
        raise A2AError(f"{where}: 'skills' must be a list of objects")
    skill_words = [w for s in skills for w in (s.get("id"), s.get("name"))
                   if isinstance(w, str) and w.strip()]
    skill_tags = [t for s in skills for t in (s.get("tags") or []) if isinstance(t, str)
                  and t.strip()]
    try:
        return AgentRegistration(
            id=agent_id or _slug(name), name=name,
            description=str(card.get("description") or ""), endpoint=endpoint,
            capabilities=tuple(capabilities), skills=tuple(skill_words),
            tags=(*tags, *skill_tags), transport=_BINDINGS[wanted], card_url=card_url,
            ttl_seconds=ttl_seconds, metadata={"card": dict(card)})
    except ConfigError as exc:
        raise A2AError(f"{where}: {exc}") from None


class AgentRegistryService:
    """Agents other agents can discover and call.

    Args:
        backend: the registry backend (``"memory"``, ``"sql"`` with ``neuroflow[a2a]``);
            ``None`` takes ``[registry] backend``.
        options: the backend's options (its config object or a mapping; ``None``:
            ``[registry.<backend>]``).
        transport: the transport that fetches agent cards from ``http(s)://`` URLs
            (``None``: ``[a2a] backend``).

    Example::

        registry = AgentRegistryService(backend="memory")
        await registry.start()
        await registry.register(AgentRegistration(id="researcher", endpoint="http://...",
                                                  capabilities=["web_search"]))
        await registry.discover_by_capability("web_search")
    """

    def __init__(self, backend: str | None = None, options: Any = None, *,
                 transport: str | None = None) -> None:
        self._backend_name = backend
        self._options = options
        self._transports = TransportPool(gate=False, default=transport)
        self._cards: dict[str, tuple[str, AgentRegistration]] = {}
        self.backend: Any = None

    async def start(self) -> None:
        """Build the backend (``create_backend("registry", ...)``); safe to call twice."""
        if self.backend is None:
            from neuroflow.backends import create_backend

            self.backend = create_backend("registry", self._backend_name, self._options)

    async def _store(self) -> Any:
        if self.backend is None:
            await self.start()
        return self.backend

    async def stop(self) -> None:
        """Close the backend and the card-fetching transports."""
        backend, self.backend = self.backend, None
        if backend is not None:
            await backend.aclose()
        await self._transports.aclose()

    aclose = stop

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def register(self, agent: AgentRegistration | Mapping[str, Any]) -> AgentRegistration:
        """Add ``agent`` (or replace the one with its id); its heartbeat starts now."""
        if isinstance(agent, Mapping):
            agent = AgentRegistration.from_dict(agent)
        if not isinstance(agent, AgentRegistration):
            raise ConfigError(f"agent: expected an AgentRegistration, got "
                              f"{type(agent).__name__}")
        agent = attrs.evolve(agent, last_seen=time.time())
        await (await self._store()).put(agent)
        return agent

    async def register_card(self, url: str, *, agent_id: str | None = None,
                            capabilities: Sequence[str] = (), tags: Sequence[str] = (),
                            transport: str | None = None,
                            ttl_seconds: float | None = None) -> AgentRegistration:
        """Fetch the agent card at ``url`` (a base URL gets ``/.well-known/agent-card.json``),
        validate it and register the agent it describes.  Cards are cached by URL with
        their ``ETag``: fetching an unchanged card again costs a ``304``.

        Raises:
            AgentUnavailableError: the card could not be fetched.
            A2AError: the card is not valid.
        """
        card_url = url if url.endswith(".json") else url.rstrip("/") + (
            "/.well-known/agent-card.json")
        cached = self._cards.get(card_url)
        fetcher = self._transports.for_card(card_url)
        fetched = await fetcher.fetch_card(card_url, etag=cached[0] if cached else None)
        if fetched.not_modified and cached is not None:
            registration = cached[1]
        else:
            if fetched.card is None:
                raise A2AError(f"agent card at {card_url}: empty answer")
            registration = registration_from_card(
                fetched.card, card_url, agent_id=agent_id, capabilities=capabilities,
                tags=tags, transport=transport, ttl_seconds=ttl_seconds)
            if fetched.etag:
                self._cards[card_url] = (fetched.etag, registration)
        return await self.register(registration)

    async def unregister(self, agent_id: str) -> bool:
        """Drop an agent; whether it was registered."""
        return await (await self._store()).remove(agent_id)

    async def get(self, agent_id: str) -> AgentRegistration:
        """The registration of ``agent_id`` (alive or not).

        Raises:
            AgentNotFoundError: no such agent.
        """
        found = await (await self._store()).get(agent_id)
        if found is None:
            raise AgentNotFoundError(f"no registered agent has id {agent_id!r}")
        return found

    async def list_agents(self) -> list[AgentRegistration]:
        """Every live agent, by id."""
        return await (await self._store()).list(time.time())

    async def discover_by_capability(self, capability: str) -> list[AgentRegistration]:
        """Live agents whose capabilities, skills or tags include ``capability``
        (case-insensitive), by id."""
        if not isinstance(capability, str) or not capability.strip():
            raise ConfigError(f"capability: expected a non-empty string, got {capability!r}")
        return await (await self._store()).find(capability, time.time())

    async def heartbeat(self, agent_id: str) -> None:
        """Record that ``agent_id`` is alive (its time to live starts again).

        Raises:
            AgentNotFoundError: no such agent (register it again).
        """
        if not await (await self._store()).touch(agent_id, time.time()):
            raise AgentNotFoundError(f"no registered agent has id {agent_id!r}")

    async def purge_expired(self) -> int:
        """Drop every agent whose time to live ran out; how many were dropped."""
        return await (await self._store()).purge(time.time())
