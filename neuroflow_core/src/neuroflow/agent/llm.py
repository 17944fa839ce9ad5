"""What an LLM provider is: :class:`LLMConfig`, :class:`Completion`, :class:`LLMProvider`.

Conversations are lists of chat messages in the OpenAI chat-completions shape, the
lingua franca of model servers (OpenAI, vLLM, Ollama, llama.cpp server, LiteLLM)::

    {"role": "system" | "user", "content": "..."}
    {"role": "assistant", "content": "..." | None,
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "research", "arguments": "{\\"topic\\": \\"AI\\"}"}}]}
    {"role": "tool", "tool_call_id": "call_1", "content": "..."}

Tools are handed over as OpenAI function-tool descriptions
(``{"type": "function", "function": {"name", "description", "parameters"}}``).
A provider for another API translates both at its edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from neuroflow.errors import ConfigError

Message = Mapping[str, Any]
ToolDescription = Mapping[str, Any]


@attrs.frozen
class LLMConfig:
    """Which model an agent talks to, set in code (``LLMConfig(provider="openai", model="gpt-4")``).

    Fields left at ``None`` fall back to the provider's ``[llm.<provider>]`` configuration
    section, then to its environment variables (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``),
    then to its defaults.

    Attributes:
        provider: the LLM provider backend name (``"openai"``, ``"scripted"``, a plugin's).
        model: the model name the server knows (``"gpt-4o"``, ``"llama3.1"``).
        base_url: the API root, e.g. ``"http://localhost:11434/v1"`` for Ollama.
        api_key: the API key; never shown by ``repr``.
        temperature: sampling temperature, or ``None`` for the server's default.
        max_tokens: a cap on the reply length, or ``None``.
        timeout_seconds: how long one request may take.
        max_retries: how often a request is retried on 429, 5xx and connection errors.
        extra: further provider options, by the provider config's field names
            (``{"script": [...]}`` for the scripted provider, ``{"headers": {...}}`` for openai).
    """

    provider: str = attrs.field(validator=attrs.validators.instance_of(str))
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_seconds: float | None = None
    max_retries: int | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ToolCall:
    """A tool call the model asked for.

    Attributes:
        id: the call id the tool's reply must quote (``tool_call_id``).
        name: the tool's name.
        arguments: the decoded arguments, or ``None`` when they could not be decoded.
        arguments_error: why the arguments could not be decoded (bad JSON, not an object).
        raw_arguments: the arguments exactly as the model sent them.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] | None = None
    arguments_error: str | None = None
    raw_arguments: str = ""


@attrs.frozen
class Completion:
    """One model reply.

    Attributes:
        text: the reply text (``None`` when the model only called tools).
        tool_calls: the tool calls it asked for, in order.
        usage: token counts as the server reported them (``prompt_tokens``, ...).
        model: the model that answered, as the server named it.
        raw: the decoded response body, for debugging.
    """

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Mapping[str, int] = attrs.field(factory=dict)
    model: str = ""
    raw: Any = None


def _overrides(llm_config: LLMConfig, config_class: type | None) -> dict[str, Any]:
    """The provider options an :class:`LLMConfig` sets (fields it leaves ``None`` are not)."""
    names = {a.name for a in attrs.fields(config_class)} if config_class is not None else set()
    wanted: dict[str, Any] = {}
    for field in ("model", "base_url", "api_key", "temperature", "max_tokens",
                  "timeout_seconds", "max_retries"):
        value = getattr(llm_config, field)
        if value is not None and field in names:
            wanted[field] = value
    for key, value in llm_config.extra.items():
        if key not in names:
            raise ConfigError(
                f"LLMConfig.extra: {key!r} is not an option of the {llm_config.provider!r} "
                f"provider (its options: {', '.join(sorted(names)) or 'none'})"
            )
        wanted[key] = value
    return wanted


def create_provider(llm_config: LLMConfig | None = None) -> Any:
    """Build the provider an :class:`LLMConfig` names (or the configured one for ``None``).

    The provider's config object starts from its ``[llm.<provider>]`` section (or its
    defaults) and takes every field the :class:`LLMConfig` sets on top.

    Raises:
        BackendNotFoundError: no installed plugin provides that provider.
        ConfigError: an option has the wrong type or is unknown to the provider.
    """
    from neuroflow.backends import BackendKind, backend_config_class, create_backend

    if llm_config is None:
        return create_backend(BackendKind.LLM)
    config_class = backend_config_class(BackendKind.LLM, llm_config.provider,
                                        field="LLMConfig.provider")
    return create_backend(BackendKind.LLM, llm_config.provider,
                          overrides=_overrides(llm_config, config_class),
                          field="LLMConfig.provider")
