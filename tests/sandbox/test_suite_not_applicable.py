"""A backend declares the parts of ``IsolationBackendSuite`` it does not support, with the
reason: those tests are not generated (not skipped), the run's summary lists them, and
only real feature names with a reason are accepted."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from neuroflow.testing import FEATURES, IsolationBackendSuite


def _suite_tests() -> dict[str, str | None]:
    return {name: getattr(test, "suite_feature", None)
            for name, test in vars(IsolationBackendSuite).items() if name.startswith("test_")}


def test_every_feature_covers_tests_and_every_mark_is_a_feature() -> None:
    marked = {feature for feature in _suite_tests().values() if feature is not None}
    assert marked == set(FEATURES), "a feature marks no test, or a test an unknown feature"
    assert all(isinstance(text, str) and text for text in FEATURES.values())


def test_declared_parts_are_not_generated() -> None:
    class Declares(IsolationBackendSuite):
        backend_name = "process"
        unsupported = {"signals": "no signals here", "process_tree": "one process only"}

    expected = {name for name, feature in _suite_tests().items()
                if feature in ("signals", "process_tree")}
    assert expected == {"test_a_signal_is_reported", "test_no_process_survives_the_run",
                        "test_no_process_survives_a_timeout"}
    assert Declares.suite_not_applicable == {
        "test_a_signal_is_reported": "not applicable: no signals here",
        "test_no_process_survives_the_run": "not applicable: one process only",
        "test_no_process_survives_a_timeout": "not applicable: one process only"}
    for name in expected:
        assert getattr(Declares, name) is None
    assert callable(Declares.test_exit_code_propagates)
    # The suite itself, and a class that declares nothing, keep every test.
    assert callable(IsolationBackendSuite.test_a_signal_is_reported)

    class DeclaresNothing(IsolationBackendSuite):
        backend_name = "process"

    assert DeclaresNothing.suite_not_applicable == {}
    assert callable(DeclaresNothing.test_a_signal_is_reported)


@pytest.mark.parametrize(("unsupported", "message"), [
    ({"signal": "typo"}, "unknown feature 'signal' (the suite's features: allowed_commands"),
    ({"exit_codes": "core"}, "unknown feature 'exit_codes'"),
    ({"signals": ""}, "unsupported['signals']: say why"),
    ({"signals": None}, "unsupported['signals']: say why"),
    (["signals"], "expected a mapping of feature names to reasons, got list"),
])
def test_only_real_features_with_a_reason(unsupported: object, message: str) -> None:
    with pytest.raises(TypeError) as caught:
        type("Bad", (IsolationBackendSuite,), {"backend_name": "process",
                                               "unsupported": unsupported})
    assert message in str(caught.value)


def test_the_run_reports_them_and_skips_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_declared.py").write_text(textwrap.dedent('''
        from neuroflow.testing import IsolationBackendSuite

        class TestDeclared(IsolationBackendSuite):
            backend_name = "process"
            unsupported = {"process_tree": "one process only",
                           "cpu_time_limit": "no CPU clock"}
    '''))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-rs", "-k", "signal or survives or cpu_time", str(tmp_path / "test_declared.py")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "skipped" not in out, out
    lines = [line for line in out.splitlines() if "not applicable:" in line]
    assert sorted(line.split("::")[-1] for line in lines) == [
        "test_cpu_time_limit_stops_a_spinning_command: not applicable: no CPU clock",
        "test_no_process_survives_a_timeout: not applicable: one process only",
        "test_no_process_survives_the_run: not applicable: one process only"]
    assert " passed" in out  # test_a_signal_is_reported ran (it was not declared)
