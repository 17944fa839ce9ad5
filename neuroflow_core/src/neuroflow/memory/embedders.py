"""Embedders: text -> vector, for semantic memory search.

:class:`Embedder` is the role; plugins provide more through the ``neuroflow_embedders``
hook.  :class:`LexicalEmbedder` (backend ``lexical``) is the zero-dependency default:
deterministic hashed words and character trigrams, so texts that share words or word
pieces ("theme", "themes", "dark-theme") land close together.  It knows no synonyms; for
that install a model embedder (``wordllama`` from ``neuroflow-memory-sqlite[wordllama]``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import attrs

from neuroflow.memory.text import token_pieces

if TYPE_CHECKING:
    import numpy as np


@attrs.frozen
class LexicalEmbedderConfig:
    """Options of the ``lexical`` embedder (``[embedder.lexical]``).

    Attributes:
        dimension: the vector size (hash buckets).
        word_weight: weight of a whole word relative to one of its trigrams.
    """

    dimension: int = 256
    word_weight: float = 2.0


class LexicalEmbedder:
    """Deterministic hashed bag of words and character trigrams (numpy only, no model)."""

    def __init__(self, config: LexicalEmbedderConfig | None = None) -> None:
        self.config = config or LexicalEmbedderConfig()
        self.dimension = self.config.dimension
        self.name = f"lexical-{self.dimension}"
        self._features = lru_cache(maxsize=65536)(self._word_features)

    def _word_features(self, word: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
        dim = self.dimension
        grams = [f"w:{word}"]
        padded = f"<{word}>"
        grams += [padded[i : i + 3] for i in range(max(1, len(padded) - 2))]
        idx: list[int] = []
        val: list[float] = []
        for n, gram in enumerate(grams):
            h = zlib.crc32(gram.encode("utf-8"))
            idx.append(h % dim)
            weight = self.config.word_weight if n == 0 else 1.0
            val.append(weight if (h >> 31) & 1 else -weight)
        return tuple(idx), tuple(val)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; an empty text gives a zero vector."""
        import numpy as np

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            vec = np.zeros(self.dimension, dtype=np.float64)
            # A piece at a time: a long text never holds the interpreter in one call.
            for words in token_pieces(text):
                idx: list[int] = []
                val: list[float] = []
                for word in words:
                    i, v = self._features(word)
                    idx += i
                    val += v
                if idx:
                    vec += np.bincount(idx, weights=val, minlength=self.dimension)
            norm = float(np.sqrt(vec @ vec))
            if norm > 0:
                out[row] = vec / norm
        return out


def similarities(vectors: Any, query: Any) -> Any:
    """Each row of ``vectors`` (a 2-D array) dotted with the ``query`` vector, as float32.

    Every search path scores through this one function, so a row scores the same bits
    whether it is ranked among all of an agent's rows or among a few candidates (the
    results of the paths are compared exactly).  Each row is one BLAS ``sdot`` summed in
    float64 (``numpy.vecdot``): the same for a row wherever it sits, single-threaded (a
    matrix-vector product would gain nothing from BLAS threads here, and on a busy
    machine waiting for them costs milliseconds), and faster than ``einsum``.

    Args:
        vectors: an ``(n, d)`` array of float32 rows.
        query: a length-``d`` vector (cast to the rows' type).
    """
    import numpy as np

    # Contiguous rows and query: BLAS takes another kernel (other bits) for strided ones.
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    return np.vecdot(rows, np.ascontiguousarray(query, dtype=np.float32))
