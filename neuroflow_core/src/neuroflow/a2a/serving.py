"""One agent as an A2A peer sees it: :class:`ServedAgent` answers requests under the
collaboration budget they carry, whatever binding they came over."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from neuroflow.a2a.context import (
    METADATA_KEY,
    CollaborationContext,
    reset_current_collaboration,
    set_current_collaboration,
)
from neuroflow.a2a.model import AgentReply, AgentTimeoutError, CollaborationRefused
from neuroflow.errors import ConfigError

#: Metadata key of what a NeuroFlow agent reports back: who it asked in turn.
RESULT_KEY = "neuroflow.collaboration.result"


class ServedAgent:
    """An :class:`~neuroflow.agent.AINativeAgent` (or a ``CollaborativeOrchestratorV2``)
    answering A2A requests.

    Every request is checked against the budget in its metadata before the agent runs:
    a request whose chain already holds this agent is refused (a cycle), as is one whose
    deadline passed; the agent then runs with the tighter of the request's and its own
    limits, under the caller's trace context, and is stopped at the deadline.

    Args:
        target: the agent, or an orchestrator whose delegations continue the chain.
        agent_id: the id in the chain and in the card (default: the agent's name).
        description: the card's description (default: the agent's system prompt).
        capabilities: words the card lists (as skill tags) for discovery.
        max_depth: this agent's own limit on further delegations.
        timeout_seconds: this agent's own limit on one request.
        version: the card's version.
    """

    def __init__(self, target: Any, *, agent_id: str | None = None,
                 description: str | None = None, capabilities: tuple[str, ...] = (),
                 max_depth: int = 5, timeout_seconds: float = 300.0,
                 version: str = "1.0.0") -> None:
        agent = getattr(target, "agent", target)
        if not callable(getattr(target, "execute_with_collaboration", None)) and not callable(
                getattr(target, "handle", None)):
            raise ConfigError(f"agent: expected an AINativeAgent or a "
                              f"CollaborativeOrchestratorV2, got {type(target).__name__}")
        self.target = target
        self.agent = agent
        self.id = agent_id or getattr(target, "agent_id", None) or agent.name
        self.name = getattr(agent, "name", self.id)
        self.description = description or getattr(agent, "system_prompt", None) or (
            f"NeuroFlow agent {self.name}")
        self.capabilities = tuple(capabilities)
        self.max_depth = max_depth
        self.timeout_seconds = float(timeout_seconds)
        self.version = version

    def skills(self) -> list[dict[str, Any]]:
        """The card's skills: one per tool of the agent (its name, description and the
        capabilities as tags), or one skill named after the agent if it has no tools."""
        tools = getattr(self.agent, "tools", {}) or {}
        tags = list(self.capabilities) or [self.id]
        skills = [{"id": tool.name, "name": tool.name, "description": tool.description or tool.name,
                   "tags": [*tags, tool.name]} for tool in tools.values()]
        return skills or [{"id": self.id, "name": self.name, "description": self.description,
                           "tags": tags}]

    def card(self, url: str, binding: str = "JSONRPC") -> dict[str, Any]:
        """The agent card (A2A 1.0 JSON form) with one interface at ``url``."""
        return {
            "name": self.name, "description": self.description, "version": self.version,
            "supportedInterfaces": [{"url": url, "protocolBinding": binding,
                                     "protocolVersion": "1.0"}],
            "capabilities": {"streaming": True},
            "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
            "skills": [{**s, "inputModes": ["text/plain"], "outputModes": ["text/plain"]}
                       for s in self.skills()],
        }

    def budget(self, metadata: Mapping[str, Any] | None) -> CollaborationContext:
        """The budget this agent works under for a request carrying ``metadata``.

        Raises:
            CollaborationRefused: a cycle, a passed deadline, or malformed metadata.
        """
        incoming = CollaborationContext.from_metadata(metadata)
        if incoming is None:
            return CollaborationContext.root(self.id, self.max_depth, self.timeout_seconds)
        if self.id in incoming.chain:
            raise CollaborationRefused(
                f"{self.id} refuses a request from {' -> '.join(incoming.chain)}: it is "
                f"already in the chain (a cycle)", "cycle")
        if incoming.remaining() <= 0:
            raise CollaborationRefused(
                f"{self.id} refuses a request whose deadline has passed", "deadline")
        return incoming.within(self.id, self.max_depth, self.timeout_seconds)

    async def run(self, text: str, metadata: Mapping[str, Any] | None = None) -> AgentReply:
        """Answer ``text`` under the budget ``metadata`` carries.

        Raises:
            CollaborationRefused: before the agent runs (cycle, deadline, bad metadata).
            AgentTimeoutError: the deadline passed while the agent worked.
        """
        from neuroflow.observability import attach_context

        budget = self.budget(metadata)
        carrier = {"traceparent": budget.traceparent} if budget.traceparent else {}
        token = set_current_collaboration(budget)
        try:
            with attach_context(carrier), anyio.move_on_after(budget.remaining()) as scope:
                if callable(getattr(self.target, "execute_with_collaboration", None)):
                    result = await self.target.execute_with_collaboration(text)
                    reply = AgentReply(result.response, metadata={RESULT_KEY: {
                        "agent": self.id, "trace_id": result.trace_id,
                        "collaborating_agents": list(result.collaborating_agents),
                        "trace": [dict(t) for t in result.trace]}})
                else:
                    answer = await self.target.handle(text)
                    reply = AgentReply(str(answer.get("response", "")), metadata={
                        RESULT_KEY: {"agent": self.id, "trace_id": answer.get("trace_id", ""),
                                     "collaborating_agents": [],
                                     "trace": []}})
        finally:
            reset_current_collaboration(token)
        if scope.cancelled_caught:
            raise AgentTimeoutError(f"{self.id}: the collaboration's deadline passed while "
                                    f"it worked on the request")
        return reply


__all__ = ["METADATA_KEY", "RESULT_KEY", "ServedAgent"]
