"""``spawn`` in the ``process`` backend, beyond the conformance suite: the run's uid and
cgroup, argument errors, a dropped handle, and the refusal for backends without it."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import pytest

from neuroflow import create_backend
from neuroflow.errors import SandboxError, UnsupportedOperationError
from neuroflow.sandbox import GuardedBackend, SandboxConfig, SandboxIsolator, spawn
from neuroflow.testing.isolation import RecordingGate

pytestmark = pytest.mark.anyio


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


async def test_a_spawned_process_runs_as_the_run_s_uid_in_the_run_s_cgroup() -> None:
    async with create_backend("isolation", "process", gate=False) as sandbox:
        async with await spawn(sandbox, "/bin/sh", ["-c", "id -u; cat"]) as process:
            uid = int((await process.stdout.receive()).split()[0])
            inside = Path(f"/proc/{process.pid}/cgroup").read_text()
            ours = Path("/proc/self/cgroup").read_text()
            await process.stdin.aclose()
            result = await process.wait()
    if os.geteuid() == 0:
        assert uid != 0, "a root host must drop the spawned process to a dedicated uid"
    from neuroflow.sandbox.cgroups import pool

    if pool() is not None:
        assert inside != ours, "the spawned process is not in a run cgroup of its own"
    assert result.ok and result.cpu_time_ms >= 0 and result.stdout == b""


async def test_bad_arguments_are_named_and_nothing_starts(tmp_path: Path) -> None:
    gate = RecordingGate()
    async with SandboxIsolator(SandboxConfig(work_dir=str(tmp_path)), gate=gate) as sandbox:
        with pytest.raises(SandboxError, match=r"args\[1\]: expected a string"):
            await sandbox.spawn("/bin/echo", ["a", 3])
        with pytest.raises(SandboxError, match="timeout: expected a positive number"):
            await sandbox.spawn("/bin/echo", timeout=-1)
        with pytest.raises(SandboxError, match="not found"):
            await sandbox.spawn("neuroflow-no-such-program")
    assert [outcome for _, outcome, _ in gate.outcomes] == ["error"]  # the missing program
    with pytest.raises(SandboxError, match="closed"):
        await sandbox.spawn("/bin/echo")


async def test_a_handle_dropped_without_aclose_takes_its_process_with_it() -> None:
    async with SandboxIsolator(gate=False) as sandbox:
        process = await sandbox.spawn("/bin/sleep", ["60"])
        pid = process.pid
        assert state(pid) in ("S", "R")
        del process
        gc.collect()
        deadline = time.monotonic() + 5
        while state(pid) in ("S", "R") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert state(pid) in ("Z", "gone"), "a dropped handle left its process running"


async def test_a_backend_without_spawn_is_refused_before_the_gate_is_asked() -> None:
    class Batch:
        async def execute(self, command, args=(), *, stdin=None, env=None, timeout=None):
            raise AssertionError("not used")

        async def aclose(self) -> None:
            pass

    with pytest.raises(UnsupportedOperationError, match="Batch cannot start a long-running"):
        await spawn(Batch(), "/bin/cat")
    gate = RecordingGate()
    with pytest.raises(UnsupportedOperationError, match="no spawn"):
        await spawn(GuardedBackend(Batch(), gate), "/bin/cat")
    assert gate.authorized == []
