"""Fixtures: a project folder with one real ``neuroflow demo`` run, and ``neuroflow
console`` started on it (see ``console_helpers``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import PROJECT_TOML, Console, run_demo, start_console


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder configured with ``PROJECT_TOML``, and one demo run in it."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "neuroflow.toml").write_text(PROJECT_TOML)
    folder.joinpath("first-run.json").write_text(json.dumps(run_demo(folder)))
    return folder


@pytest.fixture(scope="module")
def console(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """``neuroflow console`` on the project, with the configuration's default sources."""
    db = tmp_path_factory.mktemp("db") / "console.sqlite3"
    running = start_console(project, "--db", str(db))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def first_run(project: Path) -> dict[str, Any]:
    """What the project's first demo run printed."""
    return json.loads(project.joinpath("first-run.json").read_text())
