"""The ``openai`` LLM provider: any OpenAI-compatible ``/v1/chat/completions`` server.

Works with OpenAI, vLLM, Ollama (``http://localhost:11434/v1``), the llama.cpp server,
LiteLLM proxies and anything else that speaks chat completions with ``tools`` and
``tool_calls``.  Settings come from, in order: :class:`~neuroflow.agent.LLMConfig` fields,
``[llm.openai]`` in the configuration, the ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` /
``OPENAI_MODEL`` environment variables, and the defaults below.

Requests that fail with 429, 5xx, a timeout or a connection error are retried with
exponential backoff and jitter (a ``Retry-After`` header is respected); 401/403 and
malformed responses raise :class:`~neuroflow.errors.AgentError` at once with a message
saying what to fix.  ``httpx`` is imported only when the provider is built.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs

from neuroflow.agent.llm import Completion, Message, ToolCall, ToolDescription
from neuroflow.errors import AgentError

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@attrs.frozen
class OpenAIConfig:
    """``[llm.openai]``: an OpenAI-compatible chat-completions server.

    Attributes:
        model: the model name (required; falls back to ``OPENAI_MODEL``).
        base_url: the API root including ``/v1`` (falls back to ``OPENAI_BASE_URL``, then
            ``https://api.openai.com/v1``).
        api_key: the key sent as ``Authorization: Bearer`` (falls back to
            ``OPENAI_API_KEY``; local servers usually need none).  Never shown by ``repr``.
        temperature: sampling temperature, or ``None`` for the server's default.
        max_tokens: a cap on the reply length, or ``None``.
        timeout_seconds: how long one HTTP request may take, end to end.
        max_retries: retries after the first attempt on 429, 5xx, timeouts and
            connection errors.
        backoff_seconds: the first retry's delay; it doubles each retry (with jitter).
        max_backoff_seconds: the longest delay between retries (``Retry-After`` included).
        headers: extra HTTP headers (e.g. for a proxy).
        extra_body: extra fields merged into every request body (server-specific options).
    """

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_seconds: float = 60.0
    max_retries: int = 3
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    headers: dict[str, str] = attrs.field(factory=dict)
    extra_body: dict[str, Any] = attrs.field(factory=dict)


def retry_delay(attempt: int, retry_after: str | None, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    A ``Retry-After`` header (seconds or an HTTP date) wins; otherwise exponential backoff
    ``base * 2**(attempt-1)`` with "equal jitter" (between half and all of it).  Never more
    than ``cap``.
    """
    if retry_after:
        try:
            seconds = float(retry_after)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
                seconds = when.timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = -1.0
        if seconds >= 0:
            return min(seconds, cap)
    backoff = min(cap, base * (2 ** (attempt - 1)))
    return backoff / 2 + random.random() * backoff / 2


def _field(data: Any, path: str, url: str) -> Any:
    node = data
    walked = []
    for part in path.split("."):
        walked.append(part)
        if part.isdigit():
            if not isinstance(node, list) or len(node) <= int(part):
                raise AgentError(
                    f"malformed response from {url}: missing field {'.'.join(walked)!r}"
                )
            node = node[int(part)]
        else:
            if not isinstance(node, Mapping) or part not in node:
                raise AgentError(
                    f"malformed response from {url}: missing field {'.'.join(walked)!r}"
                )
            node = node[part]
    return node


def _tool_call(raw: Any, index: int, url: str) -> ToolCall:
    where = f"choices.0.message.tool_calls.{index}"
    if not isinstance(raw, Mapping):
        raise AgentError(f"malformed response from {url}: {where} is not an object")
    function = _field(raw, "function", url)
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or not name:
        raise AgentError(f"malformed response from {url}: missing field {where}.function.name")
    arguments = function.get("arguments", "{}")
    if isinstance(arguments, Mapping):  # some servers send an object, not a JSON string
        return ToolCall(str(raw.get("id") or ""), name, dict(arguments), None,
                        json.dumps(arguments))
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    try:
        decoded = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        return ToolCall(str(raw.get("id") or ""), name, None,
                        f"not valid JSON ({exc.msg} at position {exc.pos}): {text[:200]!r}", text)
    if not isinstance(decoded, Mapping):
        return ToolCall(str(raw.get("id") or ""), name, None,
                        f"expected a JSON object, got {text[:200]!r}", text)
    return ToolCall(str(raw.get("id") or ""), name, dict(decoded), None, text)


def parse_completion(data: Any, url: str) -> Completion:
    """Turn a decoded ``/chat/completions`` body into a :class:`Completion`."""
    message = _field(data, "choices.0.message", url)
    if not isinstance(message, Mapping):
        raise AgentError(f"malformed response from {url}: choices.0.message is not an object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        # some servers send content parts: [{"type": "text", "text": ...}]
        if isinstance(content, list):
            content = "".join(
                p.get("text", "") for p in content if isinstance(p, Mapping)
            )
        else:
            raise AgentError(
                f"malformed response from {url}: choices.0.message.content is "
                f"{type(content).__name__}, expected a string"
            )
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise AgentError(f"malformed response from {url}: choices.0.message.tool_calls "
                         "is not a list")
    calls = tuple(_tool_call(raw, i, url) for i, raw in enumerate(raw_calls))
    usage = data.get("usage") if isinstance(data.get("usage"), Mapping) else {}
    return Completion(
        text=content,
        tool_calls=calls,
        usage={k: v for k, v in usage.items() if isinstance(v, int)},
        model=str(data.get("model") or ""),
        raw=data,
    )


def _error_detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return json.dumps(body)[:300]


class OpenAIProvider:
    """An OpenAI-compatible chat-completions client (see the module docstring).

    One ``httpx.AsyncClient`` is kept per event loop and reused; :meth:`aclose`
    closes it.

    Raises:
        AgentError: no model is configured, or the ``httpx`` package is missing.
    """

    def __init__(self, config: OpenAIConfig | None = None) -> None:
        config = config or OpenAIConfig()
        try:
            import httpx
        except ImportError:
            raise AgentError(
                "the 'openai' LLM provider needs httpx: pip install 'httpx>=0.27'"
            ) from None
        self._httpx = httpx
        model = config.model or os.environ.get("OPENAI_MODEL")
        if not model:
            raise AgentError(
                "the 'openai' LLM provider needs a model: LLMConfig(model=...), "
                "llm.openai.model in neuroflow.toml, or OPENAI_MODEL"
            )
        base_url = (config.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.url = (
            self.base_url if self.base_url.endswith("/chat/completions")
            else f"{self.base_url}/chat/completions"
        )
        self._api_key = config.api_key or os.environ.get("OPENAI_API_KEY") or None
        self.config = config
        self._client: Any = None
        self._client_loop: object = None

    def __repr__(self) -> str:
        return f"OpenAIProvider(model={self.model!r}, url={self.url!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.config.headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _body(self, messages: Sequence[Message], tools: Sequence[ToolDescription]) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        if tools:
            body["tools"] = [dict(t) for t in tools]
            body["tool_choice"] = "auto"
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        body.update(self.config.extra_body)
        return body

    def _get_client(self) -> Any:
        loop = _current_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self._httpx.AsyncClient(
                timeout=self._httpx.Timeout(self.config.timeout_seconds)
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client of the current event loop (if any)."""
        client, self._client = self._client, None
        if client is not None and self._client_loop is _current_loop():
            await client.aclose()

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[ToolDescription]
    ) -> Completion:
        """POST the conversation to ``/chat/completions`` and parse the reply."""
        if self._api_key is None and self.base_url == DEFAULT_BASE_URL:
            raise AgentError(
                "the 'openai' LLM provider has no API key for api.openai.com: set "
                "OPENAI_API_KEY or llm.openai.api_key (or base_url for a local server)"
            )
        httpx = self._httpx
        client = self._get_client()
        body = self._body(messages, tools)
        attempts = self.config.max_retries + 1
        last = ""
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                # httpx's timeout bounds each phase; this bounds the whole request
                with anyio.fail_after(self.config.timeout_seconds):
                    response = await client.post(self.url, json=body, headers=self._headers())
            except (httpx.TimeoutException, TimeoutError):
                last = f"no reply within timeout_seconds={self.config.timeout_seconds:g}"
            except httpx.TransportError as exc:
                last = f"cannot reach {self.url}: {type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 200:
                    try:
                        data = response.json()
                    except ValueError:
                        raise AgentError(
                            f"malformed response from {self.url}: the body is not JSON: "
                            f"{response.text[:200]!r}"
                        ) from None
                    if not isinstance(data, Mapping):
                        raise AgentError(
                            f"malformed response from {self.url}: expected a JSON object, "
                            f"got {type(data).__name__}"
                        )
                    return parse_completion(data, self.url)
                detail = _error_detail(response)
                if status in (401, 403):
                    raise AgentError(
                        f"{self.url} refused the credentials (HTTP {status}: {detail}); "
                        "check OPENAI_API_KEY / llm.openai.api_key"
                    )
                if status != 429 and status < 500:
                    hint = ""
                    if status == 404:
                        hint = " (does base_url end with /v1? is the model name right?)"
                    raise AgentError(f"{self.url} answered HTTP {status}: {detail}{hint}")
                last = f"HTTP {status}: {detail}"
                retry_after = response.headers.get("retry-after")
            if attempt < attempts:
                await anyio.sleep(retry_delay(attempt, retry_after, self.config.backoff_seconds,
                                              self.config.max_backoff_seconds))
        raise AgentError(
            f"the 'openai' LLM provider gave up on {self.url} after {attempts} attempt(s) "
            f"(max_retries={self.config.max_retries}): {last}"
        )


def _current_loop() -> object:
    import sniffio

    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        return trio.lowlevel.current_trio_token()
    import asyncio

    return asyncio.get_running_loop()
