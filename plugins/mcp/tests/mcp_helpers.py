"""Helpers for the MCP client tests: the tiny test server, and /proc to check that no
process is left behind.  (A module of its own: test modules import it by name, which a
``conftest`` cannot be when several test trees run together.)"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio

TINY = str(Path(__file__).with_name("tiny_server.py"))


def tiny(name: str = "tiny", **fields: object) -> dict[str, object]:
    """The fields of a server running ``tiny_server.py`` with this interpreter."""
    return {"name": name, "command": sys.executable, "args": [TINY], **fields}


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" not in state.split()[1]


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and alive(int(entry.name)):
            members.append(int(entry.name))
    return members


def kill_group(pgid: int) -> None:
    """SIGKILL a process group (the way a crash or the OOM killer ends a server)."""
    os.killpg(pgid, signal.SIGKILL)


async def eventually(check, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``check()`` until it is true; fail naming ``what`` after ``timeout``."""
    with anyio.move_on_after(timeout):
        while not check():
            await anyio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")
