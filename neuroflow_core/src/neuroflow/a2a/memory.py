"""The ``memory`` agent registry backend: registrations in this process, indexed by every
capability, skill and tag so discovery among many agents costs one set lookup."""

from __future__ import annotations

import builtins
from collections import defaultdict

from neuroflow.a2a.config import MemoryRegistryConfig
from neuroflow.a2a.model import AgentRegistration


class MemoryRegistry:
    """Registrations in a dict, with an inverted index from term to ids."""

    def __init__(self, config: MemoryRegistryConfig | None = None) -> None:
        self.config = config or MemoryRegistryConfig()
        self._agents: dict[str, AgentRegistration] = {}
        self._index: defaultdict[str, set[str]] = defaultdict(set)

    def _alive(self, registration: AgentRegistration, now: float | None) -> bool:
        return now is None or registration.alive(now, self.config.default_ttl_seconds)

    async def put(self, registration: AgentRegistration) -> None:
        """Add or replace ``registration``."""
        self._drop(registration.id)
        self._agents[registration.id] = registration
        for term in registration.terms():
            self._index[term].add(registration.id)

    def _drop(self, agent_id: str) -> bool:
        old = self._agents.pop(agent_id, None)
        if old is None:
            return False
        for term in old.terms():
            ids = self._index.get(term)
            if ids is not None:
                ids.discard(agent_id)
                if not ids:
                    del self._index[term]
        return True

    async def remove(self, agent_id: str) -> bool:
        """Drop the registration ``agent_id``."""
        return self._drop(agent_id)

    async def get(self, agent_id: str) -> AgentRegistration | None:
        """The registration ``agent_id``, or ``None``."""
        return self._agents.get(agent_id)

    async def list(self, now: float | None = None) -> builtins.list[AgentRegistration]:
        """Every registration alive at ``now``, by id."""
        return sorted((r for r in self._agents.values() if self._alive(r, now)),
                      key=lambda r: r.id)

    async def find(self, term: str, now: float) -> builtins.list[AgentRegistration]:
        """Registrations alive at ``now`` found by ``term``, by id."""
        ids = self._index.get(term.strip().lower(), ())
        found = (self._agents[i] for i in ids)
        return sorted((r for r in found if self._alive(r, now)), key=lambda r: r.id)

    async def touch(self, agent_id: str, when: float) -> bool:
        """Record a heartbeat of ``agent_id``."""
        registration = self._agents.get(agent_id)
        if registration is None:
            return False
        import attrs

        self._agents[agent_id] = attrs.evolve(registration, last_seen=when)
        return True

    async def purge(self, now: float) -> int:
        """Drop registrations not alive at ``now``."""
        dead = [i for i, r in self._agents.items() if not self._alive(r, now)]
        for agent_id in dead:
            self._drop(agent_id)
        return len(dead)

    async def aclose(self) -> None:
        """Nothing to release."""
