"""``[sandbox.namespace]``: binds and sizes are checked, errors name the field, files work;
``neuroflow doctor`` reports what the backend needs; the plugin registers the backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from ns_helpers import run

from neuroflow import create_backend
from neuroflow.errors import ConfigError
from neuroflow.plugins import get_plugin_manager
from neuroflow.sandbox import NamespaceIsolator, SandboxConfig
from neuroflow_sandbox_namespace.config import Bind, NamespaceConfig
from neuroflow_sandbox_namespace.sandbox import NamespaceSandbox


def test_bind_forms() -> None:
    config = NamespaceConfig(binds=["/srv", "/a:/b", "/c:/d:rw", "/e:/f:ro",
                                    {"source": "/g", "target": "/h", "writable": True}])
    assert config.binds == (Bind("/srv", "/srv"), Bind("/a", "/b"), Bind("/c", "/d", True),
                            Bind("/e", "/f"), Bind("/g", "/h", True))


@pytest.mark.parametrize(("binds", "message"), [
    (["relative"], "binds: source: expected an absolute path, got 'relative'"),
    (["/a:/proc"], "binds: target: '/proc' belongs to the sandbox itself"),
    (["/a:/"], "binds: target: '/' belongs to the sandbox itself"),
    (["/a:/b:rx"], "binds: expected 'SRC', 'SRC:DST' or 'SRC:DST:ro|rw', got '/a:/b:rx'"),
    (["/a/../etc"], "binds: source: '..' is not allowed"),
    ([{"source": "/a", "writable": "yes"}], "binds: writable: expected true or false"),
    ("/a", "binds: expected a list of binds"),
])
def test_bad_binds_are_named(binds: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        NamespaceConfig(binds=binds)


def test_sizes_take_units_and_are_checked() -> None:
    assert NamespaceConfig(tmp_size="16M", shm_size="1G").tmp_size == 16 << 20
    with pytest.raises(ConfigError, match="tmp_size: expected a size of at least 4K"):
        NamespaceConfig(tmp_size=10)
    with pytest.raises(ConfigError, match="hostname: expected 1-64 letters"):
        NamespaceConfig(hostname="bad name")


def test_a_config_file_selects_the_backend(tmp_path: Path) -> None:
    from neuroflow.config import load_config

    (tmp_path / "neuroflow.toml").write_text(
        '[sandbox]\nbackend = "namespace"\n\n[sandbox.namespace]\ntmp_size = "8M"\n'
        'binds = ["/srv:/data"]\nbogus = 1\n')
    with pytest.raises(ConfigError) as info:
        create_backend("isolation", None, gate=False,
                       config=load_config(files=[tmp_path / "neuroflow.toml"], check=False))
    assert "sandbox.namespace" in str(info.value) and "bogus" in str(info.value)
    (tmp_path / "neuroflow.toml").write_text(
        '[sandbox]\nbackend = "namespace"\n\n[sandbox.namespace]\ntmp_size = "8M"\n'
        'binds = ["/srv:/data", { source = "/opt", writable = true }]\n')
    sandbox = create_backend("isolation", None, gate=False,
                             config=load_config(files=[tmp_path / "neuroflow.toml"]))
    assert isinstance(sandbox, NamespaceSandbox)
    assert sandbox.config.tmp_size == 8 << 20
    assert sandbox.config.binds == (Bind("/srv", "/data"), Bind("/opt", "/opt", True))


def test_the_facade_builds_it_from_a_sandbox_config() -> None:
    sandbox = NamespaceIsolator(SandboxConfig(cpu_time_limit=3, enable_network=False),
                                gate=False)
    assert isinstance(sandbox, NamespaceSandbox)
    assert sandbox.config.cpu_time_limit == 3 and sandbox.network is False
    assert get_plugin_manager().backends("isolation")["namespace"].plugin == "sandbox-namespace"


def test_strict_turns_network_off_and_seccomp_on() -> None:
    sandbox = NamespaceSandbox(NamespaceConfig(security_level="strict"), gate=False)
    assert (sandbox.network, sandbox.seccomp) == (False, True)
    standard = NamespaceSandbox(NamespaceConfig(), gate=False)
    assert (standard.network, standard.seccomp) == (True, False)


def test_binds_are_visible_read_only_or_writable(tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    rw.chmod(0o777)  # the run's own uid writes there
    (ro / "in.txt").write_text("data\n")
    result = run(["/bin/sh", "-c", "cat /data/in.txt; echo x > /data/new 2>/dev/null "
                  "|| echo refused; echo out > /out/made"],
                 binds=[f"{ro}:/data", {"source": str(rw), "target": "/out", "writable": True}])
    assert result.ok, result
    assert result.stdout == b"data\nrefused\n"
    assert (rw / "made").read_text() == "out\n"
    assert not (ro / "new").exists()


def test_a_program_outside_the_sandbox_is_refused_clearly(tmp_path: Path) -> None:
    from neuroflow.errors import SandboxError

    program = tmp_path / "elsewhere" / "tool"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\necho hi\n")
    program.chmod(0o755)
    tmp_path.chmod(0o755)
    with pytest.raises(SandboxError, match="not inside the sandbox's file system"):
        run([str(program)], work_dir=str(tmp_path / "work"))


def test_doctor_reports_the_namespace_backend() -> None:
    checks = {c.name: c for c in get_plugin_manager().doctor_checks()}
    assert checks["namespace sandbox: user namespaces"].ok
    assert checks["namespace sandbox: launcher"].ok
    assert checks["namespace sandbox: PID 1"].ok, checks["namespace sandbox: PID 1"]
    assert "namespace sandbox: cgroup limits" in checks
    assert checks["namespace sandbox backend"].ok  # the core's check sees it installed


def test_the_gate_sees_commands_as_the_namespace_sandbox_s() -> None:
    from neuroflow.testing.isolation import RecordingGate

    gate = RecordingGate()
    sandbox = NamespaceSandbox(NamespaceConfig(), gate=gate)
    result = sandbox.execute_sync("/bin/true")
    assert result.ok
    ((action, context),) = gate.authorized
    assert action.target == "/bin/true"
    assert context.component == "sandbox.namespace"
    assert [outcome for _, outcome, _ in gate.outcomes] == ["success"]
