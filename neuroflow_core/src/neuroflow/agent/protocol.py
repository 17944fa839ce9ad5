"""The agent capability's roles: what an LLM provider backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from neuroflow.agent.llm import Completion, Message, ToolDescription


@runtime_checkable
class LLMProvider(Protocol):
    """What an LLM provider backend must implement."""

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[ToolDescription]
    ) -> Completion:
        """Return the model's next reply to ``messages``, offering it ``tools``.

        Raises:
            AgentError: the provider failed (auth, unreachable server, malformed reply).
        """
        ...
