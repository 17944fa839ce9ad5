"""Hostile programs in the namespace sandbox (run as the host's root, as CI is): each ends
within its limit, the host is unaffected, and no process of the run is left behind."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ns_helpers import new_marker, py, run, survivors

from neuroflow.sandbox import TerminationReason, cgroup_support

MiB = 1024 * 1024

needs_cgroups = pytest.mark.skipif(
    not (cgroup_support().pids and cgroup_support().memory),
    reason="this machine gives this process no pids/memory cgroup (see `neuroflow doctor`)")


@pytest.fixture
def marker() -> Iterator[str]:
    """A marker for the test's command line; after the test, no process carries it."""
    word = new_marker()
    yield word
    deadline = time.monotonic() + 2
    while survivors(word) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survivors(word) == [], "a process of the run outlived it"


# --- resources ---------------------------------------------------------------------------


@needs_cgroups
def test_fork_bomb_is_held_by_the_pids_cgroup(marker: str) -> None:
    code = ("import os\nn = 0\nwhile True:\n    try:\n        os.fork(); n += 1\n"
            "    except OSError:\n        break\nos.write(1, b'capped\\n')\n"
            "import time; time.sleep(30)\n")
    result = run(py(code, marker), timeout=4, max_processes=16)
    assert "processes" in result.limits_hit, result
    assert b"capped" in result.stdout
    assert result.reason is TerminationReason.TIMED_OUT


@needs_cgroups
def test_memory_bomb_is_killed_by_the_memory_cgroup(marker: str) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))\n"
    result = run(py(code, marker), memory_limit=64 * MiB, timeout=20)
    assert result.reason is TerminationReason.MEMORY_LIMIT, result
    assert result.signal == signal.SIGKILL
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes <= 72 * MiB


def test_cpu_spin_is_stopped_by_the_cpu_limit(marker: str) -> None:
    result = run(py("while True: pass", marker), cpu_time_limit=1, timeout=20)
    assert result.reason is TerminationReason.CPU_LIMIT, result
    assert result.signal in (signal.SIGXCPU, signal.SIGKILL)


def test_sleep_forever_times_out_with_its_children(marker: str) -> None:
    code = ("import os, time\nif os.fork() == 0:\n    time.sleep(1000)\ntime.sleep(1000)\n")
    result = run(py(code, marker), timeout=1.0)
    assert result.reason is TerminationReason.TIMED_OUT
    assert 1000 <= result.wall_time_ms < 10_000


@pytest.mark.parametrize(("where", "setting"), [("/tmp", "tmp_size"), ("/dev/shm", "shm_size")])
def test_filling_tmp_or_shm_stops_at_its_size(marker: str, where: str, setting: str) -> None:
    code = (f"import errno\nn = 0\nf = open('{where}/fill-' + __import__('sys').argv[1], 'wb')\n"
            "try:\n    while True:\n        f.write(b'x' * 65536); f.flush(); n += 65536\n"
            "except OSError as e:\n    print(errno.errorcode[e.errno], n)\n")
    result = run(py(code, marker), **{setting: 8 * MiB})
    assert result.ok, result
    name, written = result.stdout.split()
    assert name == b"ENOSPC"
    assert int(written) <= 8 * MiB
    assert not list(Path(where).glob(f"fill-{marker}*")), "the file reached the host"


def test_fd_exhaustion_stops_at_max_open_files(marker: str) -> None:
    code = ("import os\nfds = []\ntry:\n    while True:\n"
            "        fds.append(os.open('/dev/null', 0))\n"
            "except OSError as e:\n    print(e.errno, len(fds))\n")
    result = run(py(code, marker), max_open_files=64)
    assert result.ok, result
    err, count = result.stdout.split()
    assert int(err) == 24 and int(count) <= 64  # EMFILE


def test_output_flood_is_capped_and_ends_the_run(marker: str) -> None:
    code = "import os\nwhile True:\n    os.write(1, b'y' * 65536)\n"
    result = run(py(code, marker), max_output_bytes=256 * 1024, timeout=20)
    assert result.reason is TerminationReason.OUTPUT_LIMIT
    assert len(result.stdout) == 256 * 1024 and result.stdout_truncated


# --- what the sandbox can see ---------------------------------------------------------------


def test_host_secrets_are_out_of_sight(marker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NF_HOST_SECRET", "s3cr3t-host-value")
    code = r"""
import os, sys
out = []
for path in ("/etc/shadow", "/root", "/root/.bashrc", "/etc/sudoers", "/home"):
    out.append(f"{path}:{os.path.exists(path)}")
seen = [p for p in os.listdir("/proc") if p.isdigit()]
out.append("pids:" + ",".join(sorted(seen)))
leaked = []
for pid in seen:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            if b"s3cr3t-host-value" in fh.read():
                leaked.append(pid)
    except OSError as exc:
        out.append(f"environ {pid}:{exc.errno}")
out.append("leaked:" + ",".join(leaked))
out.append("env:" + str("s3cr3t-host-value" in str(os.environ)))
print("\n".join(out))
"""
    result = run(py(code, marker))
    assert result.ok, result
    lines = result.stdout.decode().splitlines()
    for path in ("/etc/shadow", "/root", "/root/.bashrc", "/etc/sudoers", "/home"):
        assert f"{path}:False" in lines
    pids = next(line for line in lines if line.startswith("pids:"))[5:].split(",")
    assert pids[0] == "1" and all(int(p) < 10 for p in pids), pids  # its own pid namespace
    assert "environ 1:13" in lines  # PID 1 (the launcher) is not readable: EACCES
    assert "leaked:" in lines and "env:False" in lines


def test_writes_outside_the_work_dir_fail_and_a_symlink_out_leads_nowhere(
        marker: str, tmp_path: Path) -> None:
    host_file = tmp_path / "host.txt"
    host_file.write_text("host\n")
    work = tmp_path / "work"
    work.mkdir()
    code = f"""
import os
for path in ("/usr/nf-{marker}", "/etc/nf-{marker}", "/nf-{marker}", "/proc/sys/kernel/hostname",
             "/dev/nf-{marker}"):
    try:
        open(path, "w").write("x")
        print(path, "written")
    except OSError as exc:
        print(path, exc.errno)
os.symlink("{host_file}", "link")
try:
    open("link", "w").write("pwned\\n")
    print("link written")
except OSError as exc:
    print("link", exc.errno)
"""
    result = run(py(code, marker), work_dir=str(work))
    assert result.ok, result
    assert b"written\n" not in result.stdout.replace(b"link written", b""), result.stdout
    assert host_file.read_text() == "host\n"
    for path in ("/usr", "/etc", "/"):
        assert not os.path.exists(os.path.join(path, f"nf-{marker}"))


def test_own_cgroup_limits_cannot_be_read_written_or_left(marker: str) -> None:
    code = r"""
import os
print(";".join(open("/proc/self/cgroup").read().split()))
for path in ("/sys/fs/cgroup", "/sys"):
    print(path, os.path.exists(path))
try:
    os.mkdir("/tmp/cg"); import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.mount(b"cgroup", b"/tmp/cg", b"cgroup", 0, b"pids")
    print("mount", r, ctypes.get_errno())
except OSError as exc:
    print("mount", exc.errno)
"""
    result = run(py(code, marker))
    assert result.ok, result
    first, *rest = result.stdout.decode().splitlines()
    # Its own cgroup namespace, rooted at its cgroup in every hierarchy: it sees no path
    # of the host's (nor the run cgroup's name).
    hierarchies = first.split(";")
    assert len(hierarchies) > 1 and all(line.endswith(":/") for line in hierarchies), first
    assert "/sys/fs/cgroup False" in rest and "/sys False" in rest
    assert "mount -1 1" in rest  # EPERM


def _listener() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server, server.getsockname()[1]


def test_network_off_reaches_neither_loopback_nor_the_world(marker: str) -> None:
    server, port = _listener()
    try:
        code = f"""
import socket
for host, port in (("127.0.0.1", {port}), ("127.0.0.1", 5432), ("1.1.1.1", 53)):
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((host, port)); print(host, port, "connected")
    except OSError as exc:
        print(host, port, type(exc).__name__)
"""
        result = run(py(code, marker))
    finally:
        server.close()
    assert result.ok, result
    assert b"connected" not in result.stdout, result.stdout
    assert result.stdout.count(b"\n") == 3


def test_network_on_reaches_the_host_loopback(marker: str) -> None:
    """The other side of the test above: with the network on, the same probe connects."""
    server, port = _listener()
    try:
        code = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), 3)\n"
                "print('connected')\n")
        result = run(py(code, marker), enable_network=True)
    finally:
        server.close()
    assert result.ok and result.stdout == b"connected\n", result


def test_a_host_process_cannot_be_killed(marker: str) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        code = (f"import os\ntry:\n    os.kill({victim.pid}, 9); print('killed')\n"
                "except OSError as exc:\n    print(exc.errno)\n")
        result = run(py(code, marker))
        assert result.ok, result
        assert victim.poll() is None, "the sandbox killed a host process"
        assert result.stdout.strip() in (b"3", b"1")  # ESRCH (or EPERM)
    finally:
        victim.kill()
        victim.wait()


def test_a_setuid_binary_gives_no_privileges(marker: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a set-uid-root binary needs root")
    suid = tmp_path / "suid"
    suid.mkdir()
    os.chmod(tmp_path, 0o755)
    binary = suid / "id"
    binary.write_bytes(Path("/usr/bin/id").read_bytes())
    os.chmod(binary, 0o4755)
    assert binary.stat().st_mode & stat.S_ISUID and binary.stat().st_uid == 0
    # Bound read-only at its own path (programs are resolved on the host by that path).
    result = run([str(binary), "-u"], binds=[str(suid)])
    assert result.ok, result
    assert result.stdout.strip() != b"0"


def test_a_double_forked_daemon_dies_with_the_run(marker: str) -> None:
    code = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        time.sleep(1000)\n    os._exit(0)\nos.wait()\nprint('parent done')\n")
    result = run(py(code, marker))
    assert result.ok and result.stdout == b"parent done\n", result


# --- what a run leaves on the host ---------------------------------------------------------


def test_a_file_left_through_a_writable_bind_into_tmp_is_removed(marker: str) -> None:
    # A run's own /tmp is a tmpfs that goes with it; the host's /tmp is reached only
    # through a writable bind, and then what the run's uid leaves there is cleaned up.
    if os.geteuid() != 0:
        pytest.skip("a dedicated uid per run (whose leftovers are removed) needs root")
    shared = Path(f"/tmp/{marker}-shared")
    shared.mkdir()
    shared.chmod(0o1777)  # anyone may create entries, as in /tmp itself
    (shared / "someone-elses").write_text("keep")
    try:
        code = ("import sys\nopen('/mnt/shared/left', 'w').write('x')\n"
                "open('/tmp/private', 'w').write('x')\nprint('ok')\n")
        result = run(py(code, marker),
                     binds=[{"source": str(shared), "target": "/mnt/shared",
                             "writable": True}])
        assert result.stdout == b"ok\n", result
        assert sorted(p.name for p in shared.iterdir()) == ["someone-elses"]
        assert not os.path.lexists("/tmp/private")
    finally:
        for child in shared.iterdir():
            child.unlink()
        shared.rmdir()
