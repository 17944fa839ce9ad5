"""The agent runtime: :class:`AINativeAgent`, its tools, the tool loop and LLM providers.

Quick start (offline, with the scripted provider)::

    from neuroflow.agent import AINativeAgent, LLMConfig

    agent = AINativeAgent("helper", LLMConfig(provider="scripted", extra={"script": [
        {"tool": "add", "arguments": {"a": 2, "b": 3}},
        "The sum is {last_tool_result}.",
    ]}))

    @agent.tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.\"\"\"
        return a + b

    result = await agent.handle("What is 2 + 3?")
    result["response"]   # 'The sum is 5.'

Names are imported lazily so the plugin module ``neuroflow.agent.builtin`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "AINativeAgent": "neuroflow.agent.runtime",
    "CodeMode": "neuroflow.agent.codemode",
    "CodeRun": "neuroflow.agent.codemode",
    "LLMConfig": "neuroflow.agent.llm",
    "LLMProvider": "neuroflow.agent.protocol",
    "Completion": "neuroflow.agent.llm",
    "ToolCall": "neuroflow.agent.llm",
    "create_provider": "neuroflow.agent.llm",
    "Tool": "neuroflow.agent.tools",
    "describe_tool": "neuroflow.agent.tools",
    "SessionStore": "neuroflow.agent.sessions",
    "ScriptedProvider": "neuroflow.agent.scripted",
    "ScriptedConfig": "neuroflow.agent.scripted",
    "OpenAIProvider": "neuroflow.agent.openai",
    "OpenAIConfig": "neuroflow.agent.openai",
}

if TYPE_CHECKING:
    from neuroflow.agent.codemode import CodeMode, CodeRun
    from neuroflow.agent.llm import Completion, LLMConfig, ToolCall, create_provider
    from neuroflow.agent.openai import OpenAIConfig, OpenAIProvider
    from neuroflow.agent.protocol import LLMProvider
    from neuroflow.agent.runtime import AINativeAgent
    from neuroflow.agent.scripted import ScriptedConfig, ScriptedProvider
    from neuroflow.agent.sessions import SessionStore
    from neuroflow.agent.tools import Tool, describe_tool


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "AINativeAgent",
    "CodeMode",
    "CodeRun",
    "Completion",
    "LLMConfig",
    "LLMProvider",
    "OpenAIConfig",
    "OpenAIProvider",
    "ScriptedConfig",
    "ScriptedProvider",
    "SessionStore",
    "Tool",
    "ToolCall",
    "create_provider",
    "describe_tool",
]
