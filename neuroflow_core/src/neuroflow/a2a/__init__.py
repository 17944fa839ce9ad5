"""Agent-to-agent collaboration (A2A protocol 1.0).

``AgentRegistryService`` registers agents (by ``AgentRegistration`` or by agent card URL)
and finds them by capability, skill or tag; ``CollaborativeOrchestratorV2`` lets a model
ask registered agents as tools under a budget (depth, deadline, the chain of agents) that
holds across processes; ``serve_agent`` publishes any ``AINativeAgent`` as an A2A server.
The ``memory`` registry and the ``in-process`` transport are built in; JSON-RPC, HTTP+JSON
and gRPC transports and the SQL registry come with ``pip install 'neuroflow[a2a]'``.
Importing this package never imports the plugin or ``a2a-sdk``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow._lazy import lazy_exports

if TYPE_CHECKING:
    from neuroflow.a2a.config import MemoryRegistryConfig, TransportConfig
    from neuroflow.a2a.context import METADATA_KEY, CollaborationContext, current_collaboration
    from neuroflow.a2a.facade import serve_agent
    from neuroflow.a2a.guarded import GuardedTransport
    from neuroflow.a2a.inprocess import InProcessTransport
    from neuroflow.a2a.memory import MemoryRegistry
    from neuroflow.a2a.model import (
        A2AError,
        AgentNotFoundError,
        AgentRegistration,
        AgentReply,
        AgentTimeoutError,
        AgentUnavailableError,
        CardFetch,
        CollaborationRefused,
        CollaborationResult,
    )
    from neuroflow.a2a.orchestrator import CollaborativeOrchestratorV2, tool_name_for
    from neuroflow.a2a.protocol import AgentRegistryBackend, AgentTransport
    from neuroflow.a2a.registry import AgentRegistryService, registration_from_card
    from neuroflow.a2a.serving import RESULT_KEY, ServedAgent

_LAZY: dict[str, str] = {
    "TransportConfig": "neuroflow.a2a.config",
    "MemoryRegistryConfig": "neuroflow.a2a.config",
    "CollaborationContext": "neuroflow.a2a.context",
    "METADATA_KEY": "neuroflow.a2a.context",
    "current_collaboration": "neuroflow.a2a.context",
    "serve_agent": "neuroflow.a2a.facade",
    "GuardedTransport": "neuroflow.a2a.guarded",
    "InProcessTransport": "neuroflow.a2a.inprocess",
    "MemoryRegistry": "neuroflow.a2a.memory",
    "A2AError": "neuroflow.a2a.model",
    "AgentNotFoundError": "neuroflow.a2a.model",
    "AgentRegistration": "neuroflow.a2a.model",
    "AgentReply": "neuroflow.a2a.model",
    "AgentTimeoutError": "neuroflow.a2a.model",
    "AgentUnavailableError": "neuroflow.a2a.model",
    "CardFetch": "neuroflow.a2a.model",
    "CollaborationRefused": "neuroflow.a2a.model",
    "CollaborationResult": "neuroflow.a2a.model",
    "CollaborativeOrchestratorV2": "neuroflow.a2a.orchestrator",
    "tool_name_for": "neuroflow.a2a.orchestrator",
    "AgentRegistryBackend": "neuroflow.a2a.protocol",
    "AgentTransport": "neuroflow.a2a.protocol",
    "AgentRegistryService": "neuroflow.a2a.registry",
    "registration_from_card": "neuroflow.a2a.registry",
    "RESULT_KEY": "neuroflow.a2a.serving",
    "ServedAgent": "neuroflow.a2a.serving",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "METADATA_KEY",
    "RESULT_KEY",
    "A2AError",
    "AgentNotFoundError",
    "AgentRegistration",
    "AgentRegistryBackend",
    "AgentRegistryService",
    "AgentReply",
    "AgentTimeoutError",
    "AgentTransport",
    "AgentUnavailableError",
    "CardFetch",
    "CollaborationContext",
    "CollaborationRefused",
    "CollaborationResult",
    "CollaborativeOrchestratorV2",
    "GuardedTransport",
    "InProcessTransport",
    "MemoryRegistry",
    "MemoryRegistryConfig",
    "ServedAgent",
    "TransportConfig",
    "current_collaboration",
    "registration_from_card",
    "serve_agent",
    "tool_name_for",
]
