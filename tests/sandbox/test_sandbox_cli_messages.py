"""``neuroflow sandbox run`` errors name its flags, not the config fields behind them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli

FIELDS = ("wall_timeout", "cpu_time_limit", "memory_limit", "max_processes",
          "max_output_bytes", "work_dir", "allowed_commands")


@pytest.mark.parametrize(("flag", "value", "what"), [
    ("--timeout", "0", "expected a number of seconds greater than 0, got 0.0"),
    ("--timeout", "-1", "expected a number of seconds greater than 0, got -1.0"),
    ("--cpu", "0", "expected a number of seconds greater than 0, got 0.0"),
    ("--max-processes", "0", "expected an integer count greater than 0, got 0"),
])
def test_a_bad_limit_names_its_flag(flag: str, value: str, what: str) -> None:
    result = CliRunner().invoke(build_cli(), ["sandbox", "run", "--allow-weaker", flag, value,
                                              "--", "/bin/true"])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {flag}: {what}" in result.stderr
    assert not any(field in result.stderr for field in FIELDS), result.stderr


def test_good_limits_still_run() -> None:
    result = CliRunner().invoke(build_cli(), ["sandbox", "run", "--allow-weaker", "--timeout",
                                              "30", "--cpu", "5", "--", "/bin/echo", "hi"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hi\n"
