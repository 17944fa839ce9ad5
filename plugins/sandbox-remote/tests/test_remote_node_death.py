"""A node killed mid-run: that run fails cleanly, the others finish, later runs go to the
living nodes, and nothing the dead node started is left running."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from neuroflow import create_backend


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def _with_marker(marker: str) -> list[int]:
    """Pids whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes() and not _gone(
                        int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_node_killed_mid_run(ray_cluster: Any, remote_config: Any,
                                     tmp_path: Path) -> None:
    import ray

    from neuroflow_sandbox_remote.backend import RemoteNodeError

    pgid = await anyio.to_thread.run_sync(ray_cluster.add_node)
    tmp_path.chmod(0o777)
    marker = f"nf-doomed-{uuid.uuid4().hex}"
    config = attrs.evolve(remote_config, work_dir=str(tmp_path), result_grace=5.0)
    try:
        async with create_backend("isolation", "remote", config, gate=False) as sandbox:
            await sandbox.connect()
            alive = {n.node_id for n in sandbox.nodes if n.alive}
            for _ in range(100):  # the new node registers with the head within seconds
                if len(alive) >= 3:
                    break
                await anyio.sleep(0.3)
                await sandbox.connect(refresh=True)
                alive = {n.node_id for n in sandbox.nodes if n.alive}
            assert len(alive) == 3
            # The node started last is the one to kill: its actor was created last.
            doomed = sandbox.nodes[-1]
            info = await anyio.to_thread.run_sync(
                lambda: ray.get(doomed.actor.info.remote(), timeout=30))
            runner_pid = info["runners"][sandbox.digest]

            outcomes: dict[int, Any] = {}
            ended: dict[int, float] = {}

            async def run(i: int) -> None:
                try:
                    outcomes[i] = await sandbox.execute(
                        "/bin/sh", ["-c", "echo $$ > pid-$1; sleep 10; echo finished",
                                    marker, str(i)], timeout=20)
                except RemoteNodeError as exc:
                    outcomes[i] = exc
                ended[i] = time.monotonic()

            async with anyio.create_task_group() as group:
                for i in range(3):
                    group.start_soon(run, i)
                pid_files = [tmp_path / f"pid-{i}" for i in range(3)]
                while not all(p.exists() and p.read_text().strip() for p in pid_files):
                    await anyio.sleep(0.05)
                killed_at = time.monotonic()
                ray_cluster.kill_node(pgid)

            failed = [i for i, o in outcomes.items() if isinstance(o, Exception)]
            assert len(failed) == 1, outcomes
            error = outcomes[failed[0]]
            assert doomed.node_id[:8] in str(error)
            assert ended[failed[0]] - killed_at < 20 + 5, "no answer within the run's timeout"
            for i, outcome in outcomes.items():
                if i not in failed:
                    assert outcome.ok and outcome.stdout == b"finished\n"
            assert not doomed.alive

            # Later runs go to the living nodes.
            for _ in range(4):
                result = await sandbox.execute("/bin/echo", ["after"])
                assert result.stdout == b"after\n"

            # Nothing the dead node started survives it.
            pids = [int(p.read_text()) for p in pid_files]
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (
                    all(_gone(p) for p in pids) and _gone(runner_pid)
                    and not _with_marker(marker)):
                await anyio.sleep(0.2)
            assert all(_gone(p) for p in pids), [p for p in pids if not _gone(p)]
            assert _gone(runner_pid), "the dead node's runner is still running"
            assert not _with_marker(marker)
    finally:
        ray_cluster.kill_node(pgid)
