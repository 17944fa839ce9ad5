"""Relative paths in a configuration file are taken from that file's folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli
from neuroflow.config import get_config, load_config

CONFIG = """
[sandbox.process]
work_dir = "ws"

[security.audit]
file = "logs/audit.log"
key_file = "/etc/absolute.key"

[tracer.local]
file = "traces.jsonl"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a neuroflow.toml; the working directory is a folder below it."""
    (tmp_path / "neuroflow.toml").write_text(CONFIG)
    below = tmp_path / "src" / "deep"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    return tmp_path


def test_relative_paths_are_resolved_against_the_file_not_the_working_directory(project):
    cfg = get_config()
    assert cfg.files == (project / "neuroflow.toml",)
    assert cfg.options("sandbox").work_dir == str(project / "ws")
    audit = cfg.section("security").settings.audit
    assert audit.file == project / "logs" / "audit.log"
    assert audit.key_file == Path("/etc/absolute.key")  # absolute paths are left alone
    assert cfg.options("tracer", "local").file == project / "traces.jsonl"


def test_the_explicit_config_file_anchors_its_own_paths(project, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "other.toml").write_text('[sandbox.process]\nwork_dir = "box"\n')
    monkeypatch.setenv("NEUROFLOW_CONFIG", str(elsewhere / "other.toml"))
    assert get_config().options("sandbox").work_dir == str(elsewhere / "box")
    assert load_config(files=[project / "neuroflow.toml"], environ={}).options(
        "sandbox").work_dir == str(project / "ws")


def test_paths_from_the_environment_and_keywords_keep_the_working_directory(project):
    env = load_config(environ={"NEUROFLOW_SANDBOX__PROCESS__WORK_DIR": '"here"'})
    assert env.options("sandbox").work_dir == "here"
    keyword = load_config(environ={}, sandbox={"process": {"work_dir": "there"}})
    assert keyword.options("sandbox").work_dir == "there"
    assert Path(os.getcwd()) != project


def test_config_show_prints_the_absolute_paths(project):
    result = CliRunner().invoke(build_cli(), ["config", "show"])
    assert result.exit_code == 0, result.output
    assert f'security.audit.file = "{project / "logs" / "audit.log"}"' in result.stdout
    assert f'sandbox.process.work_dir = "{project / "ws"}"' in result.stdout
