"""The ``allowlist`` guard: which commands a sandbox may run.

``[security.allowlist]``::

    allow = ["python3", "ls", "git status"]   # a command glob, optionally with leading args
    deny = ["rm", "sudo", "curl"]
    closed = true        # with a non-empty allow list, unlisted commands are denied
    examples = [{target = "rm", expect = "deny"}]

    [[security.allowlist.rules]]
    name = "no-pip-install"
    effect = "deny"
    commands = ["pip install", "pip3 install"]
    examples = [{target = "pip", arguments = ["install", "x"], expect = "deny"}]

A pattern's first word is matched (shell-style glob) against the command; further words
must match the first arguments, in order.  A deny pattern matches the base name or the full
path (``rm`` denies ``/tmp/x/rm`` too).  An allow pattern is stricter about paths: a bare
name (``ls``) allows ``ls`` and the very program ``ls`` names on ``PATH`` (``/usr/bin/ls``),
never some other file called ``ls``; to allow other paths, write them (``/opt/tools/*``).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from functools import lru_cache

import attrs

from neuroflow.security.model import Action, ActionContext, ActionKind, Verdict
from neuroflow.security.rules import (
    Effect,
    RuleExample,
    check_examples,
    compile_globs,
    enum_converter,
)


@attrs.frozen
class CommandRule:
    """A named rule about commands.

    Attributes:
        name: the rule's name, shown in verdicts and the audit log.
        effect: ``"allow"`` or ``"deny"``.
        commands: command patterns (``"rm"``, ``"/usr/bin/*"``, ``"pip install"``).
        actors: the actors (agent ids, globs) it applies to.
        examples: actions with the verdict this rule must produce.
    """

    name: str
    effect: Effect = attrs.field(converter=enum_converter(Effect, "effect"))
    commands: tuple[str, ...]
    actors: tuple[str, ...] = ("*",)
    examples: tuple[RuleExample, ...] = ()


@attrs.frozen
class AllowlistConfig:
    """``[security.allowlist]``: command allow and deny lists.

    Attributes:
        allow: commands that may run (rule ``allowlist.allow``).
        deny: commands that never run (rule ``allowlist.deny``); deny overrides allow.
        closed: when ``allow`` is non-empty, a command not on it is denied
            (rule ``allowlist.unlisted``); ``false`` lets the security level decide.
        rules: further named rules.
        examples: examples for the ``allow``/``deny`` lists.
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    closed: bool = True
    rules: tuple[CommandRule, ...] = ()
    examples: tuple[RuleExample, ...] = ()

    def __attrs_post_init__(self) -> None:
        AllowlistGuard(self)  # builds the matchers and runs every example


@lru_cache(maxsize=256)
def _program(name: str) -> str | None:
    """The real file a bare command name runs (``PATH`` lookup, links resolved)."""
    found = shutil.which(name)
    return os.path.realpath(found) if found else None


def _names_program(pattern: str, command: str) -> bool:
    """Whether the bare name ``pattern`` runs the very program at path ``command``."""
    if "/" in pattern or any(c in pattern for c in "*?["):
        return False
    wanted = _program(pattern)
    return wanted is not None and wanted == os.path.realpath(command)


class _Matcher:
    """One compiled group of command patterns; answers which pattern matched."""

    __slots__ = ("label", "names", "simple", "strict_paths", "with_args")

    def __init__(self, label: str, patterns: tuple[str, ...], *,
                 strict_paths: bool = False) -> None:
        self.label = label
        self.strict_paths = strict_paths
        simple = [p for p in patterns if len(p.split()) == 1]
        self.names = simple
        # one regex, one named group per pattern: a single fullmatch says which matched
        self.simple: re.Pattern[str] | None = re.compile("|".join(
            f"(?P<p{i}>{fnmatch.translate(p)})" for i, p in enumerate(simple))) if simple else None
        self.with_args = [p.split() for p in patterns if len(p.split()) > 1]

    def _head(self, pattern: str, command: str, base: str) -> bool:
        if fnmatch.fnmatchcase(command, pattern):
            return True
        if command is base or not self.strict_paths:
            return fnmatch.fnmatchcase(base, pattern)
        return _names_program(pattern, command)

    def match(self, command: str, base: str, args: list[str]) -> str | None:
        """The pattern that matches the command, or ``None`` (see the module docstring)."""
        if self.simple is not None:
            if command is base or not self.strict_paths:
                found = self.simple.match(base) or (
                    self.simple.match(command) if command is not base else None)
                if found is not None and found.lastgroup is not None:
                    return self.names[int(found.lastgroup[1:])]
            else:
                for name in self.names:
                    if self._head(name, command, base):
                        return name
        for words in self.with_args:
            head, rest = words[0], words[1:]
            if self._head(head, command, base) and (
                len(args) >= len(rest)
                and all(fnmatch.fnmatchcase(a, w) for a, w in zip(args, rest, strict=False))
            ):
                return " ".join(words)
        return None


class AllowlistGuard:
    """Allows or denies ``command`` actions by name; deny overrides allow."""

    name = "allowlist"

    def __init__(self, config: AllowlistConfig | None = None) -> None:
        self.config = config = config or AllowlistConfig()
        entries: list[tuple[str, Effect, _Matcher, re.Pattern[str] | None]] = []
        if config.deny:
            entries.append(("allowlist.deny", Effect.DENY, _Matcher("deny", config.deny), None))
        for rule in config.rules:
            actors = None if rule.actors == ("*",) else compile_globs(rule.actors)
            entries.append((f"allowlist.{rule.name}", rule.effect,
                            _Matcher(rule.name, rule.commands,
                                     strict_paths=rule.effect is Effect.ALLOW), actors))
        if config.allow:
            entries.append(("allowlist.allow", Effect.ALLOW,
                            _Matcher("allow", config.allow, strict_paths=True), None))
        self._deny = [e for e in entries if e[1] is Effect.DENY]
        self._allow = [e for e in entries if e[1] is Effect.ALLOW]
        self._closed = bool(config.allow) and config.closed
        # The verdict depends only on (command, actor, leading args): cache it.
        self._arg_words = max((len(w) - 1 for _, _, m, _ in entries for w in m.with_args),
                              default=0)
        self._cache: dict[tuple[str, str, tuple[str, ...]], Verdict | None] = {}
        examples = {"allowlist.allow/deny": config.examples} if config.examples else {}
        examples.update({f"allowlist.{r.name}": r.examples for r in config.rules if r.examples})
        if examples:
            check_examples(self.name, self.check, ActionKind.COMMAND, examples)

    def check(self, action: Action, context: ActionContext) -> Verdict | None:
        """Judge a ``command`` action; abstain on every other kind."""
        if action.kind is not ActionKind.COMMAND:
            return None
        arguments = action.arguments
        lead: tuple[str, ...] = ()
        if self._arg_words and isinstance(arguments, (list, tuple)):
            lead = tuple(str(a) for a in arguments[: self._arg_words])
        key = (action.target, action.actor, lead)
        try:
            return self._cache[key]
        except KeyError:
            pass
        verdict = self._judge(action)
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[key] = verdict
        return verdict

    def _judge(self, action: Action) -> Verdict | None:
        command = action.target
        base = command.rpartition("/")[2] if "/" in command else command
        args = action.arguments if isinstance(action.arguments, list) else (
            list(action.arguments) if isinstance(action.arguments, tuple) else [])
        for rule, _effect, matcher, actors in self._deny:
            if actors is not None and not actors.fullmatch(action.actor):
                continue
            hit = matcher.match(command, base, args)
            if hit is not None:
                return Verdict.deny(rule, f"command {command!r} matches deny pattern {hit!r}")
        for rule, _effect, matcher, actors in self._allow:
            if actors is not None and not actors.fullmatch(action.actor):
                continue
            hit = matcher.match(command, base, args)
            if hit is not None:
                return Verdict.allow(rule, f"command {command!r} matches {hit!r}")
        if self._closed:
            return Verdict.deny("allowlist.unlisted",
                                f"command {command!r} is not on the allow list "
                                f"({', '.join(self.config.allow)})")
        return None
