"""The process sandbox on a host that is not root: it cannot drop privileges, says so, and
strict mode refuses.  Run as root (as CI is), the checks run in a child process as a
fresh unprivileged uid; run unprivileged, they run here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import attrs
import cattrs
import pluggy
import pytest

import neuroflow
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


def _search_path() -> str:
    """Where this test's imports come from, for the unprivileged child."""
    dirs = [str(Path(neuroflow.__file__).parents[1])]
    for module in (anyio, attrs, cattrs, pluggy):
        dirs.append(str(Path(module.__file__).parents[1]))
    return os.pathsep.join(dict.fromkeys(dirs))


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
    done = subprocess.run(
        [python, "-c", CHECKS], capture_output=True, text=True, timeout=120, cwd="/tmp",
        env={"PYTHONPATH": _search_path(), "HOME": "/tmp", "PATH": "/usr/bin:/bin"},
        user=UID, group=UID, extra_groups=[],
    )
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
