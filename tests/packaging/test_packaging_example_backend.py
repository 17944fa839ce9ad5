"""The third-party backend from the guide, installed from its wheel into a fresh venv:
discovered, selected by neuroflow.toml, and passing its conformance tests there."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "third-party-backend"
CONFIG = '[sandbox]\nbackend = "nice"\n\n[sandbox.nice]\nniceness = 12\ncpu_time_limit = 5\n'
SELECTED_RUN = textwrap.dedent("""
    import anyio, os
    from neuroflow import create_backend, get_config

    async def main():
        name = get_config().section("sandbox").backend
        backend = create_backend("isolation")   # the configured one, behind the guards
        async with backend:
            result = await backend.execute("nice")
        print(name, type(backend).__name__, type(backend.backend).__name__,
              int(result.stdout) - os.nice(0))

    anyio.run(main)
""")


@pytest.fixture(scope="module")
def venv(wheelhouse, make_venv):
    """A fresh venv holding only the core, the example backend and pytest."""
    house = wheelhouse.build(ROOT / "neuroflow_core", EXAMPLE)
    env = make_venv("example")
    env.pip_install(house, "neuroflow", "neuroflow-sandbox-nice[test]")
    return env


def test_the_example_is_discovered(venv, run_command) -> None:
    infos = {i["name"]: i for i in json.loads(run_command(venv.bin("neuroflow"), "plugins",
                                                          "--json"))}
    nice = infos["nice"]
    assert (nice["distribution"], nice["version"], nice["status"], nice["builtin"]) == (
        "neuroflow-sandbox-nice", "0.1.0", "loaded", False
    )
    assert nice["provides"] == {"isolation": ["nice"]}


def test_the_example_is_selected_by_neuroflow_toml(venv, run_command, tmp_path) -> None:
    (tmp_path / "neuroflow.toml").write_text(CONFIG)
    checked = run_command(venv.bin("neuroflow"), "config", "check", "neuroflow.toml",
                          cwd=tmp_path)
    assert checked == "neuroflow.toml: ok\n"
    shown = run_command(venv.bin("neuroflow"), "config", "show", cwd=tmp_path)
    assert 'sandbox.backend = "nice"    # neuroflow.toml' in shown.splitlines()
    assert "sandbox.nice.niceness = 12    # neuroflow.toml" in shown.splitlines()
    ran = run_command(venv.python, "-c", SELECTED_RUN, cwd=tmp_path)
    assert ran.split() == ["nice", "GuardedBackend", "NiceSandbox", str(min(12, 19))]


def test_the_example_passes_its_conformance_tests_in_the_venv(venv, run_command, tmp_path):
    shutil.copytree(EXAMPLE / "tests", tmp_path / "tests")
    (tmp_path / "neuroflow.toml").write_text(CONFIG)
    output = run_command(venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
                         cwd=tmp_path)
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 5, output[-3000:]
    assert "failed" not in summary and "error" not in summary, output[-3000:]
