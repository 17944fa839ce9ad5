"""Whole-tree kill with a real tree of processes, under asyncio and trio.

The sandboxed program starts a child, which starts a grandchild (both in the program's
process group), and double-forks an escapee that calls ``setsid()`` so it leaves the
process group and is re-parented away from the program.  Every one of them writes its pid
(and its kernel start time, so a reused pid is not mistaken for it) to a file, then sleeps.
However the run ends - the program exits, the wall timeout fires, or the caller cancels
``execute()`` - none of them may be left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, TerminationReason, cgroups

pytestmark = pytest.mark.skipif(
    not cgroups.support().usable,
    reason="this machine has no usable pids/memory cgroup (see `neuroflow doctor`)",
)

#: The members of the tree, each writing ``<dir>/<name>.pid``.
MEMBERS = ("main", "child", "grandchild", "escapee")

# argv: <dir> <role> <mode>.  Roles: "main" (the sandboxed program), "child",
# "grandchild", "escapee".  Mode (for main): "exit" ends once the tree is complete,
# "sleep" sleeps until killed.
TREE = r"""
import os, subprocess, sys, time

folder, role = sys.argv[1], sys.argv[2]
SELF = "CODE = " + repr(CODE) + "\n" + CODE


def note(name):
    with open(f"/proc/{os.getpid()}/stat") as fh:
        start = fh.read().rsplit(")", 1)[1].split()[19]
    tmp = os.path.join(folder, name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(f"{os.getpid()} {start}")
    os.rename(tmp, os.path.join(folder, name + ".pid"))


def spawn(name):
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", SELF, folder, name])


if role == "grandchild" or role == "escapee":
    note(role)
    while True:
        time.sleep(1000)
elif role == "child":
    spawn("grandchild")
    note("child")
    while True:
        time.sleep(1000)
else:
    spawn("child")
    middle = os.fork()
    if middle == 0:
        os.setsid()  # leave the process group ...
        if os.fork() == 0:  # ... and the parent: re-parented to init or a subreaper
            os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", SELF, folder,
                                      "escapee"])
        os._exit(0)
    os.waitpid(middle, 0)
    wanted = [os.path.join(folder, n + ".pid") for n in ("child", "grandchild", "escapee")]
    deadline = time.monotonic() + 60
    while not all(os.path.exists(p) for p in wanted):
        if time.monotonic() > deadline:
            sys.exit("the tree did not start within 60 s")
        time.sleep(0.01)
    note("main")
    print("tree complete", flush=True)
    if sys.argv[3] == "sleep":
        while True:
            time.sleep(1000)
"""

#: The program as run: it passes its own source on to the processes it starts.
PROGRAM = "CODE = " + repr(TREE) + "\n" + TREE


def argv(mode: str) -> list[str]:
    """Arguments of ``python3`` running the tree program, pid files going to its working
    directory (the sandbox runs ``python3`` by name: it resolves one the run may execute)."""
    return ["-I", "-S", "-c", PROGRAM, ".", "main", mode]


def recorded(folder: Path) -> dict[str, tuple[int, str]]:
    """The members that wrote their pid file: name -> (pid, start time)."""
    found = {}
    for name in MEMBERS:
        try:
            pid, start = (folder / f"{name}.pid").read_text().split()
        except FileNotFoundError:
            continue
        found[name] = (int(pid), start)
    return found


def running(pid: int, start: str) -> bool:
    """Whether the process ``pid`` that started at ``start`` still runs (zombies do not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[19] == start and fields[0] not in ("Z", "X")


def still_running(members: dict[str, tuple[int, str]]) -> list[str]:
    """Members still running after a bounded wait (a SIGKILL lands within it)."""
    deadline = time.monotonic() + 10.0
    alive = [name for name, (pid, start) in members.items() if running(pid, start)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [name for name, (pid, start) in members.items() if running(pid, start)]
    return alive


async def wait_for_tree(folder: Path) -> None:
    """Return once every member wrote its pid file (bounded: fail after 60 s)."""
    with anyio.fail_after(60):
        while len(recorded(folder)) < len(MEMBERS):
            await anyio.sleep(0.01)


@pytest.fixture
def folder() -> Iterator[Path]:
    """The sandbox's work directory, where the tree writes its pid files: under the system
    temporary directory, reachable by the unprivileged uid a sandbox on a root host may
    run the tree as (pytest's ``tmp_path`` is closed to it); a work directory is kept
    after the run, unlike what that uid leaves elsewhere in /tmp.  Any member still
    running at the end is killed, so a failing test leaves nothing behind."""
    path = Path(tempfile.mkdtemp(prefix="nf-sandbox-tree-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for pid, start in recorded(path).values():
            if running(pid, start):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


def isolator(folder: Path) -> SandboxIsolator:
    """A process sandbox working in ``folder``, default limits, no gate (the tree is what
    is tested)."""
    return SandboxIsolator(SandboxConfig(wall_timeout=120, work_dir=str(folder)), gate=False)


def test_the_tree_program_leaves_processes_behind_without_a_sandbox(folder: Path) -> None:
    """The tree really escapes a plain process-group kill: the other tests mean something."""
    proc = subprocess.Popen([sys.executable, *argv("exit")], cwd=folder,
                            start_new_session=True)
    assert proc.wait(timeout=60) == 0
    members = recorded(folder)
    assert set(members) == set(MEMBERS)
    os.killpg(proc.pid, signal.SIGKILL)  # the program's own group: child, grandchild
    assert still_running({name: members[name] for name in ("child", "grandchild")}) == []
    assert running(*members["escapee"])


@pytest.mark.anyio
async def test_no_process_of_the_tree_survives_a_normal_exit(folder: Path) -> None:
    async with isolator(folder) as sandbox:
        result = await sandbox.execute("python3", argv("exit"))
    assert result.reason is TerminationReason.EXITED, result
    assert result.exit_code == 0
    assert result.stdout == b"tree complete\n"
    members = recorded(folder)
    assert set(members) == set(MEMBERS)
    assert still_running(members) == []


@pytest.mark.anyio
async def test_no_process_of_the_tree_survives_the_wall_timeout(folder: Path) -> None:
    async with isolator(folder) as sandbox:
        result = await sandbox.execute("python3", argv("sleep"), timeout=8.0)
    assert result.reason is TerminationReason.TIMED_OUT, result
    members = recorded(folder)
    assert set(members) == set(MEMBERS), "the tree was not complete within the 8 s timeout"
    assert still_running(members) == []


async def _run_until_cancelled(folder: Path, cancel_by_deadline: bool) -> None:
    """Start the tree in ``execute()``, cancel that call from outside once it is complete."""
    outcome: list[object] = []
    async with isolator(folder) as sandbox:

        async def run() -> None:
            outcome.append(await sandbox.execute("python3", argv("sleep")))

        with anyio.move_on_after(600) as scope:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run)
                await wait_for_tree(folder)
                if cancel_by_deadline:
                    scope.deadline = anyio.current_time()  # the move_on_after expires now
                    await anyio.sleep_forever()
                else:
                    scope.cancel()
        assert scope.cancelled_caught
        assert outcome == []  # execute() did not return: it was cancelled
        # the isolator is usable after a cancelled run
        again = await sandbox.execute("python3", ["-I", "-S", "-c", "print(2)"])
        assert again.stdout == b"2\n"
    members = recorded(folder)
    assert set(members) == set(MEMBERS)
    assert still_running(members) == []


@pytest.mark.anyio
async def test_no_process_of_the_tree_survives_a_cancelled_execute(folder: Path) -> None:
    await _run_until_cancelled(folder, cancel_by_deadline=False)


@pytest.mark.anyio
async def test_no_process_of_the_tree_survives_an_expired_move_on_after(folder: Path) -> None:
    await _run_until_cancelled(folder, cancel_by_deadline=True)
