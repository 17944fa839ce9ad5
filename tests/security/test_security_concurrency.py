"""Concurrent writers: threads, tasks and several processes share one chained log."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import anyio
import pytest
from security_helpers import KEY

from neuroflow.security.audit import AuditLogger
from neuroflow.security.keys import default_key_file
from neuroflow.security.model import AuditEvent
from neuroflow.security.verify import log_files, verify_audit_log

WRITER = r"""
import sys
from neuroflow.security.audit import AuditLogger
from neuroflow.security.model import AuditEvent

path, key, name = sys.argv[1], sys.argv[2].encode() or None, sys.argv[3]
count, max_bytes = int(sys.argv[4]), int(sys.argv[5])
logger = AuditLogger(path, key=key, max_bytes=max_bytes)
sys.stdin.readline()  # start together
for i in range(count):
    logger.log_sync(AuditEvent("test", name, "command", f"{name}:{i}", details={"i": i}))
"""


def all_records(path: Path) -> list[dict]:
    out = []
    for file in log_files(path):
        out += [json.loads(line) for line in file.read_text().splitlines()]
    return out


def run_writers(path: Path, processes: int, each: int, max_bytes: int,
                key: bytes = KEY) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), key.decode(), f"p{n}", str(each),
             str(max_bytes)],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for n in range(processes)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()


def check_exact(path: Path, writers: list[str], each: int, key: bytes | None = KEY) -> None:
    report = verify_audit_log(path, key)
    assert report.ok, report.summary()
    rows = all_records(path)
    assert report.records == len(rows) == len(writers) * each
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    seen = Counter(r["resource"] for r in rows)
    assert len(seen) == len(writers) * each and set(seen.values()) == {1}
    assert {r["actor"] for r in rows} == set(writers)


def test_four_processes_append_10000_records_to_one_chain(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    run_writers(log_path, processes=4, each=2500, max_bytes=0)
    check_exact(log_path, [f"p{n}" for n in range(4)], 2500)


def test_processes_rotating_while_they_write_keep_one_chain(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    run_writers(log_path, processes=4, each=500, max_bytes=60_000)
    assert len(log_files(log_path)) > 3
    check_exact(log_path, [f"p{n}" for n in range(4)], 500)


def test_processes_racing_to_create_the_default_key_file_share_one_key(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    run_writers(log_path, processes=4, each=50, max_bytes=0, key=b"")
    assert default_key_file(log_path).exists()
    check_exact(log_path, [f"p{n}" for n in range(4)], 50, key=None)


@pytest.mark.anyio
async def test_threads_and_tasks_write_concurrently(log_path: Path) -> None:
    logger = AuditLogger(log_path, key=KEY)
    second = AuditLogger(log_path, key=KEY)  # another writer object on the same file

    def thread_writer(name: str) -> None:
        for i in range(300):
            (logger if i % 2 else second).log_sync(
                AuditEvent("test", name, "command", f"{name}:{i}"))

    async def task_writer(name: str) -> None:
        for i in range(300):
            await logger.log(AuditEvent("test", name, "command", f"{name}:{i}"))
            if i % 50 == 0:
                await anyio.sleep(0)

    threads = [threading.Thread(target=thread_writer, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(task_writer, f"a{n}")
        for n in range(2):  # threads started from the event loop too
            tg.start_soon(anyio.to_thread.run_sync, thread_writer, f"w{n}")
    for thread in threads:
        thread.join()
    check_exact(log_path, [f"t{n}" for n in range(3)] + [f"a{n}" for n in range(3)]
                + [f"w{n}" for n in range(2)], 300)


def test_a_forked_child_writes_through_its_own_lock(log_path: Path) -> None:
    import multiprocessing

    logger = AuditLogger(log_path, key=KEY)
    logger.log_sync(AuditEvent("test", "parent", "command", "parent:-1"))
    context = multiprocessing.get_context("fork")

    def child(n: int) -> None:
        for i in range(200):
            logger.log_sync(AuditEvent("test", f"c{n}", "command", f"c{n}:{i}"))

    procs = [context.Process(target=child, args=(n,)) for n in range(3)]
    for proc in procs:
        proc.start()
    for i in range(200):
        logger.log_sync(AuditEvent("test", "parent", "command", f"parent:{i}"))
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    report = verify_audit_log(log_path, KEY)
    assert report.ok, report.summary()
    assert report.records == 1 + 200 + 3 * 200
