"""Shared fixtures for the packaging tests: one wheelhouse per session, fresh venvs."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "neuroflow_core"
EXAMPLE = ROOT / "examples" / "third-party-backend"


@attrs.frozen
class Distribution:
    """A distribution of this repository: where it lives and what its pyproject says."""

    folder: Path
    name: str
    version: str
    entry_points: dict[str, str]

    @classmethod
    def read(cls, folder: Path) -> Distribution:
        """Read ``folder/pyproject.toml``."""
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        return cls(folder, project["name"], project["version"],
                   dict(project.get("entry-points", {}).get("neuroflow", {})))


def plugin_distributions() -> list[Distribution]:
    """Every ``plugins/*/`` distribution that exists."""
    return [Distribution.read(p.parent) for p in sorted(ROOT.glob("plugins/*/pyproject.toml"))]


def clean_env() -> dict[str, str]:
    """The environment for a subprocess that must not see the dev venv or NEUROFLOW_*."""
    drop = ("NEUROFLOW_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> str:
    """Run a command; fail the test with its output if it fails; return stdout."""
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          env=clean_env(), timeout=timeout, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {done.returncode}\n"
                    f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}")
    return done.stdout


class Wheelhouse:
    """A folder of wheels; each distribution is built (once) when first asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._built: set[Path] = set()

    def build(self, *folders: Path) -> Path:
        """Build the wheels of ``folders`` that are not built yet; return the folder."""
        todo = [f for f in folders if f not in self._built]
        if todo:
            run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", self.path, *todo)
            self._built.update(todo)
        return self.path


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    """The session's wheelhouse (see :class:`Wheelhouse`)."""
    return Wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


class Venv:
    """A fresh virtual environment, filled by the dev environment's pip (``--python``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        run(sys.executable, "-m", "venv", "--without-pip", path)
        self.python = path / "bin" / "python"

    def pip_install(self, wheelhouse: Path, *requirements: str) -> None:
        """Install requirements, our distributions from the wheelhouse, the rest from the index."""
        run(sys.executable, "-m", "pip", "--python", self.python, "install", "-q",
            "--find-links", wheelhouse, *requirements)

    def bin(self, name: str) -> Path:
        """The path of a console script in the venv."""
        return self.path / "bin" / name


@pytest.fixture(scope="session")
def local_plugins() -> list[Distribution]:
    """Every ``plugins/*/`` distribution of the repository."""
    return plugin_distributions()


@pytest.fixture(scope="session")
def run_command() -> object:
    """``run_command(*args, cwd=None)``: run, fail the test if it fails, return stdout."""
    return run


@pytest.fixture(scope="session")
def make_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[type[Venv]]:
    """Create venvs under a session temp dir: ``make_venv(name)``."""
    base = tmp_path_factory.mktemp("venvs")
    yield lambda name: Venv(base / name)  # type: ignore[misc]
