"""``CollaborativeOrchestratorV2``: a model that sees registered agents as tools.

Each live agent of the registry becomes a tool ``ask_<id>`` of the orchestrating agent.
When the model calls one, the message goes to that agent through the transport for its
endpoint (built by ``create_backend``, so the ``delegate`` action passes the guards and the
audit log), inside a ``delegate <id>`` span whose ``traceparent`` travels along, and with
the collaboration budget (chain, hops left, deadline) in the message's metadata.  A served
NeuroFlow agent continues the same budget, so limits hold across processes; what it
delegated in turn comes back in its reply and is folded into :attr:`CollaborationResult.trace`.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from neuroflow.a2a.context import CollaborationContext, current_collaboration
from neuroflow.a2a.model import (
    A2AError,
    AgentReply,
    AgentTimeoutError,
    CollaborationRefused,
    CollaborationResult,
)
from neuroflow.a2a.serving import RESULT_KEY
from neuroflow.a2a.transports import TransportPool
from neuroflow.errors import AgentError, ConfigError, SecurityError

log = logging.getLogger("neuroflow.a2a")
_TOOL_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def tool_name_for(agent_id: str) -> str:
    """The tool name the model calls to ask ``agent_id`` (``ask_<id>``, at most 64 chars)."""
    return ("ask_" + _TOOL_CHARS.sub("_", agent_id))[:64]


def _as_agent(llm_orchestrator: Any) -> Any:
    from neuroflow.agent import AINativeAgent, LLMConfig

    if isinstance(llm_orchestrator, AINativeAgent):
        return llm_orchestrator
    if isinstance(llm_orchestrator, LLMConfig):
        return AINativeAgent("orchestrator", llm_orchestrator)
    if callable(getattr(llm_orchestrator, "complete", None)):
        return AINativeAgent("orchestrator", provider=llm_orchestrator)
    raise ConfigError("llm_orchestrator: expected an AINativeAgent, an LLMConfig or an LLM "
                      f"provider, got {type(llm_orchestrator).__name__}")


def _check_positive_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
    return value


class CollaborativeOrchestratorV2:
    """Answers a user's message with the help of registered agents.

    Args:
        llm_orchestrator: the orchestrating agent (an ``AINativeAgent``, whose own tools
            stay available), or an ``LLMConfig`` or LLM provider to build one from.
        agent_registry_service: where the agents to ask are found.
        max_depth: how many delegations deep a collaboration may go, across processes.
        timeout_ms: how long a whole collaboration may take, across processes.
        agent_id: this orchestrator's id in the chain (default: the agent's name).
        transport: the transport for ``http(s)://`` endpoints (default ``[a2a] backend``).
        gate: what every delegation passes (``None``: the configured gate; ``False``:
            none).
        capability: only offer agents discovered by this capability (default: all).
        max_agents: the most agents offered to the model as tools (by id; a warning says
            when some were left out: narrow them with ``capability``).
    """

    def __init__(self, llm_orchestrator: Any, agent_registry_service: Any,
                 max_depth: int = 5, timeout_ms: int = 30000, *,
                 agent_id: str | None = None, transport: str | None = None,
                 gate: Any = None, capability: str | None = None,
                 max_agents: int = 64) -> None:
        self.agent = _as_agent(llm_orchestrator)
        self.registry = agent_registry_service
        self.max_depth = _check_positive_int("max_depth", max_depth, 0)
        self.timeout_ms = _check_positive_int("timeout_ms", timeout_ms, 1)
        self.agent_id = agent_id or self.agent.name
        self.capability = capability
        self.max_agents = _check_positive_int("max_agents", max_agents, 1)
        self._transports = TransportPool(gate=gate, actor=self.agent_id, default=transport)

    async def aclose(self) -> None:
        """Close the transports this orchestrator opened."""
        await self._transports.aclose()

    async def __aenter__(self) -> CollaborativeOrchestratorV2:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def budget(self) -> CollaborationContext:
        """The budget a collaboration started now works under: the one of the request
        this task serves (tightened by this orchestrator's limits), or a new one."""
        parent = current_collaboration()
        seconds = self.timeout_ms / 1000.0
        if parent is None:
            return CollaborationContext.root(self.agent_id, self.max_depth, seconds)
        return parent.within(self.agent_id, self.max_depth, seconds)

    async def execute_with_collaboration(self, user_message: str, *,
                                         session_id: str | None = None) -> CollaborationResult:
        """Let the model answer ``user_message``, asking other agents as it sees fit.

        Returns:
            the response, the agents that collaborated, and the trace of who asked whom.

        Raises:
            AgentTimeoutError: ``timeout_ms`` (or the caller's deadline) passed; delegations
                in flight were cancelled (their remote tasks too).
        """
        if not isinstance(user_message, str):
            raise ConfigError(f"user_message: expected a string, got "
                              f"{type(user_message).__name__}")
        budget = self.budget()
        if self.capability:
            agents = await self.registry.discover_by_capability(self.capability)
        else:
            agents = await self.registry.list_agents()
        trace: list[dict[str, Any]] = []
        collaborators: list[str] = []
        agents = [a for a in agents if a.id != self.agent_id]
        if len(agents) > self.max_agents:
            log.warning("%s: %d agents are registered; offering the model the first %d "
                        "(max_agents); pass capability= to choose", self.agent_id,
                        len(agents), self.max_agents)
            agents = agents[: self.max_agents]
        runner = self._runner(agents, budget, trace, collaborators)
        try:
            answer = await runner.handle(user_message, session_id)
        except AgentError as exc:
            partial = getattr(exc, "result", None)
            if partial is not None and partial.get("finish_reason") == "deadline":
                raise AgentTimeoutError(
                    f"{self.agent_id}: the collaboration did not finish within "
                    f"{self.timeout_ms} ms") from exc
            raise
        return CollaborationResult(
            response=answer["response"], collaborating_agents=tuple(collaborators),
            trace=tuple(trace), trace_id=answer.get("trace_id", ""),
            session_id=answer.get("session_id", ""),
            tool_calls=tuple(answer.get("tool_calls", ())))

    def _runner(self, agents: list[Any], budget: CollaborationContext,
                trace: list[dict[str, Any]], collaborators: list[str]) -> Any:
        from neuroflow.agent import AINativeAgent, Tool

        base = self.agent
        remaining = max(budget.remaining(), 0.001)
        runner = AINativeAgent(
            base.name, base.llm_config, system_prompt=base.system_prompt,
            max_steps=base.max_steps,
            # the delegation's own timeout (the budget) fires first, and cancels remotely;
            # the model then has a second to answer with what it has
            tool_timeout_seconds=max(base.tool_timeout_seconds, remaining + 1.0),
            deadline_seconds=remaining + 1.0,
            gate=base.gate if base.gate is not None else False, tracer=base.tracer,
            provider=base.provider, sessions=base.sessions)
        for tool in base.tools.values():
            runner.add_tool(tool)
        for agent in agents:
            name = tool_name_for(agent.id)
            if name in runner.tools:
                continue
            runner.add_tool(Tool(
                name=name,
                description=(f"Ask agent {agent.id} ({agent.name or agent.id}): "
                             f"{agent.description}. Capabilities: "
                             f"{', '.join(agent.capabilities + agent.skills) or 'none listed'}."),
                parameters={"type": "object", "properties": {"message": {
                    "type": "string", "description": "what to ask the agent"}},
                    "required": ["message"]},
                function=self._delegation(agent, budget, trace, collaborators),
                is_async=True))
        return runner

    def _delegation(self, agent: Any, budget: CollaborationContext,
                    trace: list[dict[str, Any]], collaborators: list[str]) -> Any:
        async def ask(message: str) -> str:
            entry: dict[str, Any] = {"caller": self.agent_id, "callee": agent.id,
                                     "depth": budget.depth + 1, "status": "pending"}
            trace.append(entry)
            started = time.perf_counter()
            try:
                reply = await self._send(agent, message, budget)
            except CollaborationRefused as exc:
                entry.update(status="refused", error=str(exc))
                raise
            except SecurityError as exc:
                entry.update(status="denied", error=str(exc))
                raise
            except AgentTimeoutError as exc:
                entry.update(status="timeout", error=str(exc))
                raise
            except Exception as exc:
                entry.update(status="error", error=f"{type(exc).__name__}: {exc}")
                raise
            finally:
                entry["duration_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
            if reply.state == "rejected":
                entry.update(status="refused", error=reply.text)
                raise CollaborationRefused(f"{agent.id} refused: {reply.text}", "remote")
            if reply.state != "completed":
                entry.update(status=reply.state, error=reply.text)
                raise A2AError(f"{agent.id} answered with task state {reply.state}: "
                               f"{reply.text}")
            entry["status"] = "ok"
            if agent.id not in collaborators:
                collaborators.append(agent.id)
            nested = (reply.metadata or {}).get(RESULT_KEY) or {}
            if isinstance(nested, dict) and nested:
                entry["trace_id"] = str(nested.get("trace_id") or "")
                entry["delegations"] = list(nested.get("trace") or [])
                for other in nested.get("collaborating_agents") or []:
                    if isinstance(other, str) and other not in collaborators:
                        collaborators.append(other)
            return reply.text

        return ask

    async def _send(self, agent: Any, message: str,
                    budget: CollaborationContext) -> AgentReply:
        from opentelemetry.trace import SpanKind

        from neuroflow.observability import inject
        from neuroflow.observability.operations import operation

        budget.check_delegation(agent.id)
        with operation(f"delegate {agent.id}", "a2a", "delegate", {
            "neuroflow.a2a.caller": self.agent_id, "neuroflow.a2a.callee": agent.id,
            "neuroflow.a2a.depth": budget.depth + 1, "server.address": agent.endpoint,
        }, kind=SpanKind.CLIENT):
            carrier = inject({})
            metadata = budget.for_delegation(agent.id, carrier.get("traceparent"))
            transport = self._transports.for_agent(agent)
            return await transport.send(agent.endpoint, message, metadata=metadata,
                                        timeout=budget.remaining(), agent_id=agent.id)
