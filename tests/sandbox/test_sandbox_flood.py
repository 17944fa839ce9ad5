"""A program that never stops writing: the wall timeout still ends it, the output kept
stays bounded, and the event loop keeps serving other tasks meanwhile."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import anyio
import pytest
from sandbox_helpers import new_marker, survivors

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, TerminationReason, cgroups

MiB = 1024 * 1024
FREEZER = "/sys/fs/cgroup/freezer"


async def _flood_with_ticker(config: SandboxConfig, argv: list[str]) -> tuple[object, int]:
    """Run ``argv`` while a 10 ms ticker runs; return the result and the ticks made."""
    ticks = 0
    result = None

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with SandboxIsolator(config) as isolator, anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        # Generous: the run itself is bounded by its own 1 s wall timeout (before the
        # deadline was checked on every pass, a flood under trio ran for about 7 s).
        with anyio.fail_after(5):
            result = await isolator.execute(argv[0], argv[1:])
        tg.cancel_scope.cancel()
    return result, ticks


@pytest.mark.anyio
async def test_endless_output_without_a_cap_still_times_out() -> None:
    marker = new_marker()
    config = SandboxConfig(max_output_bytes=None, wall_timeout=1)
    result, ticks = await _flood_with_ticker(config, ["yes", marker])
    assert result.reason is TerminationReason.TIMED_OUT
    assert "wall_time" in result.limits_hit
    # A 10 ms ticker ticks about 100 times in a second; a starved loop far fewer.
    assert ticks >= 50
    assert survivors(marker) == []


@pytest.mark.anyio
async def test_endless_output_with_the_default_cap_ends_bounded() -> None:
    marker = new_marker()
    config = SandboxConfig(wall_timeout=1)
    assert config.max_output_bytes == 16 * MiB
    result, _ = await _flood_with_ticker(config, ["yes", marker])
    assert result.reason in (TerminationReason.OUTPUT_LIMIT, TerminationReason.TIMED_OUT)
    assert result.stdout_truncated or result.reason is TerminationReason.TIMED_OUT
    assert len(result.stdout) <= 16 * MiB
    assert survivors(marker) == []


@pytest.fixture
def frozen_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A process in a frozen v1 freezer cgroup: SIGKILL cannot end it until it thaws."""
    if not os.path.isdir(FREEZER) or not os.access(FREEZER, os.W_OK):
        pytest.skip("this machine has no writable cgroup v1 freezer")
    directory = f"{FREEZER}/neuroflow-test-{os.getpid()}-{new_marker()[-8:]}"
    os.mkdir(directory)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        with open(directory + "/cgroup.procs", "w") as fh:
            fh.write(str(proc.pid))
        with open(directory + "/freezer.state", "w") as fh:
            fh.write("FROZEN")
        yield proc, directory
    finally:
        with open(directory + "/freezer.state", "w") as fh:
            fh.write("THAWED")
        proc.kill()
        proc.wait()
        os.rmdir(directory)


@pytest.mark.anyio
async def test_killing_a_run_cgroup_that_will_not_empty_does_not_block_the_loop(
    frozen_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    pool = cgroups.pool()
    if pool is None:
        pytest.skip("this machine has no usable cgroup for a run")
    proc, _ = frozen_process
    group = pool.acquire(None, None)
    for directory in group.dirs.values():
        with open(directory + "/cgroup.procs", "w") as fh:
            fh.write(str(proc.pid))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await anyio.sleep(0)
            before = ticks
            emptied = await group.kill_all_async(deadline=0.5)
            during = ticks - before
            tg.cancel_scope.cancel()
    finally:
        with open(frozen_process[1] + "/freezer.state", "w") as fh:
            fh.write("THAWED")
        proc.kill()
        proc.wait()
        pool.release(group)
    assert emptied is False
    # A blocking wait would let the ticker run 0 times; about 50 is expected.
    assert during >= 5
