"""``neuroflow doctor`` and ``neuroflow config show`` say which PostgreSQL search path the
configured store is on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli
from neuroflow.config import reload_config


@pytest.fixture(params=["cache", "pgvector"])
def configured(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> str:
    """A neuroflow.toml selecting a postgres store on one path; returns that path."""
    if request.param == "cache":
        url, prefix = (request.getfixturevalue("postgres_url"),
                       request.getfixturevalue("pg_prefix"))
    else:
        url, prefix = (request.getfixturevalue("pgvector_url"),
                       request.getfixturevalue("pgv_prefix"))
    monkeypatch.chdir(tmp_path)
    Path("neuroflow.toml").write_text(
        f'[memory]\nbackend = "postgres"\n\n[memory.postgres]\nurl = "{url}"\n'
        f'table_prefix = "{prefix}"\ncache_bytes = "64M"\n')
    reload_config()
    yield request.param
    Path("neuroflow.toml").unlink()
    reload_config()


@pytest.mark.postgres
def test_config_show_and_doctor_name_the_path(configured: str) -> None:
    runner = CliRunner()
    shown = runner.invoke(build_cli(), ["config", "show", "--json"])
    assert shown.exit_code == 0, shown.output
    active = json.loads(shown.stdout)["config"]["memory"]["active"]
    assert active["backend"] == "postgres" and active["vector_search"] == configured
    text = runner.invoke(build_cli(), ["config", "show"]).stdout
    assert f'memory.active.vector_search = "{configured}"    # what the store reports' in text
    doctor = runner.invoke(build_cli(), ["doctor"]).stdout
    line = next(x for x in doctor.splitlines() if "PostgreSQL semantic search" in x)
    if configured == "pgvector":
        assert "[ok ]" in line and "pgvector (hnsw index;" in line
        assert f"cached up to {64 * 1024 * 1024} bytes" in line
        assert "under 15000 entries or 0.5 of the table" in line
        assert active["index_min_entries"] == 15000 and active["index_min_share"] == 0.5
    else:
        assert "per-agent cache" in line and f"{64 * 1024 * 1024} bytes" in line


@pytest.mark.postgres
def test_import_builds_the_vector_index_once_at_the_end(
        pgvector_url: str, pgv_prefix: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``neuroflow memory import`` into pgvector loads first (no index while it loads),
    then builds the index; the imported memories are found by meaning."""
    import anyio

    from neuroflow_memory_sqlite import pg_search

    monkeypatch.chdir(tmp_path)
    Path("neuroflow.toml").write_text(
        f'[memory]\nbackend = "postgres"\n\n[memory.postgres]\nurl = "{pgvector_url}"\n'
        f'table_prefix = "{pgv_prefix}"\nindex_min_entries = 1\n')
    reload_config()
    dump = tmp_path / "dump.jsonl"
    dump.write_text("".join(json.dumps({"agent_id": "a", "key": f"k{i}",
                                        "value": {"text": f"note number {i} about tea"}})
                            + "\n" for i in range(300)))
    seen: list[tuple[int, bool]] = []
    ensure = pg_search.PgSearch._ensure_index

    def watch(self: pg_search.PgSearch, dim: int) -> None:
        seen.append((dim, bool(self._bulk_loads)))
        ensure(self, dim)

    monkeypatch.setattr(pg_search.PgSearch, "_ensure_index", watch)
    try:
        done = CliRunner().invoke(build_cli(), ["memory", "import", str(dump),
                                                "--batch-size", "100"])
        assert done.exit_code == 0 and "imported 300" in done.output, done.output
        # Asked at every batch while loading (and not built), then once after the load.
        assert seen[-1] == (256, False) and all(bulk for _, bulk in seen[:-1])
        assert len(seen) >= 2

        from neuroflow.memory import MemoryManager

        async def check() -> list[str]:
            async with MemoryManager() as manager:
                rows = await anyio.to_thread.run_sync(
                    manager.store._rows, "SELECT to_regclass(:n) IS NOT NULL",
                    {"n": f"{pgv_prefix}entries_vec256"})
                assert rows[0][0] is True
                found = await manager.search_memories("a", "note number 7 about tea", limit=1)
                return [e.key for e in found]

        assert anyio.run(check) == ["k7"]
    finally:
        Path("neuroflow.toml").unlink()
        reload_config()
