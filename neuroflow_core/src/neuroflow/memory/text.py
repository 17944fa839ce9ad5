"""The text side of a memory: the words it is searched by.

Every store indexes the same words (lower-cased runs of letters and digits taken from
the key, the value's strings, numbers and field names, and the tags), so keyword
relevance is identical whichever store answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

_WORD = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-case words (letters and digits; everything else separates)."""
    return _WORD.findall(text.lower())


#: Long texts are tokenized in pieces of about this many characters, cut at spaces, so
#: that no single call holds the interpreter for long (other threads, and the event loop
#: waiting for a worker thread, keep running).
PIECE = 65536


def token_pieces(text: str) -> Iterator[list[str]]:
    """The words of ``text`` (as :func:`tokenize`), a piece of the text at a time.

    Pieces are cut before a space, which separates words and never changes how the
    letters around it are lower-cased, so the words are exactly those of the whole text.
    """
    start = 0
    while start < len(text):
        end = text.find(" ", start + PIECE)
        end = len(text) if end < 0 else end
        yield tokenize(text[start:end])
        start = end


def _walk(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (int, float)):
        out.append(repr(value))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(str(k))
            _walk(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk(v, out)


def entry_text(key: str, value: Any, tags: Iterable[str]) -> str:
    """The text an entry is embedded and keyword-indexed by."""
    parts: list[str] = [key]
    _walk(value, parts)
    parts.extend(tags)
    return " ".join(parts)


def search_words(key: str, value: Any, tags: Iterable[str]) -> str:
    """The entry's distinct words, space-separated (what full-text indexes store)."""
    seen: dict[str, None] = {}
    for words in token_pieces(entry_text(key, value, tags)):
        seen.update(dict.fromkeys(words))
    return " ".join(seen)


def query_words(query: str) -> list[str]:
    """The distinct words of a search query, in order."""
    return list(dict.fromkeys(tokenize(query)))


def coverage(words: Sequence[str], document_words: Iterable[str] | str) -> float:
    """Fraction of ``words`` found in ``document_words`` (a set or a space-joined string)."""
    if not words:
        return 0.0
    have = set(document_words.split()) if isinstance(document_words, str) else document_words
    return sum(1 for w in words if w in have) / len(words)
