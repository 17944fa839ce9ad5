"""SPEC.md §2 unchanged against SQLite and PostgreSQL chosen by configuration; wordllama."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroflow import create_backend
from neuroflow.backends import BackendKind
from neuroflow.plugins import get_plugin_manager


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def configured(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Write a neuroflow.toml selecting the store; return its backend name."""
    if request.param == "sqlite":
        body = f'[memory]\nbackend = "sqlite"\n[memory.sqlite]\nurl = "sqlite:///{tmp_path}/m.db"\n'
    else:
        url = request.getfixturevalue("postgres_url")
        prefix = request.getfixturevalue("pg_prefix")
        body = (f'[memory]\nbackend = "postgres"\n[memory.postgres]\nurl = "{url}"\n'
                f'table_prefix = "{prefix}"\n')
    Path("neuroflow.toml").write_text(body)
    return request.param


@pytest.mark.anyio
async def test_spec_section_2_runs_unchanged(configured: str) -> None:
    from neuroflow.memory import MemoryConfig, MemoryManager

    config = MemoryConfig(max_entries=10000, gc_interval_seconds=300)
    manager = MemoryManager(config)

    await manager.store_memory(
        agent_id="user-123",
        key="preference:theme",
        value={"theme": "dark", "lang": "zh"},
        tags=["preference", "ui"],
        importance=0.8,
    )
    memory = await manager.retrieve_memory(agent_id="user-123", key="preference:theme")
    assert memory.value == {"theme": "dark", "lang": "zh"}
    memories = await manager.search_memories(
        agent_id="user-123", tags=["preference"], min_importance=0.5, limit=10,
    )
    assert [m.key for m in memories] == ["preference:theme"]
    await manager.delete_memory(agent_id="user-123", key="preference:theme")
    assert type(manager.store).__name__ == "SqlStore" and manager.store.dialect == (
        "sqlite" if configured == "sqlite" else "postgresql")
    await manager.aclose()


def test_plugin_registers_its_backends() -> None:
    manager = get_plugin_manager()
    stores = manager.backends(BackendKind.MEMORY)
    assert {"sqlite", "sql", "postgres"} <= set(stores)
    assert stores["sqlite"].distribution == "neuroflow-memory-sqlite"
    assert "wordllama" in manager.backends(BackendKind.EMBEDDER)


def test_entry_point_module_does_not_import_sqlalchemy() -> None:
    import subprocess
    import sys

    code = ("import sys, neuroflow_memory_sqlite.plugin; "
            "assert 'sqlalchemy' not in sys.modules and 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_store_options_name_the_field(tmp_path: Path) -> None:
    from neuroflow.config import get_config
    from neuroflow.errors import ConfigError

    Path("neuroflow.toml").write_text(
        '[memory]\nbackend = "sqlite"\n[memory.sqlite]\nurl = 5\ntable_prefx = "x"\n')
    with pytest.raises(ConfigError) as info:
        get_config().section("memory")
    text = str(info.value)
    assert "memory.sqlite.url" in text and "did you mean 'table_prefix'" in text


def test_wordllama_embedder_offline_and_semantic() -> None:
    pytest.importorskip("wordllama", reason="the wordllama extra is not installed")
    embedder = create_backend(BackendKind.EMBEDDER, "wordllama")
    vectors = embedder.embed(["the user prefers a dark colour scheme",
                              "night mode interface preference", "recipe for lemon cake"])
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


@pytest.mark.anyio
async def test_semantic_search_with_wordllama_finds_meaning(sqlite_url: str) -> None:
    pytest.importorskip("wordllama", reason="the wordllama extra is not installed")
    from neuroflow.memory import MemoryConfig, MemoryManager
    from neuroflow_memory_sqlite.store import SqliteStoreConfig, SqlStore

    manager = MemoryManager(MemoryConfig(semantic_share=1.0), store=SqlStore(
        SqliteStoreConfig(url=sqlite_url)), embedder="wordllama")
    await manager.store_memory("u", "ui", {"note": "prefers dark colour scheme at night"})
    await manager.store_memory("u", "food", {"note": "allergic to peanuts"})
    await manager.store_memory("u", "travel", {"note": "flies to Berlin in May"})
    found = await manager.search_memories("u", "which theme does the interface use", limit=1)
    assert found[0].key == "ui"
    found = await manager.search_memories("u", "nut allergy", limit=1)
    assert found[0].key == "food"
    await manager.aclose()


def test_doctor_reports_what_the_stores_need() -> None:
    checks = {c.name: c for c in get_plugin_manager().doctor_checks()}
    assert checks["memory: SQLite FTS5 keyword index"].ok
    assert checks["memory: psycopg for the postgres store"].ok


def test_a_relative_sqlite_url_in_a_file_is_taken_from_the_file_s_folder(tmp_path: Path,
                                                                         monkeypatch) -> None:
    from neuroflow.config import get_config

    (tmp_path / "neuroflow.toml").write_text(
        '[memory]\nbackend = "sqlite"\n[memory.sqlite]\nurl = "sqlite:///data/m.db?x=1"\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    options = get_config().options("memory")
    assert options.url == f"sqlite:///{tmp_path / 'data' / 'm.db'}?x=1"
