"""The ``neuroflow`` command: plugins, config show/check, plugin subcommands, doctor checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli
from neuroflow.doctor import Check
from neuroflow.hookspecs import hookimpl
from neuroflow.plugins import PluginManager, set_plugin_manager

HELLO_PLUGIN = """
import click
from neuroflow.hookspecs import hookimpl


@hookimpl
def neuroflow_cli_commands(cli):
    @cli.command()
    @click.argument("who", default="world")
    def hello(who):
        "Say hello."
        click.echo(f"hello {who}")
"""

BROKEN_COMMANDS_PLUGIN = """
from neuroflow.hookspecs import hookimpl


@hookimpl
def neuroflow_cli_commands(cli):
    raise RuntimeError("no commands today")
"""


@pytest.fixture
def manager(fake_manager) -> PluginManager:
    """The process-wide manager for the test: core commands plus the default backends."""
    built = fake_manager(builtins={
        "test.defaults": "nf_test_defaults", "neuroflow.cli": "neuroflow.cli_commands"
    })
    set_plugin_manager(built)
    return built


def invoke(manager: PluginManager, *args: str):
    result = CliRunner().invoke(build_cli(manager), list(args), prog_name="neuroflow")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def run_neuroflow(*args: str, site: Path | None = None, cwd: Path | None = None):
    """Run ``python -m neuroflow`` in a real subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROFLOW_")}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-m", "neuroflow", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=60, check=False,
    )


# --- neuroflow plugins ---------------------------------------------------------------------


def test_plugins_json_lists_every_plugin_with_status(manager) -> None:
    class Broken:
        @hookimpl
        def neuroflow_backends(self) -> list:
            raise ValueError("tracer exploded")

    manager.register(Broken(), name="broken-tracer")
    result = invoke(manager, "plugins", "--json")
    assert result.exit_code == 0
    data = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert data["test.defaults"]["status"] == "loaded"
    assert data["test.defaults"]["provides"]["isolation"] == ["process", "other", "bare"]
    assert data["test.defaults"]["builtin"] is True
    assert data["broken-tracer"]["status"] == "failed"
    assert data["broken-tracer"]["error"] == "neuroflow_backends: ValueError: tracer exploded"
    assert set(data["neuroflow.cli"]) == {
        "name", "distribution", "version", "status", "error", "builtin", "provides"
    }


def test_plugins_text_output(manager) -> None:
    result = invoke(manager, "plugins")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("test.defaults  (neuroflow ") and lines[0].endswith("loaded")
    assert "    isolation: bare, other, process" in lines
    assert any(line.startswith("neuroflow.cli  (neuroflow") for line in lines)


def test_plugins_lists_entry_point_plugins_in_a_real_process(site) -> None:
    site.distribution("neuroflow-hello", "0.3", {"hello": "nf_hello"},
                      {"nf_hello": HELLO_PLUGIN})
    result = run_neuroflow("plugins", "--json", site=site.root)
    assert result.returncode == 0, result.stderr
    data = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert (data["hello"]["distribution"], data["hello"]["version"],
            data["hello"]["status"]) == ("neuroflow-hello", "0.3", "loaded")
    assert data["neuroflow.cli"]["status"] == "loaded"


def test_plugins_shows_a_plugin_that_fails_to_import_and_why(site) -> None:
    site.distribution("neuroflow-hello", "0.3", {"hello": "nf_hello"},
                      {"nf_hello": HELLO_PLUGIN})
    site.distribution("neuroflow-broken", "2.0", {"broken": "nf_broken_import"},
                      {"nf_broken_import": "raise ImportError('needs libfoo 3')\n"})
    result = run_neuroflow("plugins", site=site.root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = lines.index("broken  (neuroflow-broken 2.0)  failed")
    assert lines[at + 1] == "    why: ImportError: needs libfoo 3"
    assert "hello  (neuroflow-hello 0.3)  loaded" in lines
    assert run_neuroflow("hello", site=site.root).stdout == "hello world\n"


# --- plugin subcommands -----------------------------------------------------------------


def test_plugin_adds_a_subcommand_through_the_hook(site) -> None:
    site.distribution("neuroflow-hello", "0.3", {"hello": "nf_hello"},
                      {"nf_hello": HELLO_PLUGIN})
    result = run_neuroflow("hello", "plugins", site=site.root)
    assert (result.returncode, result.stdout) == (0, "hello plugins\n"), result.stderr
    helped = run_neuroflow("--help", site=site.root)
    assert "hello" in helped.stdout and "Say hello." in helped.stdout


def test_failing_command_hook_is_reported_and_the_rest_still_work(site) -> None:
    site.distribution("neuroflow-hello", "0.3", {"hello": "nf_hello"},
                      {"nf_hello": HELLO_PLUGIN})
    site.distribution("neuroflow-grumpy", "1.0", {"grumpy": "nf_grumpy"},
                      {"nf_grumpy": BROKEN_COMMANDS_PLUGIN})
    result = run_neuroflow("hello", site=site.root)
    assert (result.returncode, result.stdout) == (0, "hello world\n")
    assert result.stderr == (
        "warning: plugin 'grumpy' (neuroflow-grumpy) could not add its commands: "
        "neuroflow_cli_commands: RuntimeError: no commands today\n"
    )
    listed = run_neuroflow("plugins", "--json", site=site.root)
    data = {entry["name"]: entry for entry in json.loads(listed.stdout)}
    assert data["grumpy"]["status"] == "failed"
    assert "no commands today" in data["grumpy"]["error"]


def test_build_cli_returns_a_fresh_group_each_time(manager) -> None:
    class Extra:
        @hookimpl
        def neuroflow_cli_commands(self, cli) -> None:
            import click

            cli.add_command(click.Command("extra", callback=lambda: click.echo("extra ran")))

    other = PluginManager(builtins={})
    other.register(Extra(), name="extra")
    assert invoke(other, "extra").stdout == "extra ran\n"
    assert "extra" not in build_cli(manager).commands


def test_python_dash_m_neuroflow_help() -> None:
    result = run_neuroflow("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: neuroflow [OPTIONS] COMMAND [ARGS]...")
    for command in ("plugins", "config", "doctor"):
        assert f"  {command} " in result.stdout
    version = run_neuroflow("--version")
    assert version.stdout.startswith("neuroflow, version ")


# --- neuroflow config ------------------------------------------------------------------------


def test_config_show_prints_values_with_their_source(manager, monkeypatch) -> None:
    Path("neuroflow.toml").write_text("[sandbox.process]\ncpu_time_limit = 5\n")
    monkeypatch.setenv("NEUROFLOW_SANDBOX__BACKEND", "other")
    result = invoke(manager, "config", "show")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"# files read: {Path.cwd() / 'neuroflow.toml'}"
    assert 'sandbox.backend = "other"    # env NEUROFLOW_SANDBOX__BACKEND' in lines
    assert "sandbox.process.cpu_time_limit = 5    # neuroflow.toml" in lines
    assert "sandbox.other.level = 1    # default" in lines
    assert "plugins.autoload = true    # default" in lines


def test_config_show_json(manager) -> None:
    result = invoke(manager, "config", "show", "--json")
    data = json.loads(result.stdout)
    assert data["config"]["sandbox"]["backend"] == "process"
    assert data["sources"] == {}


def test_config_show_with_a_bad_config_is_one_error_line(manager) -> None:
    Path("neuroflow.toml").write_text("[sandbox.process]\ncpu_time_limit = 'x'\n")
    result = invoke(manager, "config", "show")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: sandbox.process.cpu_time_limit: expected an integer, got 'x' "
        "(in neuroflow.toml)\n"
    )


def test_config_check_ok_exits_zero(manager, tmp_path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[sandbox]\nbackend = "other"\n[sandbox.other]\nlevel = 2\n')
    result = invoke(manager, "config", "check", str(good))
    assert (result.exit_code, result.stdout) == (0, f"{good}: ok\n")


def test_config_check_problems_exit_one_with_a_line_each(manager, tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sandbox]\nbackend = "wasm"\n[sandbox.process]\ncpu_time_limt = 1\n')
    result = invoke(manager, "config", "check", str(bad))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{bad}: sandbox.backend: unknown sandbox backend 'wasm'")
    assert "(installed: bare, other, process)" in lines[0]
    assert lines[1].startswith(
        f"{bad}: sandbox.process.cpu_time_limt: unknown key; did you mean 'cpu_time_limit'?"
    )


def test_config_check_reads_tool_neuroflow_from_a_pyproject(manager, tmp_path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.neuroflow.sandbox]\nbackend = 'nope'\n")
    result = invoke(manager, "config", "check", str(pyproject))
    assert result.exit_code == 1
    assert "sandbox.backend: unknown sandbox backend 'nope'" in result.stderr


def test_config_check_invalid_toml_and_missing_file(manager, tmp_path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[sandbox\n")
    result = invoke(manager, "config", "check", str(broken))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{broken}: {broken}: invalid TOML")
    missing = invoke(manager, "config", "check", str(tmp_path / "absent.toml"))
    assert missing.exit_code == 2
    assert "absent.toml does not exist" in missing.stderr


# --- neuroflow doctor: plugins' checks -------------------------------------------------------


def test_doctor_collects_plugin_checks_and_reports_failing_hooks(manager) -> None:
    class Needs:
        @hookimpl
        def neuroflow_doctor_checks(self) -> list[Check]:
            return [Check("frobnicator", True, "found /usr/bin/frob"),
                    Check("quantum link", False, "apt-get install qlink")]

    class Crashes:
        @hookimpl
        def neuroflow_doctor_checks(self) -> list[Check]:
            raise OSError("cannot probe")

    manager.register(Needs(), name="needs")
    manager.register(Crashes(), name="crashes")
    result = invoke(manager, "doctor", "--json")
    data = json.loads(result.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["frobnicator"]["ok"] is True
    assert checks["quantum link"] == {
        "name": "quantum link", "ok": False, "detail": "apt-get install qlink", "required": False
    }
    assert checks["plugin crashes"] == {
        "name": "plugin crashes", "ok": False, "detail": "OSError: cannot probe",
        "required": False,
    }
    assert data["selected"]["sandbox"] == ["process"]
    assert result.exit_code == 0  # nothing required is missing
    text = invoke(manager, "doctor")
    assert "  [ok ] frobnicator: found /usr/bin/frob" in text.stdout
    assert "  [no ] quantum link: apt-get install qlink" in text.stdout


def test_doctor_exits_one_when_a_required_check_fails(manager) -> None:
    class Required:
        @hookimpl
        def neuroflow_doctor_checks(self) -> list[Check]:
            return [Check("pids cgroup", False, "mount the pids controller", required=True)]

    manager.register(Required(), name="required")
    result = invoke(manager, "doctor")
    assert result.exit_code == 1
    assert "  [MISSING] pids cgroup: mount the pids controller" in result.stdout
