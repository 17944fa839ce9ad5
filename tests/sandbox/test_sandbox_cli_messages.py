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


def test_set_gives_any_option_of_the_backend() -> None:
    result = CliRunner().invoke(build_cli(), [
        "sandbox", "run", "--allow-weaker", "--set", "env={GREETING = 'hi'}", "--set",
        "wall_timeout=30", "--", "/bin/sh", "-c", 'echo "$GREETING"'])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hi\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "cpu_time_limt=1"], "--set: the 'process' sandbox backend has no option "
                                   "'cpu_time_limt' (did you mean 'cpu_time_limit'?)"),
    (["--set", "=1"], "--set: expected NAME=VALUE, got '=1'"),
    (["--set", "cpu_time_limit=0"], "sandbox.process.cpu_time_limit: expected a number of seconds "
                                    "greater than 0"),
])
def test_set_errors_name_the_option(args: list[str], message: str) -> None:
    result = CliRunner().invoke(build_cli(), ["sandbox", "run", "--allow-weaker", *args,
                                              "--", "/bin/echo", "ran"])
    assert result.exit_code != 0
    assert message in result.stderr, result.stderr
    assert "ran" not in result.stdout
