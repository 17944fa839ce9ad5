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

A pattern's first word names the program; further words are about its arguments.

**Which file is judged.**  The command is resolved exactly as the sandbox runs it: the
program the sandbox resolved (``context.extra["executable"]``) if it says, else a path
against the sandbox's working directory (``context.extra["cwd"]``; the host's current
directory only when no sandbox says), a bare name on the search path
(``context.extra["search_path"]``, else ``PATH``) — then links are followed and the real
file, with its identity (device and inode), is judged.

**Deny patterns** match when any of these does: the command as typed (its base name for
a bare-name pattern), the resolved path with ``//`` and ``/./`` collapsed, the real path,
or the real file's *identity*: a bare name (``rm``) denies every file of that name on the
search path, a path glob (``/usr/bin/*``) every file it names today, so a symlink or a
hard link to a denied program is denied under any name.  A renamed **copy** is another
file with other contents' identity: no name-based list can deny it (deny the directory it
must run from with the ``paths`` guard, or use a closed allow list).

**Allow patterns** are strict: a bare name (``ls``) allows the very program that name
runs from the search path, a path glob (``/opt/tools/*``) the files it names; what is
judged is the real file, so a link to an allowed program elsewhere is allowed and a
planted file that merely has an allowed name is not.

**Argument words** (``pip install``): for a *deny* rule they match equivalent spellings —
options may come anywhere and in any order (``pip -q --isolated install``), an option's
value may sit between (``pip --log f install``), short options may be clustered
(``python3 -Ic`` has ``-c``; a rule ``rm -rf`` matches ``rm -r -f`` and ``rm -fr``), and
``python -m module args`` is judged as ``module args`` too (``python3 -Im pip install``
is ``pip install``).  A positional word that is not the next one the rule wants ends the
match (``pip show install`` is not ``pip install``).  Argument rules cannot know every
program's grammar: a rule on one option letter also matches that letter inside another
option's glued value (``-Wdefault`` holds ``-d``), and a program may accept other
spellings still (abbreviated long options, response files, environment variables,
aliases such as ``pip3.11``); deny the program itself when it must never run.  For an
*allow* rule the words must be the first arguments, literally (``git status`` allows
``git status --short``, never ``git -c x status``).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shutil
import stat
import time
from collections.abc import Mapping, Sequence
from typing import Any

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


Identity = tuple[int, int]
_PYTHON = re.compile(r"(?:python|pypy)[0-9.]*[a-z]?")
_PYTHON_VALUE_LETTERS = frozenset("WX")  # python short options that take a value
_REFRESH_SECONDS = 1.0


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino)


# (name, search path) -> (valid until, full path, real path, identity): a bare name's
# lookup on the search path, re-done at most every _REFRESH_SECONDS.
_NAMES: dict[tuple[str, str | None], tuple[float, str | None, str | None, Identity | None]] = {}


def _real_file(full: str | None) -> tuple[str | None, Identity | None]:
    """The real path of ``full`` (links followed) and its identity, if it is a regular file."""
    if not full:
        return None, None
    real = os.path.realpath(full)
    try:
        st = os.stat(real)
    except OSError:
        return None, None
    if not stat.S_ISREG(st.st_mode):
        return None, None
    return real, _identity(st)


def _lookup_name(name: str, search: str | None) -> tuple[str | None, str | None,
                                                        Identity | None]:
    key = (name, search)
    now = time.monotonic()
    found = _NAMES.get(key)
    if found is not None and found[0] > now:
        return found[1], found[2], found[3]
    full = shutil.which(name, path=search)
    full = os.path.normpath(full) if full else None
    real, identity = _real_file(full)
    if len(_NAMES) >= 1024:
        _NAMES.clear()
    _NAMES[key] = (now + _REFRESH_SECONDS, full, real, identity)
    return full, real, identity


class _Resolved:
    """The command as the sandbox will run it: typed text, full path, real path, identity."""

    __slots__ = ("base", "full", "identity", "real", "real_base", "search", "typed")

    def __init__(self, command: str, extra: Mapping[str, Any]) -> None:
        self.typed = command
        self.base = command.rpartition("/")[2]
        search = extra.get("search_path")
        self.search: str | None = str(search) if search else None
        executable = extra.get("executable")
        if executable or "/" in command:
            if executable:
                full = str(executable)
            else:
                cwd = extra.get("cwd")
                full = os.path.join(str(cwd) if cwd else os.getcwd(), command)
            self.full: str | None = os.path.normpath(full)
            self.real, self.identity = _real_file(full)
        else:
            # a bare name: looked up on the search path, never in the working directory
            self.full, self.real, self.identity = _lookup_name(command, self.search)
        self.real_base = self.real.rpartition("/")[2] if self.real else None

    @property
    def key(self) -> tuple[object, ...]:
        return (self.typed, self.full, self.real, self.identity, self.search)


class _Identities:
    """The identities of the files a pattern names, re-read when their folders change."""

    __slots__ = ("checked", "dirs", "ids", "pattern", "search")

    def __init__(self, pattern: str, search: str | None) -> None:
        self.pattern = pattern
        self.search = search
        self.checked = -1e9
        self.dirs: dict[str, int] = {}
        self.ids: frozenset[Identity] = frozenset()

    def _folders(self) -> list[str]:
        if "/" in self.pattern:
            return sorted(glob.glob(os.path.dirname(self.pattern) or "/"))
        path = self.search if self.search is not None else os.environ.get("PATH", os.defpath)
        return [d for d in path.split(os.pathsep) if d]

    def _mtimes(self, folders: list[str]) -> dict[str, int]:
        found = {}
        for folder in folders:
            try:
                found[folder] = os.stat(folder).st_mtime_ns
            except OSError:
                found[folder] = -1
        return found

    def get(self) -> frozenset[Identity]:
        now = time.monotonic()
        if now < self.checked + _REFRESH_SECONDS:
            return self.ids
        self.checked = now
        folders = self._folders()
        mtimes = self._mtimes(folders)
        if mtimes == self.dirs:
            return self.ids
        self.dirs = mtimes
        if "/" in self.pattern:
            files = glob.glob(self.pattern)
        else:
            files = []
            for folder in folders:
                if any(c in self.pattern for c in "*?["):
                    try:
                        names = fnmatch.filter(os.listdir(folder), self.pattern)
                    except OSError:
                        continue
                else:
                    names = [self.pattern]
                files += [os.path.join(folder, n) for n in names]
        ids = set()
        for file in files:
            try:
                st = os.stat(file)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                ids.add(_identity(st))
        self.ids = frozenset(ids)
        return self.ids


def _normal_pattern(pattern: str) -> str:
    """A path pattern with ``//`` and ``/./`` collapsed (globs kept)."""
    if "/" not in pattern:
        return pattern
    normal = os.path.normpath(pattern)
    return normal + "/" if pattern.endswith("/") and not normal.endswith("/") else normal


def _short_letters(arg: str) -> str:
    """The letters of a short-option cluster (``-Ic`` -> ``Ic``), else ``""``."""
    if len(arg) >= 2 and arg[0] == "-" and arg[1] != "-":
        return arg[1:]
    return ""


def _option_present(word: str, args: Sequence[str]) -> bool:
    """Whether the option ``word`` is among ``args`` in any spelling (see the docstring)."""
    options = []
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("-") and arg != "-":
            options.append(arg)
    if word.startswith("--"):
        return any(a == word or a.startswith(word + "=") for a in options)
    if any(fnmatch.fnmatchcase(a, word) for a in options):
        return True
    letters = word[1:]
    if not letters.isalnum():
        return False
    present = set()
    for arg in options:
        present.update(_short_letters(arg))
    return set(letters) <= present


def _positionals_match(words: Sequence[str], args: Sequence[str]) -> bool:
    """Whether ``words`` (no options) appear in order among ``args``' positional words.

    Options are skipped, and so is one word right after an option (it may be its value);
    any other positional word that is not the next wanted one ends the match.
    """
    if not words:
        return True
    index = 0
    after_option = False
    for arg in args:
        if arg == "--":
            after_option = False
            continue
        if arg.startswith("-") and arg != "-":
            after_option = "=" not in arg
            continue
        if fnmatch.fnmatchcase(arg, words[index]):
            index += 1
            if index == len(words):
                return True
            after_option = False
            continue
        if after_option:
            after_option = False
            continue
        return False
    return False


def _deny_args_match(rest: Sequence[str], args: Sequence[str]) -> bool:
    options = [w for w in rest if w.startswith("-") and w != "-"]
    positionals = [w for w in rest if not (w.startswith("-") and w != "-")]
    return (all(_option_present(o, args) for o in options)
            and _positionals_match(positionals, args))


def python_module(args: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(module, its args)`` when python ``args`` run ``-m module``, else ``None``."""
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            return None
        if arg.startswith("--"):
            i += 2 if arg == "--check-hash-based-pycs" else 1
            continue
        letters = arg[1:]
        for j, letter in enumerate(letters):
            if letter == "c":
                return None
            if letter == "m":
                value = letters[j + 1:]
                if value:
                    module, rest = value, items[i + 1:]
                elif i + 1 < len(items):
                    module, rest = items[i + 1], items[i + 2:]
                else:
                    return None
                return module.removesuffix(".__main__"), rest
            if letter in _PYTHON_VALUE_LETTERS:
                if not letters[j + 1:]:
                    i += 1  # the value is the next argument
                break
        i += 1
    return None


class _Matcher:
    """One compiled group of command patterns; answers which pattern matched."""

    __slots__ = ("entries", "label", "strict")

    def __init__(self, label: str, patterns: tuple[str, ...], *, strict: bool = False) -> None:
        self.label = label
        self.strict = strict  # allow semantics
        self.entries: list[tuple[str, str, list[str], dict[str | None, _Identities]]] = []
        for pattern in patterns:
            words = pattern.split()
            if not words:
                continue
            self.entries.append((pattern, _normal_pattern(words[0]), words[1:], {}))

    def _ids(self, cache: dict[str | None, _Identities], head: str,
             search: str | None) -> frozenset[Identity]:
        found = cache.get(search)
        if found is None:
            found = cache[search] = _Identities(head, search)
        return found.get()

    def _head(self, head: str, ids: dict[str | None, _Identities], cmd: _Resolved) -> bool:
        has_slash = "/" in head
        if self.strict:
            if not has_slash and "/" not in cmd.typed and fnmatch.fnmatchcase(cmd.typed, head):
                # the typed name, looked up on the search path, is what runs (or, if it is
                # not installed, nothing runs and the sandbox says it was not found)
                return True
            if cmd.identity is None:
                return False
            if has_slash:
                return (fnmatch.fnmatchcase(cmd.real or "", head)
                        or cmd.identity in self._ids(ids, head, cmd.search))
            # a bare name allows the program that very name runs from the search path: a
            # path is allowed if it is that very file
            if not fnmatch.fnmatchcase(cmd.base, head):
                return False
            return cmd.identity == _lookup_name(cmd.base, cmd.search)[2]
        if has_slash:
            for candidate in (cmd.full, cmd.real, cmd.typed):
                if candidate and fnmatch.fnmatchcase(candidate, head):
                    return True
        else:
            for candidate in (cmd.base, cmd.real_base):
                if candidate and fnmatch.fnmatchcase(candidate, head):
                    return True
        return cmd.identity is not None and cmd.identity in self._ids(ids, head, cmd.search)

    def match(self, cmd: _Resolved, args: Sequence[str]) -> str | None:
        """The pattern that matches the command, or ``None`` (see the module docstring)."""
        for pattern, head, rest, ids in self.entries:
            if not self._head(head, ids, cmd):
                continue
            if not rest:
                return pattern
            if self.strict:
                if len(args) >= len(rest) and all(
                        fnmatch.fnmatchcase(a, w) for a, w in zip(args, rest, strict=False)):
                    return pattern
            elif _deny_args_match(rest, args):
                return pattern
        return None

    def match_module(self, module: str, args: Sequence[str]) -> str | None:
        """Deny patterns only: the pattern naming ``module`` (run as ``python -m``)."""
        for pattern, head, rest, _ids in self.entries:
            if "/" in head or not fnmatch.fnmatchcase(module, head):
                continue
            if not rest or _deny_args_match(rest, args):
                return pattern
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
                                     strict=rule.effect is Effect.ALLOW), actors))
        if config.allow:
            entries.append(("allowlist.allow", Effect.ALLOW,
                            _Matcher("allow", config.allow, strict=True), None))
        self._deny = [e for e in entries if e[1] is Effect.DENY]
        self._allow = [e for e in entries if e[1] is Effect.ALLOW]
        self._closed = bool(config.allow) and config.closed
        self._cache: dict[tuple[object, ...], Verdict | None] = {}
        examples = {"allowlist.allow/deny": config.examples} if config.examples else {}
        examples.update({f"allowlist.{r.name}": r.examples for r in config.rules if r.examples})
        if examples:
            check_examples(self.name, self.check, ActionKind.COMMAND, examples)

    def check(self, action: Action, context: ActionContext) -> Verdict | None:
        """Judge a ``command`` action; abstain on every other kind."""
        if action.kind is not ActionKind.COMMAND:
            return None
        arguments = action.arguments
        args = [str(a) for a in arguments] if isinstance(arguments, (list, tuple)) else []
        cmd = _Resolved(action.target, context.extra or {})
        # The verdict depends on the real file (by identity), the actor and the arguments.
        key: tuple[object, ...] | None = None
        if len(args) <= 32 and sum(len(a) for a in args) <= 4096:
            key = (cmd.key, action.actor, tuple(args))
            try:
                return self._cache[key]
            except KeyError:
                pass
        verdict = self._judge(action, cmd, args)
        if key is not None:
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[key] = verdict
        return verdict

    def _judge(self, action: Action, cmd: _Resolved, args: list[str]) -> Verdict | None:
        command = action.target
        shown = command if cmd.real in (None, command) else f"{command} ({cmd.real})"
        module = None
        if _PYTHON.fullmatch(cmd.base) or (cmd.real_base and _PYTHON.fullmatch(cmd.real_base)):
            module = python_module(args)
        for rule, _effect, matcher, actors in self._deny:
            if actors is not None and not actors.fullmatch(action.actor):
                continue
            hit = matcher.match(cmd, args)
            if hit is not None:
                return Verdict.deny(rule, f"command {shown!r} matches deny pattern {hit!r}")
            if module is not None:
                hit = matcher.match_module(*module)
                if hit is not None:
                    return Verdict.deny(rule, f"command {shown!r} runs module {module[0]!r}, "
                                        f"which matches deny pattern {hit!r}")
        for rule, _effect, matcher, actors in self._allow:
            if actors is not None and not actors.fullmatch(action.actor):
                continue
            hit = matcher.match(cmd, args)
            if hit is not None:
                return Verdict.allow(rule, f"command {shown!r} matches {hit!r}")
        if self._closed:
            return Verdict.deny("allowlist.unlisted",
                                f"command {shown!r} is not on the allow list "
                                f"({', '.join(self.config.allow)})")
        return None
