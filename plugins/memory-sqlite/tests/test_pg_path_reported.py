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
        assert "[ok ]" in line and "pgvector (hnsw index)" in line
    else:
        assert "per-agent cache" in line and f"{64 * 1024 * 1024} bytes" in line
