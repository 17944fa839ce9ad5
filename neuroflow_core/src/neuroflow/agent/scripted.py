"""The ``scripted`` LLM provider: follows a script, for offline runs, demos and tests.

It is **not a model**: it replays the steps it was given, says so in a warning the first
time it answers, and names itself ``"scripted (not a real model)"`` in every completion.

A script is a list of steps (in Python, or a JSON file: ``[llm.scripted] script = "s.json"``).
Each step is one model reply:

* ``"text"`` or ``{"text": "..."}``: a final answer;
* ``{"tool": "research", "arguments": {"topic": "AI"}}``: one tool call;
* ``{"tool_calls": [{"name": ..., "arguments": {...}}, ...], "text": "optional"}``: several.

Strings in a step may use ``{last_tool_result}`` (the content of the latest tool reply),
``{last_user_message}`` and ``{tool_results}`` (every tool reply of this turn, one a line).
The step to play is the number of assistant replies already in the conversation, so
each new session starts at the first step and a continued session picks up where it
stopped; with ``loop = true`` the script starts over when it runs out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from neuroflow.agent.llm import Completion, Message, ToolCall, ToolDescription
from neuroflow.errors import ConfigError

MODEL_NAME = "scripted (not a real model)"

log = logging.getLogger("neuroflow.agent.scripted")


def _script_validator(_obj: Any, _attr: Any, value: Any) -> None:
    if value is not None and not isinstance(value, (str, list, tuple)):
        raise TypeError(
            f"expected a list of steps or the path of a JSON file, got {value!r}"
        )


@attrs.frozen
class ScriptedConfig:
    """``[llm.scripted]``: the script to follow.

    Attributes:
        script: the steps: a list, or the path of a JSON file holding the list (relative
            to the working directory).
        loop: start over when the script runs out, instead of saying it ran out.
        model: ignored apart from being shown; the provider always reports
            ``"scripted (not a real model)"``.
    """

    script: Any = attrs.field(default=None, validator=_script_validator)
    loop: bool = False
    model: str | None = None


def _load_steps(config: ScriptedConfig) -> list[Any]:
    if config.script is None:
        return []
    if isinstance(config.script, (list, tuple)):
        return list(config.script)
    path = Path(config.script)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"llm.scripted.script: cannot read {str(path)!r}: {exc.strerror}"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"llm.scripted.script: {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ConfigError(
            f"llm.scripted.script: {str(path)!r} must hold a JSON list of steps, "
            f"got {type(data).__name__}"
        )
    return data


def _check_step(step: Any, index: int) -> None:
    where = f"llm.scripted step {index}"
    if isinstance(step, str):
        return
    if not isinstance(step, Mapping):
        raise ConfigError(f"{where}: expected a string or a table, got {step!r}")
    unknown = set(step) - {"text", "tool", "arguments", "tool_calls"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)} (known: text, tool, arguments, tool_calls)"
        )
    calls = step.get("tool_calls", [])
    if "tool" in step:
        calls = [*calls, {"name": step["tool"], "arguments": step.get("arguments", {})}]
    if not isinstance(calls, list):
        raise ConfigError(f"{where}.tool_calls: expected a list, got {calls!r}")
    for i, call in enumerate(calls):
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
            raise ConfigError(
                f"{where}.tool_calls[{i}]: expected {{name, arguments}}, got {call!r}"
            )
        if not isinstance(call.get("arguments", {}), Mapping):
            raise ConfigError(f"{where}.tool_calls[{i}].arguments: expected a table")
    if not calls and not isinstance(step.get("text"), str):
        raise ConfigError(f"{where}: needs 'text' or a tool call")


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for key, text in values.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, Mapping):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


class ScriptedProvider:
    """Replays a script of replies and tool calls; see the module docstring.

    Args:
        config: a :class:`ScriptedConfig`, or ``None`` for an empty script.
        steps: the steps, as a shortcut for ``ScriptedConfig(script=[...])``.
    """

    def __init__(
        self, config: ScriptedConfig | None = None, *, steps: Sequence[Any] | None = None
    ) -> None:
        if config is None:
            config = ScriptedConfig(script=list(steps or ()))
        elif steps is not None:
            config = attrs.evolve(config, script=list(steps))
        self.config = config
        self.steps = _load_steps(config)
        for index, step in enumerate(self.steps):
            _check_step(step, index)
        self._warned = False

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[ToolDescription]
    ) -> Completion:
        """Return the next step of the script as a completion."""
        if not self._warned:
            self._warned = True
            log.warning(
                "the 'scripted' LLM provider is answering: replies come from a script "
                "(%d steps), not from a real model", len(self.steps)
            )
        index = sum(1 for m in messages if m.get("role") == "assistant")
        if self.steps and self.config.loop:
            index %= len(self.steps)
        raw = {"scripted": True, "step": index, "steps": len(self.steps)}
        if index >= len(self.steps):
            text = (
                f"[scripted model] the script has run out: it has {len(self.steps)} step(s) "
                f"and this is reply {index + 1}. This is not a real model; configure one "
                "with [llm] backend = \"openai\" or give the script more steps."
            )
            return Completion(text=text, model=MODEL_NAME, raw=raw)
        step = _fill(self.steps[index], self._values(messages))
        if isinstance(step, str):
            return Completion(text=step, model=MODEL_NAME, raw=raw)
        calls = list(step.get("tool_calls", []))
        if "tool" in step:
            calls.append({"name": step["tool"], "arguments": step.get("arguments", {})})
        tool_calls = tuple(
            ToolCall(
                id=f"scripted_{index}_{i}",
                name=call["name"],
                arguments=dict(call.get("arguments", {})),
                raw_arguments=json.dumps(call.get("arguments", {})),
            )
            for i, call in enumerate(calls)
        )
        return Completion(text=step.get("text"), tool_calls=tool_calls, model=MODEL_NAME, raw=raw)

    @staticmethod
    def _values(messages: Sequence[Message]) -> dict[str, str]:
        last_user = 0
        for i, m in enumerate(messages):
            if m.get("role") == "user":
                last_user = i
        tool_replies = [
            str(m.get("content", "")) for m in messages[last_user:] if m.get("role") == "tool"
        ]
        return {
            "last_tool_result": tool_replies[-1] if tool_replies else "",
            "tool_results": "\n".join(tool_replies),
            "last_user_message": str(messages[last_user].get("content", "")) if messages else "",
        }
