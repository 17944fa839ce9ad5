"""``IsolationBackendSuite`` fails every deliberately broken backend of
``broken_backends.py`` in the tests aimed at its defect, and passes the real one.

The suite runs in a separate pytest process, against a generated test module with one
subclass per backend (under asyncio only, to save time); the outcome of each test is read
from its JUnit XML report, with the failure's text.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import broken_backends
import pytest

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent

#: For each broken backend: the suite's tests that must fail, and a phrase of the failure.
MUST_FAIL: dict[str, dict[str, str]] = {
    "IgnoresTimeouts": {
        "test_timeout_ends_a_sleeping_command": "outlived its timeout",
        "test_wall_timeout_setting_ends_a_sleeping_command": "outlived wall_timeout",
        "test_no_process_survives_a_timeout": "outlived its timeout",
    },
    "IgnoresCpuLimit": {
        "test_cpu_time_limit_stops_a_spinning_command": "2.5 CPU s under a 1 s limit",
    },
    "IgnoresMemoryLimit": {
        "test_memory_limit_stops_a_growing_command": "more than memory_limit",
    },
    "IgnoresOutputCap": {
        "test_output_is_capped": "went on after its stdout passed the cap",
    },
    "IgnoresLimits": {
        "test_timeout_ends_a_sleeping_command": "outlived its timeout",
        "test_wall_timeout_setting_ends_a_sleeping_command": "outlived wall_timeout",
        "test_cpu_time_limit_stops_a_spinning_command": "2.5 CPU s under a 1 s limit",
        "test_memory_limit_stops_a_growing_command": "more than memory_limit",
        "test_output_is_capped": "went on after its stdout passed the cap",
    },
    "LeaksHostEnvironment": {
        "test_environment_is_clean": "set before the backend was built leaked",
    },
    "PassesHostEnvironment": {
        "test_environment_is_clean": "set after the backend was built leaked",
    },
    "KillsOnlyTheProcessGroup": {
        "test_no_process_survives_the_run": "outlived it",
        "test_no_process_survives_a_timeout": "outlived it",
    },
    "KillsOnlyTheDirectChild": {
        "test_no_process_survives_the_run": "outlived it",
        "test_no_process_survives_a_timeout": "outlived it",
    },
    "IgnoresAllowedCommands": {
        "test_allowed_commands_refuses_before_running": "is not in allowed_commands but ran",
    },
    "IgnoresWorkDir": {
        "test_commands_run_in_the_work_dir": "did not run in work_dir",
    },
    "SkipsTheGate": {
        "test_the_gate_sees_every_command": "not asked about every command",
        "test_a_denying_gate_stops_the_command": "the gate denied the command, but it ran",
    },
    "AsksTheGateAfterRunning": {
        "test_a_denying_gate_stops_the_command": "the gate denied the command, but it ran",
    },
}

#: Tests every broken backend still passes: each is the real backend but for one defect.
MUST_PASS = ("test_exit_code_propagates", "test_stdout_and_stderr_are_captured_separately")

MODULE_HEAD = '''
import attrs
import pytest

import broken_backends
from neuroflow.errors import UnsupportedLimitError
from neuroflow.sandbox import SandboxConfig, SandboxIsolator
from neuroflow.testing import IsolationBackendSuite


@pytest.fixture
def anyio_backend():
    return "asyncio"


def maker(backend_class):
    def make(gate=False, **settings):
        return backend_class(SandboxConfig(**settings), gate=gate)
    return make


class TestReal(IsolationBackendSuite):
    @pytest.fixture
    def make_isolation_backend(self):
        return maker(SandboxIsolator)


@attrs.frozen
class TinyConfig:
    work_dir: str | None = None


class TestConfigLacksSettings(IsolationBackendSuite):
    backend_name = "process"
    backend_config = TinyConfig()


class TestCannotEnforceMemoryHere(IsolationBackendSuite):
    @pytest.fixture
    def make_isolation_backend(self):
        def make(gate=False, **settings):
            if "memory_limit" in settings:
                raise UnsupportedLimitError("memory_limit: no memory cgroup on this machine")
            return SandboxIsolator(SandboxConfig(**settings), gate=gate)
        return make
'''

MODULE_CLASS = '''

class Test{name}(IsolationBackendSuite):
    @pytest.fixture
    def make_isolation_backend(self):
        return maker(broken_backends.{name})
'''


def start_suite(folder: Path, node_ids: list[str], report: str) -> subprocess.Popen:
    """Start pytest on ``node_ids`` in ``folder``, writing a JUnit XML ``report``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(folder), "-c", str(folder / "pytest.ini"), f"--junitxml={folder / report}",
         *node_ids],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def outcomes_of(folder: Path, report: str, run: subprocess.Popen) -> dict[tuple[str, str], tuple]:
    """Wait for ``run``; ``{(class, test): (outcome, failure text)}`` from its report."""
    output, _ = run.communicate(timeout=600)
    xml = folder / report
    assert xml.is_file(), f"pytest wrote no report:\n{output[-3000:]}"
    outcomes: dict[tuple[str, str], tuple] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        outcome, text = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                text = f"{child.get('message', '')}\n{child.text or ''}"
        outcomes[(cls, case.get("name", ""))] = (outcome, text)
    return outcomes


def run_suite(folder: Path, node_ids: list[str], report: str) -> dict[tuple[str, str], tuple]:
    """Run pytest on ``node_ids`` in ``folder``; the outcome of each test."""
    return outcomes_of(folder, report, start_suite(folder, node_ids, report))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the generated test module and an empty pytest configuration."""
    broken_backends.check_hooks()
    assert set(MUST_FAIL) == set(broken_backends.BROKEN), (
        "every broken backend needs its expected failures in MUST_FAIL")
    folder = tmp_path_factory.mktemp("conformance")
    (folder / "pytest.ini").write_text("[pytest]\n")
    body = MODULE_HEAD + "".join(MODULE_CLASS.format(name=n) for n in sorted(MUST_FAIL))
    (folder / "test_generated.py").write_text(textwrap.dedent(body))
    return folder


def test_the_real_process_backend_passes_the_whole_suite(generated: Path) -> None:
    outcomes = run_suite(generated, ["test_generated.py::TestReal"], "real.xml")
    from neuroflow.testing import IsolationBackendSuite

    expected = {name for name in dir(IsolationBackendSuite) if name.startswith("test_")}
    assert {test for _, test in outcomes} == expected
    bad = {test: text for (_, test), (outcome, text) in outcomes.items() if outcome != "passed"}
    assert not bad, bad


def test_the_suite_fails_each_broken_backend_where_it_is_broken(generated: Path) -> None:
    # Three pytest processes at once: most of the time goes to waiting out the sleeps and
    # timeouts that the broken backends fail to cut short.
    groups = [["IgnoresLimits"], ["IgnoresCpuLimit", "IgnoresTimeouts"],
              sorted(set(MUST_FAIL) - {"IgnoresLimits", "IgnoresCpuLimit", "IgnoresTimeouts"})]
    runs = []
    for i, names in enumerate(groups):
        node_ids = [f"test_generated.py::Test{name}::{test}"
                    for name in names for test in [*MUST_FAIL[name], *MUST_PASS]]
        runs.append((f"broken{i}.xml", start_suite(generated, node_ids, f"broken{i}.xml")))
    outcomes: dict[tuple[str, str], tuple] = {}
    for report, run in runs:
        outcomes.update(outcomes_of(generated, report, run))
    problems = []
    for name, tests in sorted(MUST_FAIL.items()):
        for test, phrase in tests.items():
            outcome, text = outcomes.get((f"Test{name}", test), ("not run", ""))
            if outcome != "failed":
                problems.append(f"{name}: {test} {outcome}, expected it to fail")
            elif phrase not in text:
                problems.append(f"{name}: {test} failed, but not with {phrase!r}:\n"
                                f"{text[-1500:]}")
        for test in MUST_PASS:
            outcome, text = outcomes.get((f"Test{name}", test), ("not run", ""))
            if outcome != "passed":
                problems.append(f"{name}: {test} {outcome} (the backend should work "
                                f"but for its one defect):\n{text[-1500:]}")
    assert not problems, "\n".join(problems)


def test_a_missing_setting_fails_naming_it_and_an_unenforceable_limit_skips(
    generated: Path,
) -> None:
    cpu = "test_cpu_time_limit_stops_a_spinning_command"
    memory = "test_memory_limit_stops_a_growing_command"
    outcomes = run_suite(generated, [
        f"test_generated.py::TestConfigLacksSettings::{cpu}",
        f"test_generated.py::TestCannotEnforceMemoryHere::{memory}",
    ], "settings.xml")
    outcome, text = outcomes[("TestConfigLacksSettings", cpu)]
    assert outcome == "failed", (outcome, text)
    assert "needs the setting(s) cpu_time_limit, which TinyConfig" in text, text
    outcome, text = outcomes[("TestCannotEnforceMemoryHere", memory)]
    assert outcome == "skipped", (outcome, text)
    assert "no memory cgroup on this machine" in text, text
