"""The ``wordllama`` embedder: static word embeddings whose weights ship in the wheel.

Needs ``pip install 'neuroflow-memory-sqlite[wordllama]'`` (numpy + tokenizers, no torch).
It runs offline: the model is loaded from the installed package folder, never downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from neuroflow.errors import MissingPluginError

if TYPE_CHECKING:
    import numpy as np

DIMENSIONS = (64, 128, 256, 512, 1024)


@attrs.frozen
class WordLlamaConfig:
    """Options of the ``wordllama`` embedder (``[embedder.wordllama]``).

    Attributes:
        dimension: the (Matryoshka-truncated) vector size: 64, 128, 256, 512 or 1024.
    """

    dimension: int = 256


class WordLlamaEmbedder:
    """Embeds with WordLlama (loaded on first use, ~0.2 s)."""

    def __init__(self, config: WordLlamaConfig | None = None) -> None:
        self.config = config or WordLlamaConfig()
        if self.config.dimension not in DIMENSIONS:
            raise MissingPluginError(
                f"embedder.wordllama.dimension: expected one of {DIMENSIONS}, "
                f"got {self.config.dimension!r}")
        self.dimension = self.config.dimension
        self.name = f"wordllama-{self.dimension}"
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                import wordllama
                from wordllama import WordLlama
            except ImportError:
                raise MissingPluginError(
                    "embedder 'wordllama' needs the wordllama package: "
                    "pip install 'neuroflow-memory-sqlite[wordllama]'") from None
            from pathlib import Path

            # Its own lookup searches the tokenizer in the wrong folder; point it at the
            # package folder, where the wheel keeps weights and tokenizer.
            folder = Path(wordllama.__file__).parent
            self._model = WordLlama.load(cache_dir=folder, disable_download=True,
                                         dim=self.dimension)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return L2-normalised float32 rows."""
        import numpy as np

        out = np.asarray(self._load().embed(list(texts)), dtype=np.float32)
        if out.ndim == 1:
            out = out.reshape(1, -1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
