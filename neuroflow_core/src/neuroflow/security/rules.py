"""What every guard's rules share: glob matching, effects and rule examples.

A rule says *allow* or *deny* for the actions it matches.  Every rule (and every guard's
top-level lists) may carry ``examples``: small actions with the verdict the author
expects.  They are run when the guard's configuration is built, so a rule that does
not do what its author thought is a :class:`~neuroflow.errors.ConfigError` that names it.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from neuroflow.errors import ConfigError
from neuroflow.security.model import Action, ActionContext, ActionKind, Verdict


class Effect(str, enum.Enum):
    """What a rule does to the actions it matches."""

    ALLOW = "allow"
    DENY = "deny"

    def __str__(self) -> str:
        return self.value


class Expect(str, enum.Enum):
    """What a rule example expects the guard to answer."""

    ALLOW = "allow"
    DENY = "deny"
    ABSTAIN = "abstain"  # no rule of the guard covers it: the security level decides

    def __str__(self) -> str:
        return self.value


def enum_converter(enum_cls: type[enum.Enum], field: str) -> Callable[[Any], Any]:
    """An attrs converter to ``enum_cls`` whose error names ``field``.

    (The shared cattrs converter structures ``str`` subclasses as plain strings, so
    enum fields convert themselves.)
    """

    def convert(value: Any) -> Any:
        if isinstance(value, enum_cls) or value is None:
            return value
        try:
            return enum_cls(value)
        except ValueError:
            known = ", ".join(str(m.value) for m in enum_cls)
            raise ValueError(f"{field}: expected one of {known}, got {value!r}") from None

    return convert


def enum_tuple_converter(enum_cls: type[enum.Enum], field: str) -> Callable[[Any], Any]:
    """Like :func:`enum_converter`, for a tuple of enum values."""
    single = enum_converter(enum_cls, field)

    def convert(values: Any) -> tuple[Any, ...]:
        return tuple(single(v) for v in values)

    return convert


@attrs.frozen
class RuleExample:
    """An action and the answer its guard must give, checked when the config loads.

    Attributes:
        target: the action's target (command, path, host, tool name).
        expect: ``"allow"``, ``"deny"`` or ``"abstain"``.
        action: the action kind; defaults to the guard's natural kind.
        actor: who acts (an agent id).
        arguments: the action's arguments (a command's argv tail).
    """

    target: str
    expect: Expect = attrs.field(converter=enum_converter(Expect, "expect"))
    action: ActionKind | None = attrs.field(
        default=None, converter=enum_converter(ActionKind, "action"))
    actor: str = "user"
    arguments: tuple[str, ...] = ()


def compile_globs(patterns: Iterable[str], *, case: bool = True) -> re.Pattern[str] | None:
    """One regex matching any of the shell-style ``patterns`` (``None`` for no patterns)."""
    parts = [fnmatch.translate(p) for p in patterns]
    if not parts:
        return None
    return re.compile("|".join(f"(?:{p})" for p in parts), 0 if case else re.IGNORECASE)


def check_examples(
    guard_name: str,
    guard: Callable[[Action, ActionContext], Verdict | None],
    default_kind: ActionKind,
    examples_by_rule: Mapping[str, Iterable[RuleExample]],
) -> None:
    """Run every rule's examples through ``guard``; raise :class:`ConfigError` naming the rule.

    Args:
        guard_name: the guard's name, used in messages.
        guard: the built guard's ``check``.
        default_kind: the action kind of an example that names none.
        examples_by_rule: rule name -> its examples.
    """
    problems: list[str] = []
    context = ActionContext(component=f"security.{guard_name}.examples")
    for rule, examples in examples_by_rule.items():
        for index, ex in enumerate(examples):
            action = Action(ex.action or default_kind, ex.target, ex.actor, list(ex.arguments))
            verdict = guard(action, context)
            got = "abstain" if verdict is None else verdict.decision.value
            if got != ex.expect.value:
                by = (f" (decided by rule {verdict.rule!r}: {verdict.reason})" if verdict
                      else " (no rule covers it; the security level would decide)")
                problems.append(
                    f"rule {rule!r}: example {index} ({action.kind} {ex.target!r} by "
                    f"{ex.actor!r}) expected {ex.expect.value}, got {got}{by}"
                )
    if problems:
        raise ConfigError(problems)
