"""``.ci/summary.py``: the totals line, and in CI (``CI=true``) no skip the machine can run.

Each test writes a small JUnit XML report by hand and runs the script as CI does.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "summary.py"

PASSED = '<testcase classname="tests.a" name="test_ok" time="0.1" />'


def skipped(name: str, reason: str, kind: str = "pytest.skip") -> str:
    """A skipped test case as pytest writes it."""
    return (f'<testcase classname="tests.a" name="{name}" time="0.0">'
            f'<skipped type="{kind}" message="{reason}">/repo/tests/a.py:12: {reason}</skipped>'
            "</testcase>")


def failed(name: str) -> str:
    """A failed test case as pytest writes it."""
    return (f'<testcase classname="tests.a" name="{name}" time="0.0">'
            '<failure message="assert 1 == 2">E assert 1 == 2</failure></testcase>')


def report(tmp_path: Path, *cases: str, skips: int | None = None,
           failures: int | None = None) -> Path:
    """A JUnit report of ``cases``; the suite's counters are derived unless given."""
    skips = sum("<skipped" in c for c in cases) if skips is None else skips
    failures = sum("<failure" in c for c in cases) if failures is None else failures
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" errors="0" failures="{failures}" skipped="{skips}" '
        f'tests="{len(cases)}" time="1.0">{"".join(cases)}</testsuite></testsuites>')
    return path


def summary(path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``.ci/summary.py path`` with ``CI`` set to ``ci`` (or unset)."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def test_all_passed_is_green_in_and_out_of_ci(tmp_path: Path) -> None:
    path = report(tmp_path, PASSED, PASSED)
    for ci in (None, "true"):
        done = summary(path, ci)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "pytest: 2 passed, 0 failed, 0 skipped\n"


def test_a_failure_is_red(tmp_path: Path) -> None:
    done = summary(report(tmp_path, PASSED, failed("test_bad")), None)
    assert done.returncode == 1
    assert done.stdout == "pytest: 1 passed, 1 failed, 0 skipped\n"


def test_no_test_passed_is_red(tmp_path: Path) -> None:
    done = summary(report(tmp_path), None)
    assert done.returncode == 1
    assert "no test passed" in done.stderr


def test_an_unreadable_report_is_red_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text("<testsuites><testsuite")
    done = summary(path, None)
    assert done.returncode == 1
    assert f"cannot read the JUnit report {path}" in done.stderr
    done = summary(tmp_path / "missing.xml", None)
    assert done.returncode == 1
    assert "cannot read the JUnit report" in done.stderr


def test_outside_ci_any_skip_is_accepted(tmp_path: Path) -> None:
    path = report(tmp_path, PASSED, skipped("test_cg", "no usable cgroup on this machine"))
    for ci in (None, "", "false", "0"):
        done = summary(path, ci)
        assert done.returncode == 0, (ci, done.stderr)
        assert done.stdout == "pytest: 1 passed, 0 failed, 1 skipped\n"


@pytest.mark.parametrize("ci", ["true", "TRUE", "1", "yes"])
def test_in_ci_a_skip_the_machine_can_run_is_red_and_named(tmp_path: Path, ci: str) -> None:
    path = report(tmp_path, PASSED,
                  skipped("test_cg", "no usable cgroup on this machine"),
                  skipped("test_minilm", "the minilm extra is not installed"))
    done = summary(path, ci)
    assert done.returncode == 1
    assert done.stdout == "pytest: 1 passed, 0 failed, 2 skipped\n"
    assert "CI=true and 2 test(s) skipped" in done.stderr
    assert "tests.a::test_cg: no usable cgroup on this machine" in done.stderr
    assert "tests.a::test_minilm: the minilm extra is not installed" in done.stderr


def test_in_ci_an_xfail_counts_as_a_skip(tmp_path: Path) -> None:
    path = report(tmp_path, PASSED, skipped("test_flaky", "known bug", kind="pytest.xfail"))
    done = summary(path, "true")
    assert done.returncode == 1
    assert "tests.a::test_flaky: known bug" in done.stderr


def test_in_ci_a_module_level_skip_without_a_message_attribute_is_read_from_its_text(
    tmp_path: Path,
) -> None:
    case = ('<testcase classname="tests.b" name="test_x" time="0.0">'
            '<skipped type="pytest.skip">/repo/tests/b.py:3: Skipped: needs Linux</skipped>'
            "</testcase>")
    done = summary(report(tmp_path, PASSED, case), "true")
    assert done.returncode == 1
    assert "tests.b::test_x: needs Linux" in done.stderr


def load_summary() -> types.ModuleType:
    """``.ci/summary.py`` as a module, to call ``main`` with another allowed list."""
    spec = importlib.util.spec_from_file_location("ci_summary", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_in_ci_only_the_listed_reasons_are_accepted(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    module = load_summary()
    lacking = "this machine has no GPU"
    path = report(tmp_path, PASSED, skipped("test_gpu", lacking))
    assert module.main(str(path), environ={"CI": "true"}, allowed=(lacking,)) == 0
    assert module.main(str(path), environ={"CI": "true"}, allowed=()) == 1
    assert "tests.a::test_gpu: this machine has no GPU" in capsys.readouterr().err
    # the reason must be the listed one, not merely contain it
    other = report(tmp_path, PASSED, skipped("test_gpu", lacking + " and no cgroup"))
    assert module.main(str(other), environ={"CI": "true"}, allowed=(lacking,)) == 1


def test_the_allowed_list_is_short_and_every_entry_is_a_full_reason() -> None:
    lacks = load_summary().CI_MACHINE_LACKS
    assert isinstance(lacks, tuple)
    assert len(lacks) <= 5
    assert all(isinstance(reason, str) and len(reason) >= 15 for reason in lacks)


def test_the_real_skips_of_this_repository_are_reported(tmp_path: Path) -> None:
    """A real pytest run whose only test skips, as the cgroup tests do on a bare machine."""
    (tmp_path / "test_skipper.py").write_text(
        "import pytest\n"
        "def test_ok():\n    pass\n"
        "@pytest.mark.skipif(True, reason='this machine has no usable pids/memory cgroup')\n"
        "def test_tree():\n    pass\n"
        "def test_late():\n    pytest.skip('the neuroflow console script is not installed')\n")
    junit = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-p", "no:randomly", f"--junitxml={junit}", "--rootdir", str(tmp_path),
                    "-c", os.devnull, str(tmp_path / "test_skipper.py")],
                   capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
                   check=False)
    assert summary(junit, None).returncode == 0
    done = summary(junit, "true")
    assert done.returncode == 1
    assert "test_skipper::test_tree: this machine has no usable pids/memory cgroup" in done.stderr
    assert ("test_skipper::test_late: the neuroflow console script is not installed"
            in done.stderr)
