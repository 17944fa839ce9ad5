"""Fixtures for the agent tests: a real OpenAI-compatible HTTP server on loopback.

The server speaks the ``/v1/chat/completions`` wire format, tool calls included.  A
test queues the replies it wants (``server.replies.append(...)``); with the queue empty
the server plays a tiny deterministic "model": asked a question with tools on offer, it
calls the first tool with the question as its first required argument; given a tool
result, it answers with it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest


@attrs.define
class Reply:
    """One queued response.

    Attributes:
        body: a dict (sent as JSON) or raw bytes.
        status: the HTTP status.
        headers: extra response headers.
        wait: an event the handler waits on before answering (a slow server).
    """

    body: Any = None
    status: int = 200
    headers: dict[str, str] = attrs.Factory(dict)
    wait: threading.Event | None = None


def completion(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    model: str = "local-test-model",
) -> dict[str, Any]:
    """A chat-completions response body as OpenAI sends it."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": "tool_calls" if tool_calls else "stop",
        }],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    """One entry of ``message.tool_calls``; ``arguments`` is sent as given if a string."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def default_model(request: Mapping[str, Any]) -> dict[str, Any]:
    """The server's built-in behaviour when no reply is queued."""
    messages = request["messages"]
    last = messages[-1]
    tools = request.get("tools") or []
    if last["role"] == "user" and tools:
        function = tools[0]["function"]
        params = function["parameters"]
        first = (params.get("required") or list(params.get("properties", {})))[0]
        n = sum(1 for m in messages if m["role"] == "assistant")
        return completion(None, [tool_call(f"call_{n}", function["name"],
                                           {first: last["content"]})])
    if last["role"] == "tool":
        return completion(f"Here is what I found: {last['content']}")
    return completion(f"You said: {last['content']}")


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 with an ephemeral port, in a thread."""

    Reply = Reply
    completion = staticmethod(completion)
    tool_call = staticmethod(tool_call)

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.events: list[threading.Event] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                reply = server.replies.pop(0) if server.replies else Reply(default_model(body))
                if reply.wait is not None:
                    reply.wait.wait(10)
                payload = (
                    reply.body if isinstance(reply.body, bytes)
                    else json.dumps(reply.body).encode()
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (timeout tests)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def slow(self) -> Reply:
        """A reply that waits until the test ends."""
        event = threading.Event()
        self.events.append(event)
        return Reply(completion("too late"), wait=event)


@pytest.fixture(autouse=True)
def _no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's OPENAI_* variables must not reach the tests."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A running :class:`FakeOpenAIServer`, shut down after the test."""
    server = FakeOpenAIServer()
    server.thread.start()
    yield server
    for event in server.events:
        event.set()
    server.httpd.shutdown()
    server.httpd.server_close()
    server.thread.join(5)
