"""A run that leaves a great many files behind -- in its work directory or in /tmp -- must
not stall the host's event loop while they are given back and removed: those walks run
in a worker thread (small ones stay on the loop)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import anyio
import pytest
from sandbox_helpers import new_marker

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, cgroups, runas

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the host is not root here: nothing to hand over"),
    pytest.mark.skipif(not cgroups.support().usable,
                       reason="this machine has no usable pids/memory cgroup"),
]

MANY = ("import os, sys\n"
        "d = sys.argv[1]\n"
        "os.makedirs(d, exist_ok=True)\n"
        "for i in range(3000):\n"
        "    open(os.path.join(d, str(i)), 'w').close()\n"
        "print('ok')\n")


def _record_threads(monkeypatch: pytest.MonkeyPatch, name: str,
                    results: list[object] | None = None) -> list[bool]:
    """Record, for each call of runas.<name>, whether it ran on the event loop's thread
    (and, with ``results``, what it returned)."""
    loop_thread = threading.get_ident()
    on_loop: list[bool] = []
    real = getattr(runas, name)

    def recorded(*args, **kwargs):
        on_loop.append(threading.get_ident() == loop_thread)
        result = real(*args, **kwargs)
        if results is not None:
            results.append(result)
        return result

    monkeypatch.setattr(runas, name, recorded)
    return on_loop


def test_a_large_work_dir_is_handed_over_and_back_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "ws"
    on_loop = _record_threads(monkeypatch, "chown_tree")
    bounded: list[object] = []
    bounded_on_loop = _record_threads(monkeypatch, "chown_small_tree", bounded)

    async def go() -> tuple[bytes, bytes]:
        async with SandboxIsolator(SandboxConfig(work_dir=str(work), wall_timeout=60),
                                   gate=False) as box:
            first = await box.execute("python3", ["-I", "-S", "-c", MANY, "many"])
            second = await box.execute("python3", ["-I", "-S", "-c", "print('ok')"])
            return first.stdout, second.stdout

    assert anyio.run(go) == (b"ok\n", b"ok\n")
    # Each hand-over and give-back first reads a bounded part of the tree on the loop:
    # run 1's hand-over (an empty directory) is done there; the other three find more
    # than it may walk there and leave the directory as it was ...
    assert bounded_on_loop == [True] * 4
    assert bounded == [True, False, False, False]
    # ... and walk the 3000 files off the loop: run 1's give-back, run 2's both.
    assert on_loop == [False, False, False]
    assert all(p.stat().st_uid == 0 for p in (work / "many").iterdir())


def test_a_run_that_fills_tmp_is_cleaned_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    target = f"/tmp/{new_marker()}"
    on_loop = _record_threads(monkeypatch, "remove_trees")
    try:
        async def go() -> bytes:
            async with SandboxIsolator(SandboxConfig(wall_timeout=60), gate=False) as box:
                return (await box.execute("python3", ["-I", "-S", "-c", MANY, target])).stdout

        assert anyio.run(go) == b"ok\n"
        assert not os.path.exists(target)
        assert on_loop and not any(on_loop)
    finally:
        shutil.rmtree(target, ignore_errors=True)
