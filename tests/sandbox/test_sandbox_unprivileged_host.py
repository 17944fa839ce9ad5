"""The process sandbox on a host that is not root: it cannot drop privileges, says so, and
strict mode refuses.  Run as root (as CI is), the checks run in a child process as a
fresh unprivileged uid; run unprivileged, they run here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuroflow.sandbox.resolve import resolve_command

UID = 59_999  # no such user: a fresh unprivileged identity

CHECKS = r"""
import json, os
from neuroflow.errors import ConfigError, UnsupportedLimitError
from neuroflow.sandbox import SandboxConfig, SandboxIsolator, doctor

out = {"uid": os.geteuid()}
try:
    SandboxIsolator(SandboxConfig(security_level="strict", allow_weaker_isolation=True),
                    gate=False)
    out["strict"] = "ran"
except UnsupportedLimitError as exc:
    out["strict"] = str(exc)
try:
    SandboxIsolator(SandboxConfig(run_as="dedicated", allow_weaker_isolation=True),
                    gate=False)
    out["dedicated"] = "ran"
except ConfigError as exc:
    out["dedicated"] = str(exc)
check = {c.name: c for c in doctor.all_checks()}["process sandbox: privilege drop"]
out["doctor"] = [check.ok, check.detail]
box = SandboxIsolator(SandboxConfig(allow_weaker_isolation=True), gate=False)
out["id"] = box.execute_sync("id", ["-u"]).stdout.decode().strip()
print(json.dumps(out))
"""


#: Run after CHECKS (as root, with this test's path): the top-level modules they loaded
#: from outside the standard library.
MODULES = r"""
import sys, sysconfig
stdlib = sysconfig.get_paths()["stdlib"] + "/"
files = set()
for name, module in list(sys.modules.items()):
    if "." in name:
        continue
    file = getattr(module, "__file__", None)
    if file is None and getattr(module, "__path__", None):  # a namespace package
        files.update(path + "/__init__.py" for path in module.__path__)
    elif file:
        files.add(file)
print(json.dumps(sorted(f for f in files if not (f.startswith(stdlib)
                                                 and "-packages" not in f))))
"""


def _readable_copy() -> str:
    """A folder the unprivileged child may read, holding every package the checks import
    from outside the standard library (this test's own environment, say ``.tox/``, is
    often private to root); returned for ``PYTHONPATH``."""
    import shutil
    import tempfile

    probe = subprocess.run([sys.executable, "-c", CHECKS + MODULES], capture_output=True,
                           text=True, timeout=120, cwd="/tmp", check=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    files = json.loads(probe.stdout.splitlines()[-1])
    target = tempfile.mkdtemp(prefix="nf-unprivileged-", dir="/tmp")
    os.chmod(target, 0o755)
    for file in files:
        source = Path(file).parent if file.endswith("__init__.py") else Path(file)
        destination = Path(target) / source.name
        if source.is_dir() and destination.exists():  # a namespace package's second half
            shutil.copytree(source, destination, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_dir():
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination)
    for path in Path(target).rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return target


def _run_checks() -> dict:
    if os.geteuid() != 0:
        scope: dict = {}
        from contextlib import redirect_stdout
        from io import StringIO

        buffer = StringIO()
        with redirect_stdout(buffer):
            exec(CHECKS, scope)  # the same checks, in this process
        return json.loads(buffer.getvalue())
    python = resolve_command("python3", who=(UID, UID))
    if python is None:
        pytest.skip("no python3 an unprivileged uid may execute on this machine")
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(f"{python} is Python {version}, not this test's "
                    f"{sys.version_info[:2]} (its packages would not import)")
    import shutil

    site = _readable_copy()
    try:
        done = subprocess.run(
            [python, "-c", CHECKS], capture_output=True, text=True, timeout=120, cwd="/tmp",
            env={"PYTHONPATH": site, "HOME": "/tmp", "PATH": "/usr/bin:/bin"},
            user=UID, group=UID, extra_groups=[],
        )
    finally:
        shutil.rmtree(site, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_unprivileged_host_cannot_drop_says_so_and_strict_refuses() -> None:
    out = _run_checks()
    uid = out["uid"]
    assert uid != 0
    assert "strict" in out["strict"] and "host's own uid" in out["strict"]
    assert "needs a host running as root" in out["dedicated"]
    ok, detail = out["doctor"]
    assert ok is False and "cannot drop privileges" in detail
    assert out["id"] == str(uid)  # runs keep the host's own uid there
