"""The agent capability's built-in plugin: the ``openai`` and ``scripted`` LLM providers.

Cheap to import: the providers (and ``httpx``) load only when one is selected.
"""

from __future__ import annotations

from neuroflow import BackendSpec, hookimpl


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """Register the OpenAI-compatible provider (also as ``openai-compatible``) and ``scripted``."""
    openai = {
        "kind": "llm",
        "factory": "neuroflow.agent.openai:OpenAIProvider",
        "config_class": "neuroflow.agent.openai:OpenAIConfig",
    }
    return [
        BackendSpec(
            name="openai",
            description="any OpenAI-compatible /v1/chat/completions server "
            "(OpenAI, vLLM, Ollama, llama.cpp, LiteLLM)",
            **openai,
        ),
        BackendSpec(
            name="openai-compatible",
            description="alias of 'openai'",
            **openai,
        ),
        BackendSpec(
            name="scripted",
            kind="llm",
            factory="neuroflow.agent.scripted:ScriptedProvider",
            config_class="neuroflow.agent.scripted:ScriptedConfig",
            description="replays a script of replies and tool calls (not a real model)",
        ),
    ]
