"""``serve_agent``: publish an agent over A2A with the configured (or named) transport."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neuroflow.a2a.serving import ServedAgent


async def serve_agent(agent: Any, *, transport: str | None = None, host: str = "127.0.0.1",
                      port: int = 0, agent_id: str | None = None,
                      description: str | None = None, capabilities: Sequence[str] = (),
                      max_depth: int = 5, timeout_seconds: float = 300.0,
                      **options: Any) -> Any:
    """Serve ``agent`` (an ``AINativeAgent`` or a ``CollaborativeOrchestratorV2``) as an A2A
    server and return its handle (``url``, ``card_url``, ``aclose()``; an async context
    manager).

    ``transport`` is ``"jsonrpc"`` (the default, ``[a2a] backend``: JSON-RPC and HTTP+JSON
    on one HTTP port, agent card at ``/.well-known/agent-card.json``, SSE streaming),
    ``"http-json"`` (the same server), ``"grpc"`` (gRPC on ``port``, plus the HTTP server on
    ``http_port`` if given) or ``"in-process"``.  ``options`` go to the transport's
    server: ``bearer_token=`` / ``api_key=`` refuse unauthenticated calls,
    ``grpc_port=`` adds gRPC beside HTTP.  The network transports need
    ``pip install 'neuroflow[a2a]'``.
    """
    from neuroflow.backends import create_backend

    served = agent if isinstance(agent, ServedAgent) else ServedAgent(
        agent, agent_id=agent_id, description=description, capabilities=tuple(capabilities),
        max_depth=max_depth, timeout_seconds=timeout_seconds)
    server_transport = create_backend("transport", transport, gate=False)
    return await server_transport.serve(served, host=host, port=port, **options)
