"""Shared helpers for the sandbox tests: survivor scans."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def new_marker() -> str:
    """A unique string to put in a test program's argv, to find its processes later."""
    return f"nf-sandbox-marker-{uuid.uuid4().hex}"


def processes_with(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != b"Z":
            found.append(int(entry))
    return found


def survivors(marker: str, settle: float = 0.2) -> list[int]:
    """Processes with ``marker`` still alive after a short settling time."""
    deadline = time.monotonic() + settle
    alive = processes_with(marker)
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = processes_with(marker)
    return alive


@contextmanager
def reachable_directory() -> Iterator[Path]:
    """A fresh directory in the system temporary directory, searchable by every uid.

    pytest's ``tmp_path`` sits under a ``0700`` directory: a sandbox that drops root to
    an unprivileged uid can work inside it, but not reach it by its absolute path.
    """
    path = Path(tempfile.mkdtemp(prefix="nf-sandbox-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
