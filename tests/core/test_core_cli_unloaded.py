"""A command whose plugin was blocked or failed to load says so, and how to get it back.

Not click's bare "No such command 'memory'. Did you mean 'demo'?".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli
from neuroflow.config import PluginsConfig
from neuroflow.plugins import BUILTIN_PLUGINS, PluginManager


def neuroflow(*args: str, env: dict[str, str] | None = None,
              prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m neuroflow ARGS`` in a fresh interpreter (``prelude`` runs first)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEUROFLOW_")}
    code = prelude + ("import sys\nfrom neuroflow.cli import main\n"
                      "sys.argv[0] = 'neuroflow'\nmain()\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=120, check=False)


def error_line(stderr: str) -> str:
    """The ``Error: ...`` part of click's usage error."""
    return stderr[stderr.index("Error: "):]


def test_a_command_of_a_plugin_blocked_in_the_environment() -> None:
    done = neuroflow("memory", "list", env={"NEUROFLOW_BLOCK_PLUGINS": "neuroflow.memory"})
    assert done.returncode == 2
    assert error_line(done.stderr) == (
        "Error: No such command 'memory': it is provided by plugin 'neuroflow.memory', which "
        "is blocked; remove 'neuroflow.memory' from NEUROFLOW_BLOCK_PLUGINS.\n")


def test_a_command_of_a_plugin_blocked_in_the_configuration() -> None:
    Path("neuroflow.toml").write_text('[plugins]\nblock = ["neuroflow.security"]\n')
    result = CliRunner().invoke(build_cli(), ["audit", "verify", "audit.log"])
    assert result.exit_code == 2
    assert error_line(result.stderr) == (
        "Error: No such command 'audit': it is provided by plugin 'neuroflow.security', which "
        "is blocked; remove 'neuroflow.security' from [plugins] block in the configuration "
        "(see `neuroflow config show`).\n")
    # the other plugins' commands still work, and list the blocked one
    listed = CliRunner().invoke(build_cli(), ["plugins"])
    assert listed.exit_code == 0
    assert "neuroflow.security" in listed.output and "blocked" in listed.output


@pytest.mark.parametrize("command", ["sandbox", "memory", "audit", "plugins"])
def test_every_builtin_command_names_its_blocked_plugin(command: str) -> None:
    provider = {"sandbox": "neuroflow.sandbox", "memory": "neuroflow.memory",
                "audit": "neuroflow.security", "plugins": "neuroflow.cli"}[command]
    manager = PluginManager(PluginsConfig(block=(provider,), autoload=False))
    result = CliRunner().invoke(build_cli(manager), [command])
    assert result.exit_code == 2
    assert f"it is provided by plugin {provider!r}, which is blocked" in result.stderr


def test_an_unknown_command_keeps_clicks_message_when_nothing_is_missing() -> None:
    manager = PluginManager(PluginsConfig(autoload=False))
    result = CliRunner().invoke(build_cli(manager), ["memroy"])
    assert result.exit_code == 2
    message = error_line(result.stderr)
    assert message.startswith("Error: No such command 'memroy'.")
    assert "'memory'" in message  # click's suggestion
    assert "not loaded" not in message


def test_a_blocked_builtin_that_does_not_provide_the_command_is_not_blamed() -> None:
    manager = PluginManager(PluginsConfig(block=("neuroflow.memory",), autoload=False))
    result = CliRunner().invoke(build_cli(manager), ["nonsense"])
    assert result.exit_code == 2
    assert error_line(result.stderr) == "Error: No such command 'nonsense'.\n"
    assert CliRunner().invoke(build_cli(manager), ["sandbox", "--help"]).exit_code == 0


def test_a_command_of_a_builtin_that_failed_to_load() -> None:
    refuse = (
        "import sys\n"
        "class _Broken:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'neuroflow.memory.builtin':\n"
        "            raise ImportError('memory is broken here')\n"
        "sys.meta_path.insert(0, _Broken())\n"
    )
    done = neuroflow("memory", "list", prelude=refuse,
                     env={"NEUROFLOW_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert done.returncode == 2
    first, second = error_line(done.stderr).splitlines()
    assert first.startswith("Error: No such command 'memory'.")  # click's, with its guess
    assert second == (
        "Plugins that were not loaded may provide it: 'neuroflow.memory' (neuroflow, failed: "
        "ImportError: memory is broken here). See `neuroflow plugins`.")


def test_a_command_of_a_third_party_plugin_that_failed_to_load(site) -> None:
    site.distribution("acme-tools", "1.0", {"acme": "nf_acme_tools"},
                      {"nf_acme_tools": "raise RuntimeError('acme needs a licence file')\n"})
    manager = PluginManager(builtins={"neuroflow.cli": BUILTIN_PLUGINS["neuroflow.cli"]})
    result = CliRunner().invoke(build_cli(manager), ["acme", "deploy"])
    assert result.exit_code == 2
    assert result.stderr.count("No such command 'acme'.") == 1
    assert ("'acme' (acme-tools, failed: RuntimeError: acme needs a licence file)"
            in result.stderr)


def test_a_blocked_third_party_plugin_is_never_imported_to_find_its_commands(site) -> None:
    site.distribution("acme-tools", "1.0", {"acme": "nf_acme_blocked"},
                      {"nf_acme_blocked": "raise SystemExit('imported although blocked')\n"})
    manager = PluginManager(PluginsConfig(allow=("other",)),
                            builtins={"neuroflow.cli": BUILTIN_PLUGINS["neuroflow.cli"]})
    result = CliRunner().invoke(build_cli(manager), ["acme"])
    assert result.exit_code == 2
    assert "nf_acme_blocked" not in sys.modules
    assert ("'acme' (acme-tools, not in the allow list; add 'acme' to [plugins] allow in the "
            "configuration (see `neuroflow config show`))") in result.stderr


def test_an_unknown_option_is_not_blamed_on_an_unloaded_plugin(site) -> None:
    site.distribution("acme-tools", "1.0", {"acme": "nf_acme_option"},
                      {"nf_acme_option": "raise RuntimeError('broken')\n"})
    manager = PluginManager(builtins={"neuroflow.cli": BUILTIN_PLUGINS["neuroflow.cli"]})
    result = CliRunner().invoke(build_cli(manager), ["--bogus"])
    assert result.exit_code == 2
    assert "No such option" in result.stderr and "--bogus" in result.stderr
    assert "not loaded" not in result.stderr
