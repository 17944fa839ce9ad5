"""Hostile programs under the process sandbox: each ends within its limit, with the right
reason, and leaves no process behind (checked by scanning /proc for a marker)."""

from __future__ import annotations

import signal

import pytest
from sandbox_helpers import new_marker, survivors

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, TerminationReason, cgroups

MiB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    not cgroups.support().usable,
    reason="this machine has no usable pids/memory cgroup (see `neuroflow doctor`)",
)


def run(config: SandboxConfig, *argv: str, timeout: float | None = None):
    """Run ``argv`` once in a fresh isolator (blocking)."""
    isolator = SandboxIsolator(config)
    try:
        return isolator.execute_sync(argv[0], list(argv[1:]), timeout=timeout)
    finally:
        import anyio

        anyio.run(isolator.aclose)


def python_code(code: str, marker: str) -> tuple[str, ...]:
    """argv running ``code`` in the sandbox's ``python3`` (as root, one the dropped uid may
    execute), with ``marker`` in its command line."""
    return ("python3", "-I", "-S", "-c", code, marker)


def test_cpu_spin_is_stopped_by_the_cpu_limit() -> None:
    marker = new_marker()
    result = run(SandboxConfig(cpu_time_limit=1, wall_timeout=30),
                 *python_code("while True: pass", marker))
    assert result.reason is TerminationReason.CPU_LIMIT
    assert result.signal in (signal.SIGXCPU, signal.SIGKILL)
    assert result.cpu_time_ms >= 500  # rusage lags the kernel's limit accounting a little
    assert "cpu" in result.limits_hit
    assert survivors(marker) == []


def test_sleep_forever_times_out_with_its_children() -> None:
    marker = new_marker()
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', sys.argv[1]])\n"
        "time.sleep(1000)\n"
    )
    result = run(SandboxConfig(), *python_code(code, marker), timeout=1.0)
    assert result.reason is TerminationReason.TIMED_OUT
    assert result.signal == signal.SIGKILL
    assert result.wall_time_ms >= 1000
    assert survivors(marker) == []


@pytest.mark.parametrize("exact", [False, True], ids=["vfork", "exact_rlimits"])
def test_memory_bomb_is_killed_at_the_memory_limit(exact: bool) -> None:
    marker = new_marker()
    code = (
        "chunks = []\n"
        "while True:\n"
        "    chunks.append(bytearray(4 * 1024 * 1024))\n"
    )
    result = run(SandboxConfig(memory_limit=64 * MiB, wall_timeout=30, exact_rlimits=exact),
                 *python_code(code, marker))
    assert result.reason is TerminationReason.MEMORY_LIMIT
    assert "memory" in result.limits_hit
    assert result.peak_memory_bytes is not None
    assert result.peak_memory_bytes <= 64 * MiB
    assert survivors(marker) == []


def test_output_flood_is_cut_at_the_cap() -> None:
    marker = new_marker()
    code = "import os\nwhile True:\n    os.write(1, b'x' * 65536)\n"
    result = run(SandboxConfig(max_output_bytes=256 * 1024, wall_timeout=30),
                 *python_code(code, marker))
    assert result.reason is TerminationReason.OUTPUT_LIMIT
    assert result.stdout_truncated
    assert not result.stderr_truncated
    assert len(result.stdout) == 256 * 1024
    assert set(result.stdout) == {ord("x")}
    assert survivors(marker) == []


def test_stderr_flood_is_cut_too() -> None:
    marker = new_marker()
    code = "import os\nwhile True:\n    os.write(2, b'e' * 4096)\n"
    result = run(SandboxConfig(max_output_bytes=10_000, wall_timeout=30),
                 *python_code(code, marker))
    assert result.reason is TerminationReason.OUTPUT_LIMIT
    assert result.stderr_truncated
    assert len(result.stderr) == 10_000
    assert survivors(marker) == []


def test_fd_exhaustion_ends_cleanly_within_the_limit() -> None:
    marker = new_marker()
    code = (
        "import os\n"
        "fds = []\n"
        "try:\n"
        "    while True:\n"
        "        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
        "except OSError as exc:\n"
        "    print(len(fds), exc.errno)\n"
    )
    result = run(SandboxConfig(max_open_files=64, wall_timeout=30), *python_code(code, marker))
    assert result.reason is TerminationReason.EXITED
    assert result.exit_code == 0
    opened, errno_value = result.stdout.split()
    assert 0 < int(opened) < 64
    assert int(errno_value) == 24  # EMFILE
    assert survivors(marker) == []


@pytest.mark.parametrize("exact", [False, True], ids=["vfork", "exact_rlimits"])
def test_double_forked_setsid_orphan_does_not_survive(exact: bool) -> None:
    marker = new_marker()
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.execv(sys.executable, [sys.executable, '-c',\n"
        "                 'import time; time.sleep(1000)', sys.argv[1]])\n"
        "    os._exit(0)\n"
        "os.wait()\n"
        "time.sleep(0.2)\n"
        "print('parent done')\n"
    )
    result = run(SandboxConfig(wall_timeout=30, exact_rlimits=exact),
                 *python_code(code, marker))
    assert result.reason is TerminationReason.EXITED
    assert result.stdout == b"parent done\n"
    assert survivors(marker) == []


@pytest.mark.parametrize("exact", [False, True], ids=["vfork", "exact_rlimits"])
def test_fork_bomb_stops_at_max_processes(exact: bool) -> None:
    marker = new_marker()
    code = (
        "import os, sys, time\n"
        "children = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(1000)\n"
        "            os._exit(0)\n"
        "        children += 1\n"
        "except OSError as exc:\n"
        "    print(children, exc.errno)\n"
        "    sys.stdout.flush()\n"
        "    os._exit(3)\n"
    )
    result = run(SandboxConfig(max_processes=16, wall_timeout=30, exact_rlimits=exact),
                 *python_code(code, marker))
    assert result.reason is TerminationReason.PROCESS_LIMIT
    assert "processes" in result.limits_hit
    children, errno_value = result.stdout.split()
    assert int(children) < 16
    assert int(errno_value) == 11  # EAGAIN
    assert survivors(marker) == []


def test_shell_fork_bomb_ends_and_leaves_nothing() -> None:
    marker = new_marker()
    # The classic bomb; the marker rides in $0 of every copy.
    script = "b() { b | b & }; b; sleep 2"
    result = run(SandboxConfig(max_processes=32, wall_timeout=1.5),
                 "/bin/sh", "-c", script, marker)
    assert result.reason in (TerminationReason.TIMED_OUT, TerminationReason.EXITED,
                             TerminationReason.PROCESS_LIMIT)
    assert "processes" in result.limits_hit
    assert survivors(marker) == []


def test_file_size_limit_stops_a_big_write() -> None:
    marker = new_marker()
    code = "f = open('big', 'wb')\nwhile True:\n    f.write(b'z' * 65536)\n    f.flush()\n"
    result = run(SandboxConfig(max_file_size=1 * MiB, wall_timeout=30),
                 *python_code(code, marker))
    # Python ignores SIGXFSZ, so the write fails with EFBIG and it exits with an error.
    assert result.exit_code != 0
    assert b"File too large" in result.stderr
    assert survivors(marker) == []


def test_file_size_limit_signal_is_reported() -> None:
    result = run(SandboxConfig(max_file_size=64 * 1024, wall_timeout=30),
                 "/bin/sh", "-c", "exec /bin/cat /dev/zero > big")
    assert result.reason is TerminationReason.FILE_SIZE_LIMIT
    assert result.signal == signal.SIGXFSZ


def test_a_limit_too_small_to_start_in_ends_the_program_not_the_host() -> None:
    # Only the child enters the run cgroup: the out-of-memory killer must pick it, never
    # this (far bigger) test process.
    for limit in (1 * MiB, 128 * 1024):
        result = run(SandboxConfig(memory_limit=limit), "/bin/sh", "-c", "echo started")
        assert result.peak_memory_bytes is not None
        assert result.peak_memory_bytes <= limit
        if result.reason is TerminationReason.MEMORY_LIMIT:
            assert result.signal == signal.SIGKILL
        else:
            assert result.stdout == b"started\n"
    assert result.reason is TerminationReason.MEMORY_LIMIT  # 128 KiB cannot exec a shell
