"""PostgreSQL configured but its driver (psycopg) not installed: one line naming the extra.

Each test runs a fresh interpreter in which importing ``psycopg`` fails as it does where
the package is not installed (a meta-path finder refuses it), with ``[memory] backend =
"postgres"`` in the working directory's neuroflow.toml.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REFUSE_PSYCOPG = """
import sys


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("psycopg", "psycopg2"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""

CONFIG = """
[memory]
backend = "postgres"

[memory.postgres]
url = "{url}"
"""

HINT = "pip install 'neuroflow[postgres]'"


def run(tmp_path: Path, code: str, url: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` after REFUSE_PSYCOPG, in ``tmp_path`` holding a postgres config."""
    (tmp_path / "neuroflow.toml").write_text(CONFIG.format(url=url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROFLOW_")}
    return subprocess.run([sys.executable, "-c", REFUSE_PSYCOPG + code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_refusal_works(tmp_path: Path) -> None:
    done = run(tmp_path, "import psycopg\n", "postgresql+psycopg://x@127.0.0.1/test")
    assert "ModuleNotFoundError: No module named 'psycopg'" in done.stderr


@pytest.mark.parametrize("url", ["postgresql+psycopg://postgres@127.0.0.1:5432/test",
                                 "postgresql://postgres@127.0.0.1:5432/test"],
                         ids=["psycopg", "default-driver"])
def test_the_cli_prints_one_line_naming_the_extra(tmp_path: Path, url: str) -> None:
    code = ("import sys\nfrom neuroflow.cli import main\n"
            "sys.argv = ['neuroflow', 'memory', 'list']\nmain()\n")
    done = run(tmp_path, code, url)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: memory.postgres: ")
    assert HINT in lines[0]
    # SQLAlchemy's default PostgreSQL driver depends on its version: psycopg or psycopg2
    assert ("driver 'psycopg' is not installed" in lines[0] if "+psycopg" in url
            else "is not installed" in lines[0])


def test_the_python_api_raises_missing_plugin_error(tmp_path: Path) -> None:
    code = (
        "import anyio\n"
        "from neuroflow.errors import MissingPluginError\n"
        "from neuroflow.memory import MemoryManager\n"
        "async def main():\n"
        "    manager = MemoryManager()\n"
        "    try:\n"
        "        await manager.store_memory('a', 'k', 1)\n"
        "    except MissingPluginError as exc:\n"
        "        print(exc)\n"
        "    finally:\n"
        "        await manager.aclose()\n"
        "anyio.run(main)\n"
    )
    done = run(tmp_path, code, "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert done.returncode == 0, done.stderr
    assert HINT in done.stdout
    assert done.stdout.count("\n") == 1
