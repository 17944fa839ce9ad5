"""The ``in-process`` transport: agents served in this process, called without a network.

``serve`` puts a :class:`~neuroflow.a2a.serving.ServedAgent` in a process-wide table under
a ``local://`` endpoint; ``send`` finds it there.  The metadata is copied through JSON on the
way, as a network binding would, so the budget crosses as data and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import anyio

from neuroflow.a2a.config import TransportConfig
from neuroflow.a2a.model import (
    AgentReply,
    AgentTimeoutError,
    AgentUnavailableError,
    CardFetch,
    CollaborationRefused,
)

_LOCAL: dict[str, Any] = {}
CARD_PATH = "/.well-known/agent-card.json"


class LocalServer:
    """The handle of an agent served in this process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.card_url = url.rstrip("/") + CARD_PATH

    async def aclose(self) -> None:
        """Stop serving: the endpoint is free again."""
        _LOCAL.pop(self.url, None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class InProcessTransport:
    """Calls agents served in this process (``local://<id>`` endpoints)."""

    def __init__(self, config: TransportConfig | None = None) -> None:
        self.config = config or TransportConfig()

    async def send(self, endpoint: str, text: str, *,
                   metadata: Mapping[str, Any] | None = None,
                   timeout: float | None = None, agent_id: str = "") -> AgentReply:
        """Run the served agent's request in this task, within ``timeout``."""
        served = _LOCAL.get(endpoint.rstrip("/"))
        who = agent_id or endpoint
        if served is None:
            raise AgentUnavailableError(f"agent {who}: nothing is served in this process at "
                                        f"{endpoint}")
        copied = json.loads(json.dumps(dict(metadata or {})))
        limit = timeout if timeout is not None else self.config.timeout_seconds
        with anyio.move_on_after(limit) as scope:
            try:
                return await served.run(text, copied)
            except CollaborationRefused as exc:
                return AgentReply(str(exc), state="rejected")
            except AgentTimeoutError as exc:
                return AgentReply(str(exc), state="failed")
        assert scope.cancelled_caught
        raise AgentTimeoutError(f"agent {who}: no answer within {limit:g} s; the request "
                                f"was cancelled")

    async def fetch_card(self, url: str, *, etag: str | None = None,
                         timeout: float | None = None) -> CardFetch:
        """The card of the agent served at ``url`` (with or without the well-known path)."""
        base = url[: -len(CARD_PATH)] if url.endswith(CARD_PATH) else url
        served = _LOCAL.get(base.rstrip("/"))
        if served is None:
            raise AgentUnavailableError(f"no agent is served in this process at {base}")
        card = served.card(base.rstrip("/"), "IN-PROCESS")
        tag = '"' + hashlib.sha256(json.dumps(card, sort_keys=True).encode()).hexdigest()[:32] + '"'
        if etag == tag:
            return CardFetch(None, tag, not_modified=True)
        return CardFetch(card, tag)

    async def serve(self, agent: Any, *, host: str = "127.0.0.1", port: int = 0,
                    **options: Any) -> LocalServer:
        """Serve ``agent`` at ``local://<its id>`` (or ``endpoint=`` given)."""
        url = str(options.get("endpoint") or f"local://{agent.id}").rstrip("/")
        if url in _LOCAL:
            raise AgentUnavailableError(f"{url} is already served in this process")
        _LOCAL[url] = agent
        return LocalServer(url)

    async def aclose(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
