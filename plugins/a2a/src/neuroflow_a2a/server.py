"""Serve a NeuroFlow agent as an A2A 1.0 server on ``a2a-sdk``.

One HTTP server (uvicorn + Starlette) carries JSON-RPC at ``/`` (A2A 1.0 ``SendMessage``
with ``A2A-Version: 1.0``, and 0.3's ``message/send`` through the SDK's compatibility
layer), HTTP+JSON under ``/rest``, SSE streaming (``SendStreamingMessage``) and the agent
card at ``/.well-known/agent-card.json`` (with an ``ETag``).  With ``grpc_port`` a gRPC
server runs beside it.  Tasks go ``submitted -> working -> completed`` (or ``failed``,
``rejected`` for a refused budget, ``canceled`` by ``CancelTask``).  With a bearer token or
API key, every call but the card's is refused without one (HTTP 401, gRPC
``UNAUTHENTICATED``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format

from neuroflow.a2a import AgentTimeoutError, CollaborationRefused, ServedAgent
from neuroflow_a2a.grpc_support import grpc_module

log = logging.getLogger("neuroflow.a2a.server")

CARD_PATH = "/.well-known/agent-card.json"
PUBLIC_PATHS = frozenset({CARD_PATH, "/.well-known/agent.json"})


def _executor_class() -> type:
    from a2a.server.agent_execution import AgentExecutor

    class ServedAgentExecutor(AgentExecutor):
        """Runs a :class:`ServedAgent` for each task."""

        def __init__(self, served: ServedAgent) -> None:
            self.served = served

        async def execute(self, context: Any, event_queue: Any) -> None:
            from a2a.server.tasks import TaskUpdater
            from a2a.types import Part, Task, TaskState, TaskStatus

            message = context.message
            task_id, context_id = context.task_id, context.context_id
            await event_queue.enqueue_event(Task(
                id=task_id, context_id=context_id,
                status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED), history=[message]))
            updater = TaskUpdater(event_queue=event_queue, task_id=task_id,
                                  context_id=context_id)

            def say(text: str) -> Any:
                return updater.new_agent_message(parts=[Part(text=text)])

            metadata = dict(context.metadata or {})
            metadata.update(json_format.MessageToDict(message.metadata))
            await updater.start_work()
            try:
                reply = await self.served.run(context.get_user_input(), metadata)
            except CollaborationRefused as exc:
                await updater.reject(say(str(exc)))
                return
            except AgentTimeoutError as exc:
                await updater.failed(say(str(exc)))
                return
            except Exception as exc:
                log.warning("agent %s failed a task", self.served.id, exc_info=True)
                await updater.failed(say(f"{self.served.id} failed: {type(exc).__name__}: "
                                         f"{exc}"))
                return
            await updater.add_artifact([Part(text=reply.text)], name="response",
                                       metadata=dict(reply.metadata) or None, last_chunk=True)
            await updater.complete()

        async def cancel(self, context: Any, event_queue: Any) -> None:
            from a2a.server.tasks import TaskUpdater

            updater = TaskUpdater(event_queue=event_queue, task_id=context.task_id or "",
                                  context_id=context.context_id or "")
            await updater.cancel()

    return ServedAgentExecutor


class _HttpAuth:
    """ASGI middleware: every request but the card's needs a known bearer token or API key."""

    def __init__(self, app: Any, tokens: Iterable[str], keys: Iterable[str]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]
        self.keys = [k.encode() for k in keys]

    def _ok(self, headers: dict[bytes, bytes]) -> bool:
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer " and any(
                hmac.compare_digest(auth[7:].strip(), t) for t in self.tokens):
            return True
        key = headers.get(b"x-api-key", b"")
        return bool(key) and any(hmac.compare_digest(key, k) for k in self.keys)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or self._ok(
                dict(scope["headers"])):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "unauthenticated: send 'Authorization: Bearer <token>' "
                                    "or 'X-API-Key: <key>'"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _grpc_auth(tokens: list[str], keys: list[str]) -> Any:
    grpc = grpc_module()

    class Interceptor(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            metadata = dict(details.invocation_metadata or ())
            auth = str(metadata.get("authorization", ""))
            key = str(metadata.get("x-api-key", ""))
            if (auth[:7].lower() == "bearer " and any(
                    hmac.compare_digest(auth[7:].strip(), t) for t in tokens)) or (
                    key and any(hmac.compare_digest(key, k) for k in keys)):
                return await continuation(details)

            async def deny(_request: Any, context: Any) -> Any:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                    "send 'authorization: Bearer <token>' or 'x-api-key'")

            return grpc.unary_unary_rpc_method_handler(deny)

    return Interceptor()


class A2AServer:
    """A running A2A server for one agent (an async context manager).

    Args:
        agent: what answers.
        host, port: where HTTP listens (``port=0``: any free port).
        grpc_port: serve gRPC too, on this port (``0``: any free port).
        bearer_token, api_key: credentials callers must send (either one).
        public_host: the host name the card advertises (default ``host``).
    """

    def __init__(self, agent: ServedAgent, *, host: str = "127.0.0.1", port: int = 0,
                 grpc_port: int | None = None, bearer_token: str | None = None,
                 api_key: str | None = None, public_host: str | None = None,
                 endpoint: str | None = None) -> None:
        self.agent = agent
        self.host = host
        self.port = port
        self.grpc_port = grpc_port
        self.tokens = [bearer_token] if bearer_token else []
        self.keys = [api_key] if api_key else []
        self.public_host = public_host or host
        self._uvicorn: Any = None
        self._task: asyncio.Task[Any] | None = None
        self._grpc: Any = None
        self.card: Any = None

    @property
    def url(self) -> str:
        """The base URL (JSON-RPC endpoint)."""
        return f"http://{self.public_host}:{self.port}"

    @property
    def card_url(self) -> str:
        """Where the agent card is."""
        return self.url + CARD_PATH

    @property
    def grpc_url(self) -> str | None:
        """``grpc://host:port`` when gRPC is served."""
        return None if self.grpc_port is None else f"grpc://{self.public_host}:{self.grpc_port}"

    def _card_dict(self) -> dict[str, Any]:
        card = self.agent.card(self.url + "/", "JSONRPC")
        interfaces = [
            {"url": self.url + "/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": self.url + "/rest", "protocolBinding": "HTTP+JSON",
             "protocolVersion": "1.0"},
            {"url": self.url + "/", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ]
        if self.grpc_port is not None:
            interfaces.insert(2, {"url": f"{self.public_host}:{self.grpc_port}",
                                  "protocolBinding": "GRPC", "protocolVersion": "1.0"})
        card["supportedInterfaces"] = interfaces
        schemes: dict[str, Any] = {}
        if self.tokens:
            schemes["bearer"] = {"httpAuthSecurityScheme": {"scheme": "Bearer"}}
        if self.keys:
            schemes["apiKey"] = {"apiKeySecurityScheme": {"location": "header",
                                                          "name": "X-API-Key"}}
        if schemes:
            card["securitySchemes"] = schemes
            card["securityRequirements"] = [{"schemes": {name: {"list": []}}}
                                            for name in schemes]
        return card

    async def start(self) -> None:
        """Bind the ports, build the card and the handlers, and start serving.

        Raises:
            A2AError: not running under asyncio (uvicorn and a2a-sdk's server need it).
        """
        import sniffio

        if sniffio.current_async_library() != "asyncio":
            from neuroflow.a2a import A2AError

            raise A2AError("serving A2A needs asyncio (uvicorn, a2a-sdk's server); run "
                           "the server under asyncio, or in its own process "
                           "(neuroflow a2a serve)")
        import uvicorn
        from a2a.server.request_handlers import DefaultRequestHandler
        from a2a.server.routes import (
            create_agent_card_routes,
            create_jsonrpc_routes,
            create_rest_routes,
        )
        from a2a.server.tasks import InMemoryTaskStore
        from a2a.types import AgentCard
        from starlette.applications import Starlette

        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it a response's header and body
        # segments meet delayed ACKs and every call costs ~40 ms more on loopback.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot listen on {self.host}:{self.port}: "
                                     f"{exc.strerror}") from None
        self.port = sock.getsockname()[1]
        grpc_server = None
        if self.grpc_port is not None:
            grpc = grpc_module()
            interceptors = [_grpc_auth(self.tokens, self.keys)] if (
                self.tokens or self.keys) else []
            grpc_server = grpc.aio.server(interceptors=interceptors)
            self.grpc_port = grpc_server.add_insecure_port(f"{self.host}:{self.grpc_port}")
        self.card = json_format.ParseDict(self._card_dict(), AgentCard())
        handler = DefaultRequestHandler(agent_executor=_executor_class()(self.agent),
                                        task_store=InMemoryTaskStore(), agent_card=self.card)
        routes = [*create_agent_card_routes(agent_card=self.card),
                  *create_jsonrpc_routes(request_handler=handler, rpc_url="/",
                                         enable_v0_3_compat=True),
                  *create_rest_routes(request_handler=handler, path_prefix="/rest",
                                      enable_v0_3_compat=True)]
        app: Any = Starlette(routes=routes)
        if self.tokens or self.keys:
            app = _HttpAuth(app, self.tokens, self.keys)
        if grpc_server is not None:
            from a2a.server.request_handlers import GrpcHandler
            from a2a.types import a2a_pb2_grpc

            a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), grpc_server)
            await grpc_server.start()
            self._grpc = grpc_server
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.install_signal_handlers = lambda: None  # the caller owns signals
        self._task = asyncio.get_running_loop().create_task(self._uvicorn.serve(sockets=[sock]))
        while not self._uvicorn.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.005)

    async def aclose(self) -> None:
        """Stop both servers (requests in flight get a second to finish)."""
        if self._uvicorn is not None and self._task is not None:
            self._uvicorn.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._uvicorn = self._task = None
        if self._grpc is not None:
            await self._grpc.stop(1)
            self._grpc = None

    async def __aenter__(self) -> A2AServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
