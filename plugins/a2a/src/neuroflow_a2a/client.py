"""The A2A transports: one class, :class:`SdkTransport`, on ``a2a-sdk``'s client, for the
JSON-RPC, HTTP+JSON and gRPC bindings.

A call is one blocking ``SendMessage`` carrying the collaboration budget in the message's
metadata, the ``traceparent`` header and the configured credentials.  Its context id is
made here, so when the time runs out the transport can still find the remote task
(``ListTasks`` by context) and cancel it (``CancelTask``).  Only a call that could not
connect is tried again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
from google.protobuf import json_format

from neuroflow.a2a import (
    METADATA_KEY,
    A2AError,
    AgentReply,
    AgentTimeoutError,
    AgentUnavailableError,
    CardFetch,
    TransportConfig,
)
from neuroflow_a2a.grpc_support import grpc_module

#: ``[a2a] backend`` name -> the protocol binding a2a-sdk names.
BINDINGS = {"jsonrpc": "JSONRPC", "http-json": "HTTP+JSON", "grpc": "GRPC"}
_TERMINAL = {"completed", "failed", "canceled", "rejected"}


def _state_name(state: int) -> str:
    from a2a.types import TaskState

    return TaskState.Name(state).removeprefix("TASK_STATE_").lower()


def _text_of(parts: Any) -> str:
    return "".join(part.text for part in parts if part.HasField("text"))


def _connect_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means nothing reached the peer (safe to try again)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (httpx.ConnectError, ConnectionRefusedError)):
            return True
        code = getattr(seen, "code", None)
        if callable(code):
            try:
                if getattr(code(), "name", "") == "UNAVAILABLE":
                    return True
            except Exception:  # noqa: BLE001 - not a grpc error after all
                pass
        seen = seen.__cause__ or seen.__context__
    return False


class SdkTransport:
    """Calls agents over one binding with ``a2a-sdk``'s client; serves agents too.

    Args:
        config: timeouts, connect retries and credentials.
        binding: ``"jsonrpc"``, ``"http-json"`` or ``"grpc"``.
    """

    def __init__(self, config: TransportConfig | None, binding: str) -> None:
        self.config = config or TransportConfig()
        self.binding = binding
        self._http: httpx.AsyncClient | None = None
        self._clients: dict[str, Any] = {}
        self._servers: list[Any] = []

    # --- calling ------------------------------------------------------------------------

    def _headers(self, metadata: Mapping[str, Any] | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.config.bearer_token:
            headers["Authorization"] = f"Bearer {self.config.bearer_token}"
        if self.config.api_key:
            headers["X-API-Key"] = self.config.api_key
        traceparent = ((metadata or {}).get(METADATA_KEY) or {}).get("traceparent")
        if isinstance(traceparent, str):
            headers["traceparent"] = traceparent
        if self.binding == "grpc":
            headers = {k.lower(): v for k, v in headers.items()}
        return headers

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.config.timeout_seconds))
        return self._http

    def _client(self, endpoint: str) -> Any:
        client = self._clients.get(endpoint)
        if client is not None:
            return client
        from a2a.client import ClientConfig, ClientFactory
        from a2a.types import AgentCapabilities, AgentCard, AgentInterface

        url = endpoint.removeprefix("grpc://") if self.binding == "grpc" else endpoint
        card = AgentCard(name=endpoint, description="", version="",
                         supported_interfaces=[AgentInterface(
                             protocol_binding=BINDINGS[self.binding], url=url,
                             protocol_version="1.0")],
                         capabilities=AgentCapabilities(streaming=False))
        channels: Any = None
        if self.binding == "grpc":
            channels = grpc_module().aio.insecure_channel
        config = ClientConfig(streaming=False, httpx_client=self._http_client(),
                              grpc_channel_factory=channels,
                              supported_protocol_bindings=[BINDINGS[self.binding]])
        client = ClientFactory(config).create(card)
        self._clients[endpoint] = client
        return client

    async def send(self, endpoint: str, text: str, *,
                   metadata: Mapping[str, Any] | None = None,
                   timeout: float | None = None, agent_id: str = "") -> AgentReply:
        """Send ``text`` and wait for the final task (or message); see the module doc."""
        from a2a.client import ClientCallContext
        from a2a.types import Message, Part, Role, SendMessageRequest

        who = f"agent {agent_id} at {endpoint}" if agent_id else f"agent at {endpoint}"
        limit = timeout if timeout is not None else self.config.timeout_seconds
        if limit <= 0:
            raise AgentTimeoutError(f"{who}: no time left to call it")
        deadline = anyio.current_time() + limit
        context_id = uuid.uuid4().hex
        message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex,
                          context_id=context_id, parts=[Part(text=text)])
        if metadata:
            message.metadata.update(dict(metadata))
        request = SendMessageRequest(message=message)
        context = ClientCallContext(timeout=limit, service_parameters=self._headers(metadata))
        client = self._client(endpoint)
        attempts = self.config.connect_retries + 1
        for attempt in range(attempts):
            left = max(deadline - anyio.current_time(), 0.001)
            context.timeout = left
            try:
                # The SDK's own deadline (httpx timeout, gRPC deadline) fires first; this
                # scope is the backstop (cancelling grpc.aio mid-call can leak its
                # CancelledError, so it should not be the usual way out).
                with anyio.fail_after(left + 0.25):
                    last = None
                    async for event in client.send_message(request, context=context):
                        last = event
                    break
            except TimeoutError:
                with anyio.move_on_after(2.0, shield=True):
                    await self._cancel_remote(client, context_id, context)
                raise AgentTimeoutError(
                    f"{who}: no answer within {limit:g} s; its task was asked to cancel"
                ) from None
            except Exception as exc:
                if _connect_failure(exc) and attempt + 1 < attempts and \
                        deadline - anyio.current_time() > 0.1:
                    await anyio.sleep(min(0.1, deadline - anyio.current_time()))
                    continue
                if "timed out" in str(exc).lower() or type(exc).__name__.endswith("TimeoutError"):
                    with anyio.move_on_after(2.0, shield=True):
                        await self._cancel_remote(client, context_id, context)
                    raise AgentTimeoutError(f"{who}: no answer within {limit:g} s; its task "
                                            f"was asked to cancel") from None
                raise AgentUnavailableError(f"{who}: {self.binding} call failed: "
                                            f"{type(exc).__name__}: {exc}") from exc
        if last is None:
            raise AgentUnavailableError(f"{who}: the answer held no task and no message")
        return self._reply(last, who)

    def _reply(self, event: Any, who: str) -> AgentReply:
        if event.HasField("message"):
            msg = event.message
            return AgentReply(_text_of(msg.parts), "completed", msg.task_id, msg.context_id,
                              json_format.MessageToDict(msg.metadata))
        if not event.HasField("task"):
            raise AgentUnavailableError(f"{who}: the answer held no task and no message")
        task = event.task
        state = _state_name(task.status.state)
        metadata: dict[str, Any] = json_format.MessageToDict(task.metadata)
        texts = []
        for artifact in task.artifacts:
            texts.append(_text_of(artifact.parts))
            metadata.update(json_format.MessageToDict(artifact.metadata))
        if task.status.HasField("message"):
            metadata.update(json_format.MessageToDict(task.status.message.metadata))
            if not texts or state != "completed":
                texts = [_text_of(task.status.message.parts)] if state != "completed" else [
                    *texts, _text_of(task.status.message.parts)]
        return AgentReply("".join(texts), state, task.id, task.context_id, metadata)

    async def _cancel_remote(self, client: Any, context_id: str, context: Any) -> None:
        """Cancel every unfinished task of ``context_id`` (best effort)."""
        from a2a.types import CancelTaskRequest, ListTasksRequest

        try:
            listed = await client.list_tasks(ListTasksRequest(context_id=context_id),
                                             context=context)
            for task in listed.tasks:
                if _state_name(task.status.state) not in _TERMINAL:
                    await client.cancel_task(CancelTaskRequest(id=task.id), context=context)
        except Exception:  # noqa: BLE001 - the peer may be gone; the timeout is reported
            return

    async def fetch_card(self, url: str, *, etag: str | None = None,
                         timeout: float | None = None) -> CardFetch:
        """GET the agent card at ``url`` (``If-None-Match`` with ``etag``) and validate it
        with ``a2a-sdk``'s parser (A2A 1.0 cards, and 0.3 cards converted)."""
        from a2a.client.card_resolver import parse_agent_card

        headers = {"If-None-Match": etag} if etag else {}
        try:
            response = await self._http_client().get(
                url, headers=headers, timeout=timeout or self.config.timeout_seconds)
        except httpx.HTTPError as exc:
            raise AgentUnavailableError(f"agent card at {url}: {type(exc).__name__}: "
                                        f"{exc}") from exc
        if response.status_code == 304:
            return CardFetch(None, etag, not_modified=True)
        if response.status_code != 200:
            raise AgentUnavailableError(f"agent card at {url}: HTTP {response.status_code}")
        try:
            data = response.json()
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            card = parse_agent_card(data)
        except Exception as exc:  # noqa: BLE001 - any parse failure is an invalid card
            raise A2AError(f"agent card at {url} is not a valid A2A agent card: "
                           f"{type(exc).__name__}: {exc}") from None
        if not card.supported_interfaces:
            raise A2AError(f"agent card at {url} names no interface to call")
        return CardFetch(json_format.MessageToDict(card), response.headers.get("ETag"))

    # --- serving ------------------------------------------------------------------------

    async def serve(self, agent: Any, *, host: str = "127.0.0.1", port: int = 0,
                    **options: Any) -> Any:
        """Serve ``agent``: HTTP (JSON-RPC at ``/``, HTTP+JSON under ``/rest``, the card,
        SSE) for ``jsonrpc``/``http-json``; gRPC on ``port`` for ``grpc`` (plus HTTP on
        ``http_port`` for the card).  ``bearer_token=``/``api_key=`` protect every call."""
        from neuroflow_a2a.server import A2AServer

        if self.binding == "grpc":
            options = {**options, "grpc_port": port}
            port = int(options.pop("http_port", 0) or 0)
        server = A2AServer(agent, host=host, port=port, **options)
        await server.start()
        self._servers.append(server)
        return server

    async def aclose(self) -> None:
        """Close clients, the HTTP connection pool and servers started here."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing a broken channel must not raise
                pass
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


def jsonrpc_transport(config: TransportConfig | None = None) -> SdkTransport:
    """The ``jsonrpc`` transport."""
    return SdkTransport(config, "jsonrpc")


def http_json_transport(config: TransportConfig | None = None) -> SdkTransport:
    """The ``http-json`` transport."""
    return SdkTransport(config, "http-json")


def grpc_transport(config: TransportConfig | None = None) -> SdkTransport:
    """The ``grpc`` transport."""
    return SdkTransport(config, "grpc")
