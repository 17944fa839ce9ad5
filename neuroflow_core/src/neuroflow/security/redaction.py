"""Redaction: secrets in audit details are written as keyed digests, in linear time.

Every pattern here is built so that one pass over a text costs time proportional to its
length, whatever the text: quantifiers are possessive (no backtracking into a run), a
candidate starts only where a run of its characters starts, the "does this name a
secret?" test is a plain substring search on the lower-cased name (never a regex
alternation tried at every position), and each command with secret short flags is
scanned for at most once per text.  A text holding more than :data:`MAX_MATCHES`
secrets, or more than :data:`MAX_CANDIDATES` ``name=value`` / ``--flag value`` pairs
beside a secret name, is written as one digest: it is hostile or not worth reading, and
hiding all of it never leaks a secret.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from neuroflow.security.config import DEFAULT_REDACT_KEYS

# Commands whose SHORT flag carries a password: command -> ((flag, value may be the next
# argument), ...).  Only these are treated so: `-p` is a port for psql, ssh, curl...
# mysql-family `-p value` (with a space) prompts and takes `value` as a database name, so
# only the glued form `-pvalue` is a password there.
SHORT_SECRET_FLAGS: dict[str, tuple[tuple[str, bool], ...]] = {
    "mysql": (("-p", False),),
    "mysqldump": (("-p", False),),
    "mysqladmin": (("-p", False),),
    "mysqlimport": (("-p", False),),
    "mariadb": (("-p", False),),
    "mariadb-dump": (("-p", False),),
    "sshpass": (("-p", True),),
    "redis-cli": (("-a", True),),
}

#: Secret-looking matches one text may hold before it is written as a single digest.
MAX_MATCHES = 1_000
#: ``name=value`` / ``--flag value`` pairs looked at in one text that names a secret.
MAX_CANDIDATES = 5_000

DIGEST_PREFIX = "hmac-sha256:"
_NOT_DIGEST = r"(?!hmac-sha256:[0-9a-f]{32})"
# A value: quoted, or a whole run of non-blanks (the callback gives back a closing shell
# quote and trailing `;&|)`, which the value does not include).
_VALUE = rf"""{_NOT_DIGEST}("[^"]*+"|'[^']*+'|\S++)"""
_GLUED = rf"""{_NOT_DIGEST}("[^"]*+"|'[^']*+'|[^\s'"]\S*+)"""
_SCHEME = r"(?:(?:Bearer|Basic|Token|Digest|Negotiate)\s++)?+"  # never a value
# Every pattern applied to a whole text starts with a literal, which the regex engine
# finds with a fast scan; what must come before it is checked by the callback.
_USERINFO = re.compile(rf"""://([^\s/:@'"]*+:){_NOT_DIGEST}([^\s/@'"]++)(?=@)""")
_BARE_SCHEME = re.compile(rf"(Bearer\s++|Basic\s++){_NOT_DIGEST}([A-Za-z0-9\-._~+/]{{8,}}+=*+)")
_COMMAND_WORD = re.compile("(" + "|".join(
    re.escape(c) for c in sorted(SHORT_SECRET_FLAGS, key=len, reverse=True)) + r")(?=\s)")
# After a word that names a secret: `=value`, `: value`, `"= value`...
_AFTER_NAME = re.compile(rf"""("?\s*+[=:]\s*+{_SCHEME}){_VALUE}""")
# After a `--flag` word that names a secret: ` value`.
_AFTER_FLAG = re.compile(rf"(\s++){_VALUE}")
_WORD = re.compile(r"[-\w.]*+")
_FLAG_WORD = re.compile(r"-{1,2}[-\w.]++")


def _short_flag_pattern(command: str) -> re.Pattern[str]:
    alternatives = []
    for flag, separate in SHORT_SECRET_FLAGS[command]:
        alternatives.append(rf"({re.escape(flag)})(){_GLUED}")
        if separate:
            alternatives.append(rf"({re.escape(flag)})(\s++){_VALUE}")
    return re.compile("|".join(alternatives))


_SHORT_PATTERNS = {command: _short_flag_pattern(command) for command in SHORT_SECRET_FLAGS}


def _starts_word(text: str, start: int) -> bool:
    """Whether ``text[start]`` follows nothing or a blank (a regex ``(?<!\\S)``)."""
    return start == 0 or text[start - 1].isspace()


def _after_non_word(text: str, start: int) -> bool:
    """Whether ``text[start]`` follows nothing or a non-word character (a regex ``\\b``)."""
    if start == 0:
        return True
    char = text[start - 1]
    return not (char.isalnum() or char == "_")


def split_value(raw: str) -> tuple[str, str]:
    """``raw`` (a whole run of non-blanks, or a quoted value) as (value, text after it).

    An unquoted run gives back what closes it in a shell line: trailing ``;&|)`` and one
    quote before them (``TOKEN=abc;`` -> ``abc``, ``;``).  The value keeps its first
    character whatever it is.
    """
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw, ""
    rest = raw[1:].rstrip(";&|)")
    if rest and rest[-1] in "'\"":
        rest = rest[:-1]
    cut = 1 + len(rest)
    return raw[:cut], raw[cut:]


def _unquote(value: str) -> str:
    """A value without the shell/JSON quotes around it (so equal secrets digest equally)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _encode_value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, sort_keys=False)


class _TooMany(Exception):
    """Raised from a substitution callback when a text holds too many secrets."""


def _hmac_hex(key: bytes) -> Callable[[bytes], str]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def mac(body: bytes) -> str:
        i = inner.copy()
        i.update(body)
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()

    return mac


class Redactor:
    """Replaces secrets in details by keyed digests (``"hmac-sha256:<32 hex>"``).

    What is caught (``secret name`` = a name containing any of ``keys``, case-insensitive):

    * a mapping key that is a secret name: its whole value;
    * in strings: ``name=value`` / ``name: value`` (a ``Bearer``/``Basic``... scheme word
      after the separator is kept, the token after it replaced); ``Bearer <token>`` /
      ``Basic <token>`` anywhere (case-sensitive, token of 8+ characters); URL userinfo
      ``scheme://user:pass@host`` (the password part); ``--secret-name value`` and
      ``-secret-name value`` in whitespace-separated command lines;
    * in lists (argv): the item after a ``--secret-name`` flag, and every string item as
      above;
    * for the commands in :data:`SHORT_SECRET_FLAGS` (first argv item, or the command word
      in a string): ``-pVALUE`` (mysql family), ``-p VALUE`` (sshpass), ``-a VALUE``
      (redis-cli).

    Not caught: secrets with no secret-looking name or flag before them (a bare token in
    a positional argument, ``https://token@host`` without a password part, a password
    piped on stdin), short flags of commands not in the table, and values split across
    list items in other ways.  Put secrets under a secret-named key when in doubt.

    Cost: linear in the size of what is cleaned (see the module docstring).
    """

    def __init__(self, key: bytes, keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        self._key = key
        self._words = tuple(sorted({k.lower() for k in keys if k}, key=len, reverse=True))
        self._secret_names: dict[str, bool] = {}
        self._sign = _hmac_hex(key)
        self._digests: dict[str, str] = {}
        self._texts: dict[str, str] = {}
        self._matches = 0
        self._candidates = 0

    def digest(self, value: Any) -> str:
        """The keyed digest written instead of ``value`` (equal secrets, equal digests)."""
        raw = value if isinstance(value, str) else _encode_value(value)
        found = self._digests.get(raw)
        if found is None:
            found = DIGEST_PREFIX + self._sign(
                b"redact\x00" + raw.encode("utf-8", "surrogatepass"))[:32]
            if len(self._digests) >= 1024:
                self._digests.clear()
            if len(raw) <= 4096:
                self._digests[raw] = found
        return found

    def _names_secret(self, lowered: str) -> bool:
        return any(word in lowered for word in self._words)

    def is_secret_name(self, name: str) -> bool:
        """Whether a mapping key (or flag, or the word before ``=``) names a secret."""
        found = self._secret_names.get(name)
        if found is None:
            found = self._names_secret(name.lower())
            if len(name) <= 256 and len(self._secret_names) < 4096:
                self._secret_names[name] = found
        return found

    def clean_text(self, text: str) -> str:
        """``text`` with every secret it visibly holds replaced (see the class docstring)."""
        found = self._texts.get(text)
        if found is not None:
            return found
        self._matches = self._candidates = 0
        try:
            out = self._clean_text(text)
        except _TooMany:
            out = self.digest(text)
        if len(text) <= 512:
            if len(self._texts) >= 2048:
                self._texts.clear()
            self._texts[text] = out
        return out

    def _clean_text(self, text: str) -> str:
        out = text
        if "://" in out and "@" in out:
            out = _USERINFO.sub(self._replace_userinfo, out)
        if self._words and ("=" in out or ":" in out or "-" in out):
            out = self._clean_named(out)
        if "Bearer" in out or "Basic" in out:
            out = _BARE_SCHEME.sub(self._replace_bare, out)
        if "-" in out and any(c in out for c in SHORT_SECRET_FLAGS):
            commands: set[str] = set()
            for match in _COMMAND_WORD.finditer(out):
                self._candidate()
                start = match.start()
                # the command word, alone or after a path: `mysql`, `/usr/bin/mysql`
                if start == 0 or out[start - 1] == "/" or out[start - 1].isspace():
                    commands.add(match.group(1))
            for command in sorted(commands):
                out = _SHORT_PATTERNS[command].sub(self._replace_short, out)
        return out

    def _clean_named(self, text: str) -> str:
        """Values after words naming a secret (``name=v``, ``name: v``, ``--name v``).

        Each occurrence of a secret name is looked at once: the word holding it is
        found with two anchored matches (forward, and backward on the reversed text),
        so the cost is linear in the text, however its words and separators are laid out.
        """
        low = text.lower()
        if len(low) != len(text):
            # some characters lower-case to several ('İ'): keep positions aligned by
            # lower-casing the ASCII letters only (the names looked for are ASCII)
            low = text.encode("ascii", "replace").decode("ascii").lower()
        found = [w for w in self._words if w in low]
        if not found:
            return text
        rev: str | None = None
        size = len(text)
        spans: dict[int, tuple[int, str]] = {}  # value start -> (value end, replacement)
        for word in found:
            pos = low.find(word)
            while pos >= 0:
                self._candidate()
                end = _WORD.match(text, pos).end()
                after = _AFTER_NAME.match(text, end)
                if after is not None:
                    value, tail = split_value(after.group(2))
                    start = after.start(2)
                    spans.setdefault(start, (after.end(2), self._hide(value) + tail))
                    nxt = after.end()
                else:
                    if rev is None:
                        rev = text[::-1]
                    begin = size - _WORD.match(rev, size - pos).end()
                    flag = _AFTER_FLAG.match(text, end)
                    if (flag is not None and text.startswith("-", begin)
                            and _starts_word(text, begin)
                            and _FLAG_WORD.fullmatch(text, begin, end) is not None):
                        value, tail = split_value(flag.group(2))
                        start = flag.start(2)
                        spans.setdefault(start, (flag.end(2), self._hide(value) + tail))
                        nxt = flag.end()
                    else:
                        nxt = end
                pos = low.find(word, max(nxt, pos + 1))
        if not spans:
            return text
        parts: list[str] = []
        last = 0
        for start in sorted(spans):
            if start < last:
                continue  # inside a value already replaced
            end, replacement = spans[start]
            parts.append(text[last:start])
            parts.append(replacement)
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def _hide(self, value: str) -> str:
        self._count()
        return self.digest(_unquote(value))

    def clean(self, value: Any, depth: int = 0) -> Any:
        """``value`` with every secret replaced; non-JSON values become strings."""
        kind = type(value)
        if kind is str:
            return self.clean_text(value)
        if value is None or kind is bool or kind is int or kind is float:
            return value
        if depth > 20:
            return "<nested too deep>"
        if kind is dict or isinstance(value, Mapping):
            out: dict[str, Any] = {}
            secret = self.is_secret_name
            for k, v in value.items():
                name = k if type(k) is str else str(k)
                if v is not None and secret(name):
                    out[name] = self.digest(v)
                elif type(v) is str:
                    out[name] = self.clean_text(v)
                else:
                    out[name] = self.clean(v, depth + 1)
            return out
        if kind is list or kind is tuple or isinstance(value, (list, tuple, set, frozenset)):
            return self._clean_argv(value, depth)
        if isinstance(value, str):  # a str subclass (an enum value)
            return self.clean_text(str(value))
        return self.clean(str(value), depth + 1)

    def _clean_argv(self, value: Iterable[Any], depth: int) -> list[Any]:
        items: list[Any] = []
        hide_next = False
        short: tuple[tuple[str, bool], ...] = ()
        for item in value:
            if hide_next:
                items.append(self.digest(item))
                hide_next = False
                continue
            if type(item) is not str:
                items.append(self.clean(item, depth + 1))
                continue
            if not items:
                short = SHORT_SECRET_FLAGS.get(item[item.rfind("/") + 1:], ())
            if item.startswith("-") and "=" not in item:
                if _FLAG_WORD.fullmatch(item) is not None and self.is_secret_name(item):
                    hide_next = True
                    items.append(item)
                    continue
                for flag, separate in short:
                    if item == flag:
                        hide_next = separate
                        break
                    if item.startswith(flag) and not item.startswith(DIGEST_PREFIX, 2):
                        item = flag + self.digest(item[len(flag):])
                        break
                else:
                    item = self.clean_text(item)
                items.append(item)
                continue
            items.append(self.clean_text(item))
        return items

    # --- substitution callbacks ----------------------------------------------------------

    def _count(self) -> None:
        self._matches += 1
        if self._matches > MAX_MATCHES:
            raise _TooMany

    def _candidate(self) -> None:
        self._candidates += 1
        if self._candidates > MAX_CANDIDATES:
            raise _TooMany

    def _replace_userinfo(self, match: re.Match[str]) -> str:
        return "://" + match.group(1) + self._hide(match.group(2))

    def _replace_bare(self, match: re.Match[str]) -> str:
        self._candidate()
        if not _after_non_word(match.string, match.start()):
            return match.group(0)
        return match.group(1) + self._hide(match.group(2))

    def _replace_short(self, match: re.Match[str]) -> str:
        self._candidate()
        if not _starts_word(match.string, match.start()):
            return match.group(0)
        groups = [g for g in match.groups() if g is not None]
        flag, gap, raw = groups[0], groups[1], groups[2]
        value, after = split_value(raw)
        return flag + gap + self._hide(value) + after


__all__ = ["DIGEST_PREFIX", "MAX_CANDIDATES", "MAX_MATCHES", "SHORT_SECRET_FLAGS", "Redactor",
           "split_value"]
