"""Attacks on the launcher's handling of paths a run can change: what a run plants in its
work directory (or in a writable bind) must not decide what the next run of the same
sandbox sees or where it writes.  Run as the host's root (as CI is) and, where the harm is
worse, as an unprivileged host uid the test creates (the run then has that uid's access).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from ns_helpers import PID1_PROBE, PID1_REFUSED, new_marker, py, run, survivors
from test_unprivileged import UID, readable_site, system_python

from neuroflow import create_backend
from neuroflow.errors import SandboxError
from neuroflow_sandbox_namespace.config import NamespaceConfig


def _two_runs(work: Path, binds: list[str], first: str, second: str) -> tuple[object, object]:
    """Run ``first`` then ``second`` (shell scripts) in one sandbox; the second run's
    result, or the SandboxError it raised."""

    async def runs() -> tuple[object, object]:
        config = NamespaceConfig(work_dir=str(work), binds=binds, enable_network=False,
                                 enable_seccomp=True, wall_timeout=30)
        async with create_backend("isolation", "namespace", config, gate=False) as box:
            one = await box.execute("/bin/sh", ["-c", first])
            try:
                two: object = await box.execute("/bin/sh", ["-c", second])
            except SandboxError as exc:
                two = exc
            return one, two

    return anyio.run(runs)


@pytest.fixture
def host_tree(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A host directory only root may reach (0700) holding a world-readable folder with a
    secret, and a work directory with a ``data`` folder the sandbox binds."""
    tmp_path.chmod(0o755)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    public = closed / "pub"
    public.mkdir(mode=0o755)
    (public / "secret").write_text("host secret\n")
    (public / "secret").chmod(0o644)
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    yield public, work


@pytest.mark.skipif(os.geteuid() != 0, reason="the host's root is what this attack borrows")
def test_a_bind_source_swapped_for_a_symlink_binds_nothing_of_the_host(
        host_tree: tuple[Path, Path]) -> None:
    """Run 1 replaces the bind source ``work/data`` with a symlink to a directory only the
    host's root can reach; run 2 must not get it bound (the launcher opens the source as
    the host's root before it takes the run's uid)."""
    public, work = host_tree
    first, second = _two_runs(
        work, [f"{work}/data:/data"],
        f"rm -rf data && ln -s {public} data && echo planted",
        "cat /data/secret; ls /data")
    assert first.exit_code == 0 and first.stdout == b"planted\n", first
    assert isinstance(second, SandboxError), f"the host's directory was bound: {second}"
    assert "symbolic link" in str(second) and f"{work}/data" in str(second), second


# The unprivileged host: a fresh uid runs a sandbox whose work directory holds a writable
# bind's source; run 1 points it at the uid's own private folder outside the sandbox.
UNPRIVILEGED = r"""
import json, sys
from neuroflow.errors import SandboxError
from neuroflow_sandbox_namespace.config import NamespaceConfig
from neuroflow_sandbox_namespace.sandbox import NamespaceSandbox

work, private = sys.argv[1], sys.argv[2]
box = NamespaceSandbox(NamespaceConfig(work_dir=work, binds=[work + "/data:/data:rw"],
                                       max_processes=None, enable_network=False,
                                       enable_seccomp=True), gate=False)
out = {}
r = box.execute_sync("/bin/sh", ["-c", f"rm -rf data && ln -s {private} data && echo planted"])
out["first"] = r.stdout.decode()
try:
    r = box.execute_sync("/bin/sh", ["-c", "echo pwned > /data/authorized_keys; echo $?"])
    out["second"] = r.stdout.decode()
except SandboxError as exc:
    out["second"] = "refused: " + str(exc)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    folder = readable_site()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_an_unprivileged_host_s_own_files_stay_out_of_a_swapped_bind(site: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("this test makes a fresh uid, which needs root")
    python = system_python()
    # Not under pytest's tmp_path: its root-only (0700) parent would stop the fresh uid.
    tmp_path = Path(tempfile.mkdtemp(prefix="nf-ns-attack-", dir="/tmp"))
    tmp_path.chmod(0o755)
    try:
        _unprivileged_swap(python, site, tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _unprivileged_swap(python: str, site: str, tmp_path: Path) -> None:
    private = tmp_path / "home" / ".ssh"
    private.mkdir(parents=True)
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    for path in (tmp_path / "home", private, work, work / "data"):
        os.chown(path, UID, UID)
    private.chmod(0o700)
    done = subprocess.run([python, "-c", UNPRIVILEGED, str(work), str(private)],
                          capture_output=True, text=True, timeout=120, cwd="/tmp",
                          env={"PYTHONPATH": site, "HOME": "/tmp", "PATH": "/usr/bin:/bin"},
                          user=UID, group=UID, extra_groups=[])
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["first"] == "planted\n", out
    assert not (private / "authorized_keys").exists(), "the run wrote the host uid's file"
    assert out["second"].startswith("refused: ") and "symbolic link" in out["second"], out


@pytest.mark.skipif(os.geteuid() != 0, reason="the host's root is what builds the mounts")
def test_a_mount_point_swapped_for_a_symlink_creates_nothing_outside(tmp_path: Path
                                                                     ) -> None:
    """A bind's target below the work directory: run 1 moves the folder holding it away and
    puts a link to ``/oldroot/<a host directory>`` in its place (``/oldroot`` is where the
    host's root is while the launcher binds); run 2's launcher must not make the mount
    point's folders and file in that host directory, nor mount anything there."""
    tmp_path.chmod(0o755)
    # The victim where the run's uid can reach it (pytest's tmp_path is below a 0700
    # folder): like /tmp or /var/tmp, anyone may create entries.
    # (One level down: what a run's uid leaves directly in /tmp is removed after it.)
    outer = Path(tempfile.mkdtemp(prefix="nf-ns-victim-", dir="/tmp"))
    outer.chmod(0o755)
    victim = outer / "shared"
    victim.mkdir()
    victim.chmod(0o1777)
    try:
        _swap_mount_point(tmp_path, victim)
    finally:
        shutil.rmtree(outer, ignore_errors=True)


def _swap_mount_point(tmp_path: Path, victim: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_text("bound\n")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    first, second = _two_runs(
        work, [f"{source}:{work}/sub/d/f.txt"],
        f"mv sub old && ln -s /oldroot{victim} sub && echo planted",
        "cat sub/d/f.txt")
    assert first.exit_code == 0 and first.stdout == b"planted\n", first
    assert list(victim.iterdir()) == [], "the launcher created entries outside the sandbox"
    assert isinstance(second, SandboxError), second
    assert "symbolic link" in str(second) and f"{work}/sub/d/f.txt" in str(second), second


def test_binds_below_the_work_dir_still_work(tmp_path: Path) -> None:
    """The walk that refuses links still makes missing mount points (folders and a file)
    below the work directory, and the binds land there with their modes."""
    source = tmp_path / "source.txt"
    source.write_text("bound\n")
    work = tmp_path / "work"
    work.mkdir()
    first, second = _two_runs(
        work, [f"{source}:{work}/a/b/f.txt", f"{tmp_path}/work:/mnt/w:rw"],
        "cat a/b/f.txt; echo x > a/b/f.txt || echo read-only",
        "ls /mnt/w/a/b; echo y > /mnt/w/new && cat new")
    assert first.exit_code == 0, first
    assert first.stdout.splitlines() == [b"bound", b"read-only"], first
    assert not isinstance(second, SandboxError), second
    assert second.stdout.splitlines() == [b"f.txt", b"y"], second


def test_an_abstract_unix_socket_of_the_host_is_out_of_reach_with_network_off() -> None:
    """Abstract unix sockets have no file to hide: they belong to the network namespace.
    A host service listening on one (containerd's shims did) is unreachable with the
    network off; with it on, the same probe connects (the probe works)."""
    name = new_marker()
    server = socket.socket(socket.AF_UNIX)
    server.bind("\0" + name)
    server.listen()
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect('\\0' + sys.argv[1]); print('connected')\n"
             "except OSError as exc:\n    print('errno', exc.errno)\n")
    try:
        off = run(py(probe, name), enable_network=False)
        on = run(py(probe, name), enable_network=True)
    finally:
        server.close()
    assert off.ok and on.ok, (off, on)
    assert off.stdout == b"errno 111\n", off  # ECONNREFUSED: no such socket here
    assert on.stdout == b"connected\n", on


FIFO = r"""
import anyio, sys
from neuroflow import create_backend
from neuroflow_sandbox_namespace.config import NamespaceConfig

work, source = sys.argv[1], sys.argv[2]

async def main():
    config = NamespaceConfig(work_dir=work, binds=[f"{source}:{work}/sub/d/f.txt"],
                             enable_network=False, enable_seccomp=True, wall_timeout=10)
    async with create_backend("isolation", "namespace", config, gate=False) as box:
        r = await box.execute("/bin/sh", ["-c", "mv sub old && mkdir -p sub/d && "
                                                "mkfifo sub/d/f.txt && echo planted"])
        print(r.stdout.decode().strip())
        r = await box.execute("/bin/sh", ["-c", "cat sub/d/f.txt"])
        print(r.exit_code, r.stdout.decode().strip())

anyio.run(main)
"""


def test_a_fifo_planted_at_a_mount_point_does_not_hang_the_host(tmp_path: Path) -> None:
    """Run 1 leaves a FIFO where a file bind's mount point goes; the launcher of run 2 used
    to open it for writing -- blocking forever, with the host's event loop inside
    ``launch()``.  Run in a child process so that a hang fails the test."""
    source = tmp_path / "source.txt"
    source.write_text("bound")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    try:
        done = subprocess.run([sys.executable, "-c", FIFO, str(work), str(source)],
                              capture_output=True, text=True, timeout=60, cwd="/tmp",
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    except subprocess.TimeoutExpired:
        pytest.fail("the second run never started: the launcher hung on the FIFO")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["planted", "0 bound"], done.stdout


CMDLINE = r"""
import sys
from ns_helpers import run

r = run(["/bin/sh", "-c", "cat /proc/1/cmdline /proc/1/environ; echo; echo done"])
sys.stdout.buffer.write(r.stdout)
"""


def test_the_host_s_command_line_is_not_readable_through_pid_1() -> None:
    """The namespace's PID 1 is a copy of the host process: ``/proc/1/cmdline`` is readable
    by anyone whatever the dumpable flag, and showed the host's arguments (a token given
    on the command line, say)."""
    secret = "--api-token=" + new_marker()
    here = os.path.dirname(__file__)
    done = subprocess.run(
        [sys.executable, "-c", CMDLINE, secret], capture_output=True, timeout=60, cwd="/tmp",
        env={**os.environ, "PYTHONPATH": os.pathsep.join([here, *sys.path])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(b"done\n"), done.stdout  # the probe ran
    assert secret.encode() not in done.stdout, "the host's command line leaked"
    assert sys.executable.encode() not in done.stdout, done.stdout


KEYRING = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long
keyctl, add_key = int(sys.argv[1]), int(sys.argv[2])
name, secret = sys.argv[3].encode(), sys.argv[4].encode()
assert libc.syscall(keyctl, 1, name) > 0  # this host process: a session keyring of its own
assert libc.syscall(add_key, b"user", name, secret, len(secret), ctypes.c_long(-3)) > 0
from ns_helpers import run
probe = '''
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long
keyctl = int(sys.argv[1])
key = libc.syscall(keyctl, 10, ctypes.c_long(-3), b"user", sys.argv[2].encode(), 0)
buf = ctypes.create_string_buffer(256)
n = libc.syscall(keyctl, 11, ctypes.c_long(key), buf, 256)
print(buf.raw[:n].decode() if n > 0 else "refused")
'''
r = run(["python3", "-I", "-S", "-c", probe, sys.argv[1], sys.argv[3]], enable_seccomp=False)
sys.stdout.buffer.write(r.stdout + r.stderr)
"""


def test_the_host_s_session_keyring_is_not_the_run_s() -> None:
    """With seccomp off (the standard level) keyctl is allowed; the run had the host's
    session keyring (inherited across clone) and "possessed" its keys.  Run in a child
    process, which gets a session keyring of its own for the test."""
    import platform

    numbers = {"x86_64": (250, 248), "aarch64": (219, 217)}.get(platform.machine())
    if numbers is None:
        pytest.skip(f"no keyctl number for {platform.machine()} here")
    secret = new_marker()
    here = os.path.dirname(__file__)
    done = subprocess.run(
        [sys.executable, "-c", KEYRING, *map(str, numbers), new_marker(), secret],
        capture_output=True, timeout=60, cwd="/tmp",
        env={**os.environ, "PYTHONPATH": os.pathsep.join([here, *sys.path])})
    assert done.returncode == 0, done.stderr
    assert secret.encode() not in done.stdout, "the host's key was read in the sandbox"
    assert done.stdout == b"refused\n", done.stdout


NESTED_CGROUP = r"""
unshare -Urm --cgroup sh -c '
mkdir -p /tmp/cg
(mount -t cgroup -o pids none /tmp/cg || mount -t cgroup2 none /tmp/cg) && echo mounted
echo "limit $(cat /tmp/cg/pids.max)"
echo max > /tmp/cg/pids.max && echo WROTE
echo $$ > /tmp/cg/cgroup.procs && echo MOVED
mount -o remount,rw / || echo "root stays read-only"
' 2>/dev/null
"""


def test_a_nested_namespace_mounting_its_cgroups_cannot_lift_the_limits() -> None:
    """With seccomp off (the standard level) a run may make a nested user, mount and cgroup
    namespace and mount the (pids or v2) cgroup file system there: it then sees its own limit,
    but the files belong to the host's root, so it can neither raise it nor leave its
    cgroup, nor remount the root read-write (a locked mount)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) here (util-linux)")
    result = run(["/bin/sh", "-c", NESTED_CGROUP], enable_seccomp=False, max_processes=64)
    assert result.ok, result
    lines = result.stdout.decode().splitlines()
    assert lines[:2] == ["mounted", "limit 64"], lines  # the attack reached the files
    assert "WROTE" not in lines and "MOVED" not in lines, lines
    assert lines[-1] == "root stays read-only", lines


def test_a_daemon_in_a_nested_pid_namespace_dies_with_the_run() -> None:
    """With seccomp off a run may start a nested user and pid namespace and leave a
    setsid daemon there (the nested namespace's PID 1): it is still a process of the run's
    pid namespace, and dies with the run."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) here (util-linux)")
    marker = new_marker()
    script = (f"setsid unshare -Urpf sh -c 'echo alive; sleep 300; : {marker}' </dev/null & "
              "sleep 0.3; echo done")
    result = run(["/bin/sh", "-c", script], enable_seccomp=False)
    assert result.ok, result
    assert result.stdout.split() == [b"alive", b"done"], result.stdout  # it was running
    deadline = time.monotonic() + 2
    while survivors(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survivors(marker) == [], "a process in a nested pid namespace outlived the run"


def test_pid_1_can_be_neither_traced_nor_read_with_seccomp_off() -> None:
    """PID 1 sets the sandbox up sharing the host's memory, then executes the init program
    and makes itself undumpable before the command exists: the command (same uid, no
    filter) may not attach to it or read its memory, maps, environment or executable --
    nor from a user namespace of its own, whose capabilities do not reach PID 1's."""
    result = run(py(PID1_PROBE), enable_seccomp=False)
    assert result.ok, result
    lines = result.stdout.decode().splitlines()
    assert lines == [f"run {PID1_REFUSED}", "nested 0", f"nested {PID1_REFUSED}"], lines


SMALL_MEMORY = r"""
import json
from neuroflow.errors import SandboxError
from ns_helpers import run
out = {}
for limit in (64 << 10, 256 << 10, 1 << 20):
    try:
        r = run(["/bin/true"], memory_limit=limit)
        out[limit] = [r.reason.value, r.limits_hit]
    except SandboxError as exc:
        out[limit] = ["error", str(exc)]
print(json.dumps(out))
"""


def test_a_memory_limit_too_small_to_start_in_harms_only_the_run() -> None:
    """PID 1 shares the host's memory while it sets the sandbox up; an out-of-memory kill
    in the run's memory cgroup kills every process sharing the victim's memory, so PID 1
    must not be in that cgroup then (the init program, with memory of its own, joins it).
    Runs whose limit is too small to start in end as memory_limit (or a start error
    naming it) and the host -- a child process here -- lives on."""
    here = os.path.dirname(__file__)
    done = subprocess.run(
        [sys.executable, "-c", SMALL_MEMORY], capture_output=True, text=True, timeout=120,
        cwd="/tmp", env={**os.environ, "PYTHONPATH": os.pathsep.join([here, *sys.path])})
    assert done.returncode == 0, (done.returncode, done.stderr)
    for limit, (reason, detail) in json.loads(done.stdout).items():
        assert reason in ("memory_limit", "exited"), (limit, reason, detail)
        if reason == "memory_limit":
            assert "memory" in detail, (limit, detail)
