"""The namespace sandbox used by an unprivileged host (a fresh uid with no cgroups of its
own), and on a kernel that refuses new user namespaces.

Run as root (as CI is), the unprivileged checks run in a child process as a fresh uid, on
the system ``python3`` with a readable copy of the packages they import; the refusing
kernel is this very sandbox (its seccomp filter refuses ``clone(CLONE_NEWUSER)``)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ns_helpers import PID1_PROBE, PID1_REFUSED, new_marker, run, survivors

from neuroflow_sandbox_namespace.userns import userns_problem

UID = 59_998  # no such user: a fresh unprivileged identity

CHECKS = r"""
import json, os, sys
from neuroflow.errors import SandboxError, UnsupportedLimitError
from neuroflow_sandbox_namespace.config import NamespaceConfig
from neuroflow_sandbox_namespace.sandbox import NamespaceSandbox

marker = sys.argv[1] if len(sys.argv) > 1 else "nf"
out = {"uid": os.geteuid()}
try:
    NamespaceSandbox(NamespaceConfig(), gate=False)
    out["default"] = "built"
except UnsupportedLimitError as exc:
    out["default"] = str(exc)
try:
    NamespaceSandbox(NamespaceConfig(security_level="strict", max_processes=None), gate=False)
    out["strict"] = "built"
except UnsupportedLimitError as exc:
    out["strict"] = str(exc)
box = NamespaceSandbox(NamespaceConfig(max_processes=None, enable_network=False,
                                       enable_seccomp=True, memory_limit=512 << 20),
                       gate=False)
script = ("id -u; grep -E '^(Seccomp|CapEff|NoNewPrivs):' /proc/self/status; "
          "ls /root 2>&1; echo made > f && cat f")
r = box.execute_sync("/bin/sh", ["-c", script])
out["run"] = [r.exit_code, r.stdout.decode(), r.stderr.decode(), list(r.warnings)]
r = box.execute_sync("python3", ["-I", "-S", "-c", "import ctypes; l = ctypes.CDLL(None, "
                     "use_errno=True); print(l.unshare(0x10000000), ctypes.get_errno())"])
out["unshare"] = r.stdout.decode().strip()
r = box.execute_sync("/bin/sh", ["-c", f"sleep 100 & sleep 100; : {marker}"], timeout=1)
out["timeout"] = r.reason.value
port, victim = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (1, 1)
attacks = f'''
import os, socket
out = []
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("127.0.0.1", {port})); out.append("connected")
except OSError as exc:
    out.append("refused")
try:
    os.kill({victim}, 9); out.append("killed")
except OSError as exc:
    out.append("kill " + str(exc.errno))
for path in ("/usr/nf-unpriv", "/nf-unpriv", "/etc/nf-unpriv"):
    try:
        open(path, "w"); out.append("wrote " + path)
    except OSError:
        out.append("ro")
try:
    open("/proc/1/environ", "rb").read(); out.append("environ read")
except OSError as exc:
    out.append("environ " + str(exc.errno))
print(" ".join(out))
'''
r = box.execute_sync("python3", ["-I", "-S", "-c", attacks])
out["attacks"] = r.stdout.decode().strip()
box = NamespaceSandbox(NamespaceConfig(max_processes=None, enable_network=False,
                                       enable_seccomp=False), gate=False)
r = box.execute_sync("python3", ["-I", "-S", "-c", PID1_PROBE])
out["pid1"] = r.stdout.decode().splitlines()
print(json.dumps(out))
"""

MODULES = r"""
import sys, sysconfig
stdlib = sysconfig.get_paths()["stdlib"] + "/"
files = set()
for name, module in list(sys.modules.items()):
    if "." in name:
        continue
    file = getattr(module, "__file__", None)
    if file is None and getattr(module, "__path__", None):
        files.update(path + "/__init__.py" for path in module.__path__)
    elif file:
        files.add(file)
print(json.dumps(sorted(f for f in files if not (f.startswith(stdlib)
                                                 and "-packages" not in f))))
"""


def readable_site() -> str:
    """A folder anyone may read, holding every package the checks import (this test's
    environment is often under root's 0700 home); for ``PYTHONPATH``."""
    probe = subprocess.run(
        [sys.executable, "-c", f"PID1_PROBE = {PID1_PROBE!r}\n" + CHECKS + MODULES,
         new_marker()], capture_output=True,
        text=True, timeout=120, cwd="/tmp", check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    files = json.loads(probe.stdout.splitlines()[-1])
    target = tempfile.mkdtemp(prefix="nf-ns-site-", dir="/tmp")
    os.chmod(target, 0o755)
    for file in files:
        source = Path(file).parent if file.endswith("__init__.py") else Path(file)
        destination = Path(target) / source.name
        if source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination)
    for path in Path(target).rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return target


def system_python() -> str:
    """The system python3, when it is this test's Python version (its packages import)."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 an unprivileged uid may run")
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(f"{python} is Python {version}, not {sys.version_info[:2]}")
    return python


@pytest.fixture(scope="module")
def site() -> str:
    folder = readable_site()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_an_unprivileged_host_runs_sandboxes(site: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("this test makes a fresh uid, which needs root")
    python = system_python()
    marker = new_marker()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    victim = subprocess.Popen(["sleep", "60"], user=UID, group=UID, extra_groups=[])
    try:
        done = subprocess.run(
            [python, "-c", f"PID1_PROBE = {PID1_PROBE!r}\n" + CHECKS, marker,
             str(server.getsockname()[1]), str(victim.pid)],
            capture_output=True, text=True, timeout=120, cwd="/tmp",
            env={"PYTHONPATH": site, "HOME": "/tmp", "PATH": "/usr/bin:/bin"},
            user=UID, group=UID, extra_groups=[])
        assert victim.poll() is None, "the sandbox killed a process of its own uid outside"
    finally:
        server.close()
        victim.kill()
        victim.wait()
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["uid"] == UID
    # No pids cgroup for this uid: max_processes (64 by default) is refused, naming why.
    assert "max_processes=64" in out["default"] and "pids cgroup" in out["default"]
    # Its own user namespace, no capabilities, seccomp: strict needs no privilege drop.
    assert out["strict"] == "built"
    code, stdout, stderr, warnings = out["run"]
    assert code == 0, (stdout, stderr)
    lines = stdout.splitlines()
    assert lines[0] == str(UID)
    assert "Seccomp:\t2" in lines and "CapEff:\t0000000000000000" in lines
    assert "NoNewPrivs:\t1" in lines
    assert "No such file or directory" in stdout  # no /root inside
    assert lines[-1] == "made"
    assert any("RLIMIT_AS" in warning for warning in warnings)  # no memory cgroup here
    assert out["unshare"] == "-1 1"
    assert out["timeout"] == "timed_out"
    assert survivors(marker) == []
    # Network off, a host process of the same uid out of reach, the root read-only, PID 1
    # unreadable (EACCES).
    assert out["attacks"] == "refused kill 3 ro ro ro environ 13", out["attacks"]
    # Seccomp off: PID 1 (the init program, undumpable) is out of the run's reach, from a
    # nested user namespace too.
    assert out["pid1"] == [f"run {PID1_REFUSED}", "nested 0", f"nested {PID1_REFUSED}"]


def test_a_kernel_refusing_user_namespaces_gets_a_clear_error(site: str) -> None:
    """Inside this sandbox the seccomp filter refuses new user namespaces, as a kernel
    with them disabled does: a sandbox started there says which settings to check."""
    system_python()
    code = (
        "from neuroflow.errors import SandboxError\n"
        "from neuroflow_sandbox_namespace.config import NamespaceConfig\n"
        "from neuroflow_sandbox_namespace.sandbox import NamespaceSandbox\n"
        "box = NamespaceSandbox(NamespaceConfig(max_processes=None), gate=False)\n"
        "try:\n    box.execute_sync('/bin/true')\nexcept SandboxError as exc:\n"
        "    print(exc)\n")
    result = run(["python3", "-I", "-c", f"import sys; sys.path.insert(0, {site!r})\n" + code],
                 binds=[site])
    assert result.ok, result
    message = result.stdout.decode()
    assert "forbid new user namespaces" in message, message
    assert "user.max_user_namespaces" in message
    assert "kernel.unprivileged_userns_clone" in message


def _sysctls(tmp_path: Path, **values: str) -> str:
    for name, value in values.items():
        path = tmp_path / name.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return str(tmp_path)


def test_the_sysctl_that_forbids_user_namespaces_is_named(tmp_path: Path) -> None:
    assert userns_problem(_sysctls(tmp_path / "ok", **{"user.max_user_namespaces": "100"}),
                          euid=1000) is None
    zero = _sysctls(tmp_path / "zero", **{"user.max_user_namespaces": "0"})
    assert "sysctl user.max_user_namespaces=0" in userns_problem(zero, euid=0)
    debian = _sysctls(tmp_path / "debian", **{"user.max_user_namespaces": "100",
                                              "kernel.unprivileged_userns_clone": "0"})
    assert "kernel.unprivileged_userns_clone=0" in userns_problem(debian, euid=1000)
    assert userns_problem(debian, euid=0) is None  # root is not bound by it
    ubuntu = _sysctls(tmp_path / "ubuntu", **{"user.max_user_namespaces": "100",
                                              "kernel.apparmor_restrict_unprivileged_userns": "1"})
    assert "kernel.apparmor_restrict_unprivileged_userns=1" in userns_problem(ubuntu,
                                                                              euid=1000)
    assert "CONFIG_USER_NS" in userns_problem(str(tmp_path / "none"), euid=1000)
