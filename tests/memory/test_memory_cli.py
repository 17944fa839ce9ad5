"""``neuroflow memory ...`` against the store the configuration selects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli
from neuroflow.config import reload_config


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Path:
    pytest.importorskip("neuroflow_memory_sqlite", reason="needs neuroflow-memory-sqlite")
    db = tmp_path / "mem.db"
    Path("neuroflow.toml").write_text(
        f'[memory]\nbackend = "sqlite"\n\n[memory.sqlite]\nurl = "sqlite:///{db}"\n')
    from neuroflow.memory import MemoryManager

    async def fill() -> None:
        async with MemoryManager() as manager:
            await manager.store_memory("user-123", "preference:theme",
                                       {"theme": "dark", "lang": "zh"}, tags=["preference"],
                                       importance=0.8)
            await manager.store_memory("user-123", "note", {"text": "green tea"}, tags=["food"])
            await manager.store_memory("bot", "k", 1)

    anyio.run(fill)
    return db


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(build_cli(), ["memory", *args], input=input)
    return result.exit_code, result.output


def test_list_show_search_stats_delete(sqlite_config: Path) -> None:
    code, out = run("list")
    assert code == 0 and out.splitlines()[0].startswith("bot  k  v1")
    code, out = run("list", "user-123", "--json")
    assert [e["key"] for e in json.loads(out)] == ["note", "preference:theme"]
    code, out = run("show", "user-123", "preference:theme", "--history", "--json")
    data = json.loads(out)
    assert data["entry"]["value"]["theme"] == "dark" and data["history"][0]["op"] == "create"
    code, out = run("search", "user-123", "dark theme", "--explain", "--json")
    assert json.loads(out)[0]["key"] == "preference:theme"
    assert "semantic" in json.loads(out)[0]["explain"]
    code, out = run("search", "user-123", "--filter", '{"value.lang": {"$eq": "zh"}}')
    assert code == 0 and "preference:theme" in out and "note" not in out
    code, out = run("stats", "--json")
    assert json.loads(out)["agents"] == {"bot": 1, "user-123": 2}
    code, out = run("delete", "user-123", "note")
    assert code == 0 and "deleted 1" in out
    code, out = run("delete", "user-123", "--tag", "preference", "--yes")
    assert code == 0 and "deleted 1" in out
    code, out = run("show", "user-123", "note")
    assert code == 1


def test_errors_are_one_clear_line(sqlite_config: Path) -> None:
    code, out = run("search", "user-123", "--filter", '{"value.x": {"$regex": "a"}}')
    assert code == 2 and "unknown operator '$regex'" in out and "Traceback" not in out
    code, out = run("delete", "--yes")
    assert code == 2 and "--everything" in out and "everything=True" not in out
    code, out = run("delete", "--filter", "{}", "--yes")
    assert code == 2 and "--everything" in out and "everything=True" not in out
    code, out = run("stats", "--json")
    assert json.loads(out)["entries"] == 3


def test_console_script_in_a_real_process(sqlite_config: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "neuroflow", "memory", "stats", "--json"],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["entries"] == 3


def test_export_then_import_into_another_store(sqlite_config: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    code, out = run("export", str(dump))
    assert code == 0 and "exported 3" in out
    lines = [json.loads(x) for x in dump.read_text(encoding="utf-8").splitlines()]
    assert [(x["agent_id"], x["key"]) for x in lines] == [
        ("bot", "k"), ("user-123", "note"), ("user-123", "preference:theme")]
    assert lines[2]["value"] == {"theme": "dark", "lang": "zh"} and lines[2]["importance"] == 0.8
    other = tmp_path / "other.db"
    Path("neuroflow.toml").write_text(
        f'[memory]\nbackend = "sqlite"\n\n[memory.sqlite]\nurl = "sqlite:///{other}"\n')
    reload_config()
    code, out = run("import", str(dump))
    assert code == 0 and "imported 3" in out, out
    code, out = run("show", "user-123", "preference:theme", "--json")
    entry = json.loads(out)["entry"]
    assert entry["value"] == {"theme": "dark", "lang": "zh"} and entry["tags"] == ["preference"]
    assert entry["importance"] == 0.8 and entry["version"] == 1
    code, out = run("search", "user-123", "dark theme", "--json")
    assert json.loads(out)[0]["key"] == "preference:theme"
    code, out = run("export", "--agent", "bot")
    exported = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert code == 0 and [x["key"] for x in exported] == ["k"] and "exported 1" in out


def test_import_names_the_bad_line(sqlite_config: Path, tmp_path: Path) -> None:
    dump = tmp_path / "bad.jsonl"
    dump.write_text('{"agent_id": "a", "key": "x", "value": 1}\n\n{"agent_id": "a"}\n')
    code, out = run("import", str(dump))
    assert code == 2 and "line 3: key: missing" in out and "Traceback" not in out
    dump.write_text('{"agent_id": "a", "key": "x", "value": 1}\nnot json\n')
    code, out = run("import", str(dump))
    assert code == 2 and "line 2: not JSON" in out
    code, out = run("list", "a")
    assert code == 0 and out == ""
