"""Rotation races: a log verified while it is written, rotated and pruned reads as one chain.

Before the fix, ``verify_audit_log`` listed ``audit.log.N`` ... ``audit.log`` by name and read
them one after another with no lock, so a writer rotating in between (``.1`` renamed to ``.2``
before ``audit.log`` becomes ``.1``) made a live, intact log look tampered ("seq 1..224
missing") or made verify crash on a pruned file.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from security_helpers import KEY, write_records

from neuroflow.security.audit import AuditLogger, head_path, rotated_path
from neuroflow.security.model import AuditEvent
from neuroflow.security.verify import VerifyReport, log_files, verify_audit_log

WRITER = r"""
import sys, threading
from neuroflow.security.audit import AuditLogger
from neuroflow.security.model import AuditEvent

path, name, count, max_bytes, backups = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
key = b"test-key-0123456789abcdef0123456789"
sys.stdin.readline()  # start together

def work(thread: int) -> None:
    logger = AuditLogger(path, key=key, max_bytes=max_bytes, backups=backups)
    i = 0
    while i < count:
        if i % 10 == 3:  # batches rotate in the middle too
            batch = [AuditEvent("test", name, "command", f"{name}.{thread}:{i + j}")
                     for j in range(min(4, count - i))]
            logger.log_many_sync(batch)
            i += len(batch)
        else:
            logger.log_sync(AuditEvent("test", name, "command", f"{name}.{thread}:{i}"))
            i += 1

threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def start_writers(path: Path, processes: int, each: int, max_bytes: int,
                  backups: int) -> list[subprocess.Popen[bytes]]:
    """Writer processes (two threads, two loggers each), released together."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"p{n}", str(each), str(max_bytes),
             str(backups)],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for n in range(processes)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    return procs


def wait_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait for the writers; each must have exited cleanly."""
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()


def blocked_flock_waiters(inode: int) -> int:
    """How many ``flock`` requests on ``inode`` are waiting (the ``->`` lines of /proc/locks)."""
    count = 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields:  # "1: -> FLOCK ADVISORY READ pid maj:min:ino ..."
            ids = [f for f in fields if f.count(":") == 2]
            if ids and int(ids[0].rsplit(":", 1)[1]) == inode:
                count += 1
    return count


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_verify_waits_for_a_rotation_in_progress(log_path: Path) -> None:
    logger = write_records(log_path, 40, max_bytes=2_000)
    assert len(log_files(log_path)) >= 3
    files_before = len(log_files(log_path))
    # Play a writer half-way through a rotation: it holds the lock and has renamed
    # .N -> .N+1 ... .1 -> .2, but audit.log is not yet .1 (so there is no .1 for now).
    head_fd = os.open(head_path(log_path), os.O_RDWR)
    released = False
    try:
        fcntl.flock(head_fd, fcntl.LOCK_EX)
        for index in range(files_before - 1, 0, -1):
            os.rename(rotated_path(log_path, index), rotated_path(log_path, index + 1))
        result: list[VerifyReport | BaseException] = []

        def verify() -> None:
            try:
                result.append(verify_audit_log(log_path, KEY))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                result.append(exc)

        thread = threading.Thread(target=verify)
        thread.start()
        inode = os.fstat(head_fd).st_ino
        deadline = time.monotonic() + 60
        while thread.is_alive() and not blocked_flock_waiters(inode):
            assert time.monotonic() < deadline, "verify neither finished nor waited for the lock"
            time.sleep(0.001)
        os.rename(log_path, rotated_path(log_path, 1))  # the rotation completes
        fcntl.flock(head_fd, fcntl.LOCK_UN)
        released = True
        thread.join(60)
    finally:
        if not released:
            fcntl.flock(head_fd, fcntl.LOCK_UN)
        os.close(head_fd)
    assert len(result) == 1
    report = result[0]
    assert isinstance(report, VerifyReport), repr(report)
    assert report.ok, report.summary()
    assert (report.records, report.last_seq) == (40, 40)
    # the writer carries on into a fresh audit.log, chained to the rotated one
    logger.log_sync(AuditEvent("test", "agent-0", "command", "after"))
    report = verify_audit_log(log_path, KEY)
    assert report.ok and report.last_seq == 41, report.summary()


@pytest.mark.parametrize("backups", [0, 3])
def test_verify_while_processes_rotate_and_prune_sees_an_intact_chain(
        log_path: Path, backups: int) -> None:
    log_path.parent.mkdir(parents=True)
    procs = start_writers(log_path, processes=3, each=200, max_bytes=3_000, backups=backups)
    reports: list[VerifyReport] = []
    try:
        while any(proc.poll() is None for proc in procs):
            if head_path(log_path).exists() and log_path.exists():
                reports.append(verify_audit_log(log_path, KEY))
    finally:
        wait_all(procs)
    bad = [r.summary() for r in reports if not r.ok]
    assert not bad, bad[:3]
    assert reports, "no verify ran while the writers wrote"
    final = verify_audit_log(log_path, KEY)
    assert final.ok, final.summary()
    assert final.last_seq == 3 * 2 * 200
    if backups:
        assert len(log_files(log_path)) == backups + 1 and final.first_seq > 1
    else:
        assert final.records == 3 * 2 * 200


def test_verify_out_of_descriptors_keeps_the_lock_and_reads_by_name(log_path: Path) -> None:
    write_records(log_path, 150, max_bytes=1_000)
    files = len(log_files(log_path))
    assert files > 40
    script = (
        "import os, resource, sys\n"
        "from neuroflow.security.verify import verify_audit_log\n"
        "used = len(os.listdir('/proc/self/fd'))\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (used + 20, hard))\n"
        "report = verify_audit_log(sys.argv[1], sys.argv[2].encode())\n"
        "print(report.ok, report.records, report.summary())\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(log_path), KEY.decode()],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("True 150 "), out.stdout


def test_a_writer_whose_file_was_rotated_and_pruned_away_continues_the_chain(
        log_path: Path) -> None:
    """A writer's cached chain head is checked against the file's identity at each append."""
    slow = AuditLogger(log_path, key=KEY, max_bytes=1_000, backups=1)
    slow.log_sync(AuditEvent("test", "slow", "command", "first"))
    fast = AuditLogger(log_path, key=KEY, max_bytes=1_000, backups=1)
    for i in range(30):  # rotates many times; the file `slow` wrote to is long pruned
        fast.log_sync(AuditEvent("test", "fast", "command", f"f{i}"))
    slow.log_sync(AuditEvent("test", "slow", "command", "second"))
    report = verify_audit_log(log_path, KEY)
    assert report.ok, report.summary()
    assert report.last_seq == 32


def test_a_short_write_is_cut_off_and_the_next_append_continues_the_chain(
        log_path: Path) -> None:
    """A record only partly written (here: the file size limit) is removed, not left behind."""
    script = (
        "import os, resource, signal, sys\n"
        "from neuroflow.errors import SecurityError\n"
        "from neuroflow.security.audit import AuditLogger\n"
        "from neuroflow.security.model import AuditEvent\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "logger = AuditLogger(sys.argv[1], key=sys.argv[2].encode())\n"
        "logger.log_sync(AuditEvent('test', 'a', 'command', 'first'))\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(sys.argv[1]) + 50, hard))\n"
        "try:\n"
        "    logger.log_sync(AuditEvent('test', 'a', 'command', 'cut', details={'x': 'y' * 200}))\n"
        "except SecurityError as exc:\n"
        "    print('refused:', exc)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))\n"
        "print('seq', logger.log_sync(AuditEvent('test', 'a', 'command', 'second')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(log_path), KEY.decode()],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "short write" in out.stdout, out.stdout
    assert out.stdout.rstrip().endswith("seq 2"), out.stdout
    report = verify_audit_log(log_path, KEY)
    assert report.ok and report.records == 2, report.summary()
    assert b"cut" not in log_path.read_bytes()
