"""The ``tools`` guard: which agent may call which tool.

``[security.tools]``::

    [[security.tools.rules]]
    name = "no-shell-for-readers"
    effect = "deny"
    agent = "reader-*"
    tool = "shell"
    examples = [{actor = "reader-1", target = "shell", expect = "deny"},
                {actor = "writer", target = "shell", expect = "abstain"}]

    [[security.tools.rules]]
    name = "researcher-tools"
    effect = "allow"
    agent = "researcher"
    tool = "research*"

Rules match the action's actor (``agent``, a glob) and target (``tool``, a glob) for
``tool`` actions, ``mcp_tool`` actions (target ``"server/tool"``) and, if listed in
``kinds``, ``delegate`` actions (target = the other agent).  Deny overrides allow.
"""

from __future__ import annotations

import re

import attrs

from neuroflow.security.model import Action, ActionContext, ActionKind, Verdict
from neuroflow.security.rules import (
    Effect,
    RuleExample,
    check_examples,
    compile_globs,
    enum_converter,
    enum_tuple_converter,
)


@attrs.frozen
class ToolRule:
    """A named rule: agents matching ``agent`` may (not) call tools matching ``tool``.

    Attributes:
        name: the rule's name, shown in verdicts and the audit log.
        effect: ``"allow"`` or ``"deny"``.
        agent: the agent-id glob.
        tool: the tool-name glob (``"server/*"`` for every tool of an MCP server).
        kinds: the action kinds it covers.
        examples: actions with the verdict this rule must produce.
    """

    name: str
    effect: Effect = attrs.field(converter=enum_converter(Effect, "effect"))
    agent: str = "*"
    tool: str = "*"
    kinds: tuple[ActionKind, ...] = attrs.field(
        default=(ActionKind.TOOL, ActionKind.MCP_TOOL),
        converter=enum_tuple_converter(ActionKind, "kinds"))
    examples: tuple[RuleExample, ...] = ()


@attrs.frozen
class ToolsConfig:
    """``[security.tools]``: per-agent tool permissions.

    Attributes:
        rules: the rules, in any order (deny overrides allow).
    """

    rules: tuple[ToolRule, ...] = ()

    def __attrs_post_init__(self) -> None:
        ToolsGuard(self)


class _Rule:
    __slots__ = ("agent", "kinds", "name", "tool")

    def __init__(self, rule: ToolRule) -> None:
        self.name = f"tools.{rule.name}"
        self.kinds = frozenset(rule.kinds)
        self.agent: re.Pattern[str] | None = (None if rule.agent == "*"
                                              else compile_globs([rule.agent]))
        self.tool: re.Pattern[str] | None = (None if rule.tool == "*"
                                             else compile_globs([rule.tool]))

    def matches(self, action: Action) -> bool:
        return (action.kind in self.kinds
                and (self.agent is None or self.agent.fullmatch(action.actor) is not None)
                and (self.tool is None or self.tool.fullmatch(action.target) is not None))


class ToolsGuard:
    """Judges tool calls by agent and tool name; deny overrides allow."""

    name = "tools"

    def __init__(self, config: ToolsConfig | None = None) -> None:
        self.config = config = config or ToolsConfig()
        self._deny = [_Rule(r) for r in config.rules if r.effect is Effect.DENY]
        self._allow = [_Rule(r) for r in config.rules if r.effect is Effect.ALLOW]
        self._kinds = frozenset(k for r in config.rules for k in r.kinds)
        examples = {f"tools.{r.name}": r.examples for r in config.rules if r.examples}
        if examples:
            check_examples(self.name, self.check, ActionKind.TOOL, examples)

    def check(self, action: Action, context: ActionContext) -> Verdict | None:
        """Judge a tool, MCP tool or delegate action; abstain if no rule covers it."""
        if action.kind not in self._kinds:
            return None
        for rule in self._deny:
            if rule.matches(action):
                return Verdict.deny(rule.name, f"agent {action.actor!r} may not call "
                                    f"{action.kind} {action.target!r}")
        for rule in self._allow:
            if rule.matches(action):
                return Verdict.allow(rule.name, f"agent {action.actor!r} may call "
                                     f"{action.kind} {action.target!r}")
        return None
