"""The ``paths`` guard: which files may be read and written.

``[security.paths]``::

    read_roots = ["/srv/data", "."]      # reads must be inside one of these (or a write root)
    write_roots = ["/tmp/sandbox"]        # writes must be inside one of these
    deny = ["**/.ssh/**", "*.pem", "/etc/shadow"]
    examples = [{action = "file_read", target = "/etc/shadow", expect = "deny"}]

    [[security.paths.rules]]
    name = "no-git-writes"
    effect = "deny"
    access = "write"
    paths = ["**/.git/**"]

Every path is resolved before it is judged: relative paths against the action's working
directory (``context.extra["cwd"]``, else the process's), ``..`` collapsed and symlinks
followed, so neither ``root/../etc`` nor a link out of a root escapes it.  A pattern
without ``/`` matches the base name; ``**`` and ``*`` both match across ``/``; a pattern
ending in ``/**`` (``**/.ssh/**``) also matches the directory itself.  Paths may be
given as ``str``, ``bytes`` (decoded with :func:`os.fsdecode`) or ``os.PathLike``.

The guard judges ``file_read``/``file_write`` actions (target = the path) and, on any
action, the paths listed in ``resources["read_paths"]``, ``resources["write_paths"]``
and ``resources["paths"]`` (read).
"""

from __future__ import annotations

import enum
import os

import attrs

from neuroflow.security.model import Action, ActionContext, ActionKind, Verdict
from neuroflow.security.rules import (
    Effect,
    RuleExample,
    check_examples,
    compile_globs,
    enum_converter,
)


class Access(str, enum.Enum):
    """Which access a path rule is about."""

    READ = "read"
    WRITE = "write"
    ANY = "any"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class PathRule:
    """A named rule about paths.

    Attributes:
        name: the rule's name, shown in verdicts and the audit log.
        effect: ``"allow"`` or ``"deny"``.
        paths: path globs (matched against resolved absolute paths).
        access: ``"read"``, ``"write"`` or ``"any"``.
        actors: the actors (globs) it applies to.
        examples: actions with the verdict this rule must produce.
    """

    name: str
    effect: Effect = attrs.field(converter=enum_converter(Effect, "effect"))
    paths: tuple[str, ...]
    access: Access = attrs.field(
        default=Access.ANY, converter=enum_converter(Access, "access"))
    actors: tuple[str, ...] = ("*",)
    examples: tuple[RuleExample, ...] = ()


@attrs.frozen
class PathsConfig:
    """``[security.paths]``: read roots, write roots and denied patterns.

    Attributes:
        read_roots: directories reads must stay inside (with the write roots); empty
            means reads are not restricted by roots.
        write_roots: directories writes must stay inside; when either list is
            non-empty, a write outside ``write_roots`` is denied.
        deny: path globs never read or written (rule ``paths.deny``); deny overrides allow.
        rules: further named rules.
        examples: examples for the roots and the deny list.
    """

    read_roots: tuple[str, ...] = ()
    write_roots: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    rules: tuple[PathRule, ...] = ()
    examples: tuple[RuleExample, ...] = ()

    def __attrs_post_init__(self) -> None:
        PathsGuard(self)


def _pattern(pattern: str) -> str:
    # "**" and "*" behave the same with fnmatch (both cross "/"); "~" means home.
    pattern = os.path.expanduser(pattern).replace("**", "*")
    return pattern


def _as_text(value: object, what: str) -> str:
    """A path given as ``str``, ``bytes`` or ``os.PathLike``, as text (``os.fsdecode``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return os.fsdecode(bytes(value))
    if isinstance(value, os.PathLike):
        return os.fsdecode(os.fspath(value))
    raise TypeError(f"{what}: expected a path (str, bytes or os.PathLike), "
                    f"got {type(value).__name__}")


def _resolve_root(root: str) -> str:
    """A root as an absolute, symlink-free path."""
    return os.path.realpath(os.path.expanduser(root))


class _Rule:
    __slots__ = ("access", "actors", "base", "effect", "full", "name")

    def __init__(self, name: str, effect: Effect, paths: tuple[str, ...], access: Access,
                 actors: tuple[str, ...]) -> None:
        self.name = name
        self.effect = effect
        self.access = access
        self.actors = None if actors == ("*",) else compile_globs(actors)
        pats = [_pattern(p) for p in paths]
        full: list[str] = []
        for p in (p for p in pats if "/" in p):
            p = p.rstrip("/") or "/"
            if not p.startswith(("/", "*")):
                p = "*/" + p  # a relative pattern matches at any depth
            full += [p, p + "/*"]  # the path itself and everything under it
            if p.endswith("/*") and len(p) > 2:
                # `dir/**` covers `dir` itself: denying what is inside a directory while
                # allowing the directory would let it be listed, renamed or replaced
                full.append(p[:-2])
        self.full = compile_globs(full)
        self.base = compile_globs([p for p in pats if "/" not in p])

    def matches(self, path: str, write: bool, actor: str) -> bool:
        if (self.access is Access.READ and write) or (self.access is Access.WRITE and not write):
            return False
        if self.actors is not None and not self.actors.fullmatch(actor):
            return False
        if self.full is not None and self.full.fullmatch(path):
            return True
        return self.base is not None and self.base.fullmatch(os.path.basename(path)) is not None


def _names(value: object, what: str = "resources") -> tuple[str, ...]:
    """A resource entry as names: one string (or bytes) is one name, not its items."""
    if value is None or (isinstance(value, (str, bytes, bytearray, tuple, list))
                         and not value):
        return ()
    if isinstance(value, (str, bytes, bytearray, os.PathLike)):
        return (_as_text(value, what),)
    try:
        items = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{what}: expected a path or a list of paths, "
                        f"got {type(value).__name__}") from None
    return tuple(_as_text(v, what) for v in items)


def _inside(path: str, roots: tuple[str, ...]) -> str | None:
    for root in roots:
        if path == root or path.startswith(root if root.endswith("/") else root + "/"):
            return root
    return None


class PathsGuard:
    """Judges file reads and writes against roots and patterns; deny overrides allow."""

    name = "paths"

    def __init__(self, config: PathsConfig | None = None) -> None:
        self.config = config = config or PathsConfig()
        self._write_roots = tuple(_resolve_root(r) for r in config.write_roots)
        self._read_roots = tuple(_resolve_root(r) for r in config.read_roots) + self._write_roots
        self._rooted = bool(config.read_roots or config.write_roots)
        rules = []
        if config.deny:
            rules.append(_Rule("paths.deny", Effect.DENY, config.deny, Access.ANY, ("*",)))
        rules += [_Rule(f"paths.{r.name}", r.effect, r.paths, r.access, r.actors)
                  for r in config.rules]
        self._deny = [r for r in rules if r.effect is Effect.DENY]
        self._allow = [r for r in rules if r.effect is Effect.ALLOW]
        examples = {"paths.roots/deny": config.examples} if config.examples else {}
        examples.update({f"paths.{r.name}": r.examples for r in config.rules if r.examples})
        if examples:
            check_examples(self.name, self.check, ActionKind.FILE_READ, examples)

    def check(self, action: Action, context: ActionContext) -> Verdict | None:
        """Judge the paths an action reads or writes; abstain if it names none."""
        kind = action.kind
        resources = action.resources
        if kind is ActionKind.FILE_READ:
            accesses = [(_as_text(action.target, "target"), False)]
        elif kind is ActionKind.FILE_WRITE:
            accesses = [(_as_text(action.target, "target"), True)]
        elif not resources:
            return None
        else:
            accesses = []
        if resources:
            accesses += [(p, False) for p in _names(resources.get("read_paths"),
                                                      'resources["read_paths"]')]
            accesses += [(p, False) for p in _names(resources.get("paths"),
                                                      'resources["paths"]')]
            accesses += [(p, True) for p in _names(resources.get("write_paths"),
                                                     'resources["write_paths"]')]
        if not accesses:
            return None
        cwd = context.extra.get("cwd") if context.extra else None
        allowed: Verdict | None = None
        for raw, write in accesses:
            verdict = self._judge(str(raw), write, action.actor, cwd)
            if verdict is None:
                continue
            if not verdict.allowed:
                return verdict
            allowed = allowed or verdict
        return allowed

    def _judge(self, raw: str, write: bool, actor: str, cwd: str | None) -> Verdict | None:
        verb = "write" if write else "read"
        if "\x00" in raw:
            return Verdict.deny("paths.invalid", f"path {raw!r} contains a NUL byte")
        path = os.path.realpath(os.path.join(cwd or os.getcwd(), os.path.expanduser(raw)))
        shown = raw if raw == path else f"{raw!r} (resolved to {path!r})"
        for rule in self._deny:
            if rule.matches(path, write, actor):
                return Verdict.deny(rule.name, f"{verb} of {shown} matches a denied pattern")
        if self._rooted:
            roots = self._write_roots if write else self._read_roots
            if _inside(path, roots) is None:
                which = "write_roots" if write else "read_roots/write_roots"
                return Verdict.deny(f"paths.outside-{'write' if write else 'read'}-roots",
                                    f"{verb} of {shown} is outside {which} "
                                    f"({', '.join(roots) or 'none'})")
        for rule in self._allow:
            if rule.matches(path, write, actor):
                return Verdict.allow(rule.name, f"{verb} of {shown} matches an allowed pattern")
        if self._rooted:
            return Verdict.allow("paths.roots", f"{verb} of {shown} is inside a root")
        return None


__all__ = ["Access", "PathRule", "PathsConfig", "PathsGuard"]
