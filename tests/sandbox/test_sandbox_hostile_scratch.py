"""Every world-writable directory a run's uid can leave files in is cleaned after the run,
not only /tmp, /var/tmp and /dev/shm: on Debian-like systems /run/lock (/var/lock) is one
more, sticky and writable by anyone.  And a run keeps none of the host's descriptors (the
host holds its run cgroups' control files and the uid lock directory open)."""

from __future__ import annotations

import os
import stat

import anyio
import pytest
from sandbox_helpers import new_marker

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, cgroups, process, runas

ROOT = os.geteuid() == 0


def _run(code: str, *args: str) -> bytes:
    async def go() -> bytes:
        async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:
            result = await box.execute("python3", ["-I", "-S", "-c", code, *args])
            assert result.exit_code == 0, result.stderr
            return result.stdout

    return anyio.run(go)


def _world_writable(directory: str) -> bool:
    try:
        return bool(os.stat(directory).st_mode & stat.S_IWOTH)
    except OSError:
        return False


@pytest.mark.skipif(not ROOT, reason="the host is not root here: runs keep its uid")
def test_files_a_run_leaves_in_run_lock_are_removed() -> None:
    # Every such place this machine has (/tmp at least, which is tested elsewhere too).
    places = [d for d in ("/run/lock", "/var/lock", "/var/crash") if _world_writable(d)]
    marker = new_marker()
    paths = [os.path.join(d, marker) for d in places or ["/tmp"]]
    code = ("import sys\n"
            "for path in sys.argv[1:]:\n"
            "    open(path, 'w').write('left')\n"
            "print('ok')\n")
    try:
        assert _run(code, *paths) == b"ok\n"
        assert [p for p in paths if os.path.lexists(p)] == []
    finally:
        for path in paths:
            if os.path.lexists(path):
                os.unlink(path)


def test_every_world_writable_directory_of_the_usual_places_is_a_scratch_directory() -> None:
    # The usual places where anyone may create files; any that exists here must be cleaned.
    usual = ["/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock", "/var/lock",
             "/var/crash"]
    cleaned = {os.path.realpath(d) for d in runas.SCRATCH_DIRS}
    for directory in usual:
        try:
            writable = os.stat(directory).st_mode & stat.S_IWOTH
        except OSError:
            continue
        if writable:
            assert os.path.realpath(directory) in cleaned, directory


@pytest.mark.skipif(not cgroups.support().usable,
                    reason="this machine has no usable pids/memory cgroup")
@pytest.mark.parametrize("path", ["native", "fork"])
def test_a_run_holds_only_its_three_standard_descriptors(
    path: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if path == "native" and process.spawn_path() != "native":
        pytest.skip("neuroflow-native is not installed here")
    if path == "fork":
        monkeypatch.setattr(process, "_native_spawn", None)
    code = ("import os\n"
            "fds = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))\n"
            "print(' '.join(map(str, fds)))\n")
    # Two runs: the second finds the pool's cgroup whose control files the host holds open.
    _run(code)
    listed = _run(code).split()
    # 0, 1, 2, and the descriptor listdir itself opened for /proc/self/fd.
    assert listed[:3] == [b"0", b"1", b"2"] and len(listed) == 4, listed
