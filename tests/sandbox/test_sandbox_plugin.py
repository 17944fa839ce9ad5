"""The sandbox's plugin side: registration, facades, open_sandbox, interpreter
resolution, doctor checks, cheap import and the ``neuroflow sandbox run`` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli
from neuroflow.config import reload_config
from neuroflow.errors import BackendNotFoundError, MissingPluginError
from neuroflow.plugins import PluginManager, get_plugin_manager, set_plugin_manager
from neuroflow.sandbox import SandboxConfig, SandboxIsolator, open_sandbox
from neuroflow.sandbox.resolve import real_program, resolve_command


def test_process_backend_is_registered_lazily() -> None:
    spec = get_plugin_manager().get_backend("isolation", "process")
    assert spec.plugin == "neuroflow.sandbox"
    assert spec.load_config_class() is SandboxConfig
    assert spec.load_factory() is SandboxIsolator


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("neuroflow.sandbox", ("anyio", "subprocess", "click", "neuroflow.sandbox.process",
                               "neuroflow.sandbox.cgroups", "trio")),
        ("neuroflow.sandbox.builtin", ("anyio", "subprocess", "click",
                                       "neuroflow.sandbox.process", "trio")),
        # pytest itself is imported; the backend and event loops are not.
        ("neuroflow.testing.isolation", ("anyio", "trio", "neuroflow.sandbox.process",
                                         "neuroflow.sandbox.cgroups")),
    ],
)
def test_importing_is_cheap(module: str, heavy: tuple[str, ...]) -> None:
    code = f"import sys, {module}\nprint([m for m in {heavy!r} if m in sys.modules])\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout.strip() == b"[]"


@pytest.fixture
def without_entry_points() -> None:
    """Only the core's built-in plugins, whatever is installed in this environment."""
    set_plugin_manager(PluginManager(entry_points=False))


@pytest.mark.usefixtures("without_entry_points")
@pytest.mark.parametrize(
    ("name", "extra"),
    [("NamespaceIsolator", "namespace"), ("WasmSandbox", "wasm"), ("WasmSandboxConfig", "wasm")],
)
def test_facades_say_what_to_install(name: str, extra: str) -> None:
    import neuroflow.sandbox as sandbox
    from neuroflow.backends import BackendKind, install_hint

    facade = getattr(sandbox, name)  # importing the name never fails
    with pytest.raises(MissingPluginError) as info:
        facade()
    message = str(info.value)
    assert message.startswith(f"{name} needs the {extra!r} sandbox backend, which is not installed")
    # Only distributions that exist are named; the others say nothing provides the backend.
    hint = install_hint(BackendKind.ISOLATION, extra) or "no installed plugin provides it"
    assert hint in message


def test_facade_resolves_to_an_installed_plugin() -> None:
    from neuroflow.backends import BackendSpec
    from neuroflow.hookspecs import hookimpl
    from neuroflow.sandbox import NamespaceIsolator

    class FakeNamespacePlugin:
        @hookimpl
        def neuroflow_backends(self) -> list[BackendSpec]:
            return [BackendSpec(name="namespace", kind="isolation",
                                factory="neuroflow.sandbox.process:SandboxIsolator",
                                config_class="neuroflow.sandbox.config:SandboxConfig",
                                enforces_gate=True)]

    manager = PluginManager(entry_points=False)
    manager.register(FakeNamespacePlugin(), name="fake-namespace")
    set_plugin_manager(manager)
    isolator = NamespaceIsolator(SandboxConfig(cpu_time_limit=3))
    assert isinstance(isolator, SandboxIsolator)
    assert isolator.config.cpu_time_limit == 3


@pytest.mark.anyio
async def test_open_sandbox_uses_the_configuration(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "neuroflow.toml").write_text(
        '[sandbox]\nbackend = "process"\n[sandbox.process]\nmax_open_files = 40\n'
        "exact_rlimits = true\n"
    )
    monkeypatch.chdir(tmp_path)
    async with open_sandbox() as sandbox:
        assert isinstance(sandbox, SandboxIsolator)
        assert sandbox.config.max_open_files == 40
        result = await sandbox.execute("/bin/sh", ["-c", "ulimit -n"])
    assert result.stdout == b"40\n"
    explicit = open_sandbox(SandboxConfig(max_open_files=50), backend="process")
    assert explicit.config.max_open_files == 50
    await explicit.aclose()


@pytest.mark.usefixtures("without_entry_points")  # the wasm plugin may be installed
def test_open_sandbox_unknown_backend_names_the_fix() -> None:
    with pytest.raises(BackendNotFoundError) as info:
        open_sandbox(SandboxConfig(), backend="wasm")
    assert "pip install 'neuroflow[wasm]'" in str(info.value) or "wasm" in str(info.value)


# --- interpreter resolution ------------------------------------------------------------------


def test_a_pyenv_style_shim_in_a_writable_place_is_taken_literally(tmp_path: Path) -> None:
    # Resolving never runs anything: a shim whose directories someone other than root
    # could write is not followed (see test_sandbox_hostile_root.py for a trusted one).
    root = tmp_path / "pyenv"
    (root / "shims").mkdir(parents=True)
    (root / "bin").mkdir()
    marker = tmp_path / "pyenv-ran"
    shim = root / "shims" / "python3"
    shim.write_text('#!/usr/bin/env bash\nexec "/x/pyenv/libexec/pyenv" exec "$0" "$@"\n')
    shim.chmod(0o755)
    fake_pyenv = root / "bin" / "pyenv"
    fake_pyenv.write_text(f"#!/bin/sh\ntouch {marker}\necho {sys.executable}\n")
    fake_pyenv.chmod(0o755)
    assert real_program(str(shim)) == str(shim)
    assert resolve_command("python3", str(root / "shims")) == str(shim)
    assert not marker.exists()


def test_host_python3_resolves_past_any_shim() -> None:
    found = resolve_command("python3")
    assert found is not None
    with open(found, "rb") as fh:
        assert fh.read(4) == b"\x7fELF"  # a real binary, not a shell script


def test_plain_binaries_and_missing_names() -> None:
    assert resolve_command("sh", "/bin:/usr/bin") in ("/bin/sh", "/usr/bin/sh")
    assert resolve_command("no-such-program-xyz", "/bin") is None
    assert resolve_command("./nothing-here", cwd="/") is None


# --- doctor ------------------------------------------------------------------------------------


def test_doctor_reports_what_the_sandbox_needs() -> None:
    names = [check.name for check in get_plugin_manager().doctor_checks()]
    for expected in ("user namespaces", "seccomp", "cgroups mounted", "rlimits",
                     "python3 interpreter", "process sandbox: per-run cgroups"):
        assert expected in names
    assert any(name.startswith("pids cgroup") for name in names)
    assert any(name.startswith("memory cgroup") for name in names)


def test_doctor_says_whether_the_stronger_backends_are_installed() -> None:
    from importlib import metadata

    checks = {c.name: c for c in get_plugin_manager().doctor_checks()}
    for name, hint in (("wasm", "pip install 'neuroflow[wasm]'"),
                       ("namespace", "pip install 'neuroflow[namespace]'")):
        check = checks[f"{name} sandbox backend"]
        try:
            metadata.distribution(f"neuroflow-sandbox-{name}")
        except metadata.PackageNotFoundError:
            assert (check.ok, hint in check.detail) == (False, True), check
        else:
            assert check.ok, check
    assert "wasmtime" in checks


def test_doctor_marks_cgroups_required_when_the_config_needs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cgroup_check() -> object:
        checks = get_plugin_manager().doctor_checks()
        return next(c for c in checks if c.name == "process sandbox: per-run cgroups")

    monkeypatch.chdir(tmp_path)
    assert cgroup_check().required  # the default: process backend, no weaker mode
    (tmp_path / "neuroflow.toml").write_text("[sandbox.process]\nallow_weaker_isolation = true\n")
    reload_config()
    assert not cgroup_check().required


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_sandbox_run_prints_the_result_and_exits_with_its_code() -> None:
    result = CliRunner().invoke(
        build_cli(), ["sandbox", "run", "--cpu", "2", "--memory", "64M", "--",
                      "/bin/sh", "-c", "echo out; echo err >&2; exit 5"],
    )
    assert result.exit_code == 5, result.output
    assert result.stdout == "out\n"
    for text in ("exit code:   5", "reason:      exited", "wall time:", "cpu time:",
                 "peak memory:", "err"):
        assert text in result.stderr


def test_cli_sandbox_run_json_and_limits() -> None:
    result = CliRunner().invoke(
        build_cli(), ["sandbox", "run", "--json", "--timeout", "0.3", "--max-output", "1K",
                      "--max-processes", "8", "--", "/bin/sleep", "5"],
    )
    data = json.loads(result.stdout)
    assert data["reason"] == "timed_out"
    assert data["backend"] == "process"
    assert result.exit_code == 128 + 9


def test_cli_sandbox_run_allow_list_refusal_is_one_line() -> None:
    result = CliRunner().invoke(
        build_cli(), ["sandbox", "run", "--allow", "echo", "--", "/bin/sh", "-c", "true"],
    )
    assert result.exit_code == 2
    assert "not in allowed_commands" in result.stderr


def test_cli_bad_size_is_reported() -> None:
    result = CliRunner().invoke(build_cli(), ["sandbox", "run", "--memory", "lots", "--",
                                              "/bin/true"])
    assert result.exit_code == 2
    assert "Invalid value for '--memory': expected a size like" in result.stderr


def test_console_script_runs_a_command(tmp_path: Path) -> None:
    exe = shutil.which("neuroflow", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("the neuroflow console script is not installed in this environment")
    out = subprocess.run(
        [exe, "sandbox", "run", "--workdir", str(tmp_path), "--", "python3", "-c",
         "import os; print(os.getcwd())"],
        capture_output=True, cwd=tmp_path, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == str(tmp_path)
    assert b"reason:      exited" in out.stderr
