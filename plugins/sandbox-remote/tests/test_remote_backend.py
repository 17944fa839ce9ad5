"""What is special about ``remote``: the caller's gate, data-only requests checked on the
node, token authentication, trace context, cancellation and the in-flight bound."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from remote_session import NODE_SPANS

from neuroflow import create_backend
from neuroflow.errors import ConfigError, SandboxError, SecurityError
from neuroflow.security import Verdict

pytestmark = pytest.mark.anyio


class _Gate:
    """An ActionGate that records what it is asked and denies commands named ``deny``."""

    def __init__(self, deny: str = "") -> None:
        self.deny = deny
        self.asked: list[str] = []
        self.outcomes: list[str] = []

    async def authorize(self, action: Any, context: Any) -> Verdict:
        self.asked.append(action.target)
        if action.target == self.deny:
            raise SecurityError(f"denied: {action.target}")
        return Verdict.allow("test")

    async def record_outcome(self, action: Any, context: Any, outcome: str,
                             details: Any = None) -> None:
        self.outcomes.append(outcome)


def _received(sandbox: Any) -> int:
    """Requests the nodes' actors received for this backend's configuration."""
    import ray

    inner = sandbox.backend
    infos = ray.get([node.actor.info.remote() for node in inner.nodes if node.alive])
    return sum(info["received"].get(inner.digest, 0) for info in infos)


async def test_a_denied_command_never_reaches_the_cluster(remote_config: Any) -> None:
    gate = _Gate(deny="touch")
    async with create_backend("isolation", "remote", remote_config, gate=gate) as sandbox:
        await sandbox.backend.connect()
        assert len(sandbox.backend.nodes) >= 2
        before = await anyio.to_thread.run_sync(_received, sandbox)
        with pytest.raises(SecurityError):
            await sandbox.execute("touch", ["/tmp/should-not-exist"])
        assert await anyio.to_thread.run_sync(_received, sandbox) == before
        result = await sandbox.execute("/bin/echo", ["allowed"])
        assert result.stdout == b"allowed\n"
        assert await anyio.to_thread.run_sync(_received, sandbox) == before + 1
    assert gate.asked == ["touch", "/bin/echo"]
    assert gate.outcomes == ["success"]


async def test_a_node_refuses_a_request_judged_under_another_configuration(
        remote_config: Any) -> None:
    """A request whose digest is not the configuration the node runs is refused before
    anything runs, even when sent straight to the node's actor."""
    from neuroflow_sandbox_remote import wire

    marker = Path(f"/tmp/nf-forged-{uuid.uuid4().hex}")
    async with create_backend("isolation", "remote", remote_config, gate=False) as sandbox:
        await sandbox.connect()
        node = sandbox.nodes[0]
        forged = wire.request("0" * 64, "/bin/touch", [str(marker)], None, None, 5.0, {})

        def send(digest: str, payload: bytes) -> Any:
            import ray

            return wire.unpack(ray.get(node.actor.run.remote(digest, payload), timeout=60))

        reply = await anyio.to_thread.run_sync(send, sandbox.digest, forged)
        assert reply["error"]["type"] == "PermissionError"
        assert "another sandbox configuration" in reply["error"]["message"]
        # A pickle instead of a msgpack request is not unpickled: the runner rejects it.
        import pickle

        reply = await anyio.to_thread.run_sync(
            send, sandbox.digest, pickle.dumps({"command": "/bin/touch", "args": [str(marker)]}))
        assert "error" in reply
    assert not marker.exists()


async def test_a_node_refuses_options_that_do_not_match_their_digest(ray_cluster: Any,
                                                                      remote_config: Any) -> None:
    import ray

    async with create_backend("isolation", "remote", remote_config, gate=False) as sandbox:
        await sandbox.connect()
        node = sandbox.nodes[0]
        # Limits loosened after the digest was taken: the node refuses to start a runner.
        ref = node.actor.acquire.remote("process", {"cpu_time_limit": 100000.0}, sandbox.digest)
        with pytest.raises(ray.exceptions.RayTaskError, match="do not match their digest"):
            await anyio.to_thread.run_sync(lambda: ray.get(ref, timeout=60))


async def test_the_cluster_checks_tokens(ray_cluster: Any) -> None:
    from neuroflow_sandbox_remote.auth import probe

    assert probe(ray_cluster.address, None) == "unauthenticated"
    assert probe(ray_cluster.address, "not-the-token") == "unauthenticated"
    assert probe(ray_cluster.address, ray_cluster.token_file.read_text().strip()) == "ok"


async def test_a_cluster_without_token_authentication_is_refused(
        fake_gcs: tuple[str, list[int]]) -> None:
    address, calls = fake_gcs
    async with create_backend("isolation", "remote", {"address": address},
                              gate=False) as sandbox:
        with pytest.raises(SecurityError, match="without token authentication"):
            await sandbox.execute("/bin/true")
    assert calls  # it was asked, and then not joined
    assert not sandbox.nodes


async def test_an_unreachable_cluster_is_a_clear_error() -> None:
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{free.getsockname()[1]}"
    async with create_backend("isolation", "remote", {"address": address},
                              gate=False) as sandbox:
        with pytest.raises(SandboxError, match="cannot be reached"):
            await sandbox.execute("/bin/true")


async def test_a_wrong_token_is_refused(ray_cluster: Any, tmp_path: Path) -> None:
    wrong = tmp_path / "token"
    wrong.write_text("0123456789abcdef")
    options = {"address": ray_cluster.address, "auth_token_file": str(wrong)}
    async with create_backend("isolation", "remote", options, gate=False) as sandbox:
        with pytest.raises(SecurityError, match="refuses the token"):
            await sandbox.execute("/bin/true")


def test_bad_options_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"sandbox\.remote\.address"):
        create_backend("isolation", "remote", {"address": "nowhere"}, gate=False)
    with pytest.raises(ConfigError, match=r"sandbox\.remote\.max_in_flight"):
        create_backend("isolation", "remote", {"max_in_flight": 0}, gate=False)
    with pytest.raises(ConfigError, match=r"sandbox\.remote\.node_backend"):
        create_backend("isolation", "remote", {"node_backend": "remote"}, gate=False)


async def test_remote_spans_join_the_callers_trace(remote_config: Any) -> None:
    from neuroflow.observability import TracingService, current_trace_id

    tracing = TracingService("remote-test", backend="local")
    await tracing.start()
    command = f"/bin/echo trace-{uuid.uuid4().hex}"
    try:
        with tracing.span("caller"):
            trace_id = current_trace_id()
            async with create_backend("isolation", "remote", remote_config,
                                      gate=False) as sandbox:
                result = await sandbox.execute("/bin/echo", [command.split()[1]])
    finally:
        await tracing.stop()
    assert result.ok
    from neuroflow.observability import read_spans

    # The runner flushes its spans when it stops (the backend's aclose stops it).
    deadline = time.monotonic() + 20
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not mine:
        if NODE_SPANS.exists():
            mine = [s for s in read_spans(NODE_SPANS)
                    if s["name"] == "remote_execute /bin/echo" and s["trace_id"] == trace_id]
        await anyio.sleep(0.2)
    assert trace_id is not None
    assert len(mine) == 1, "the node's span is not in the caller's trace"
    assert mine[0]["parent_span_id"] is not None
    assert mine[0]["service"] == "neuroflow-sandbox-node"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


async def test_cancelling_a_run_ends_it_on_the_node(remote_config: Any, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    pid_file = tmp_path / "pid"
    config = attrs.evolve(remote_config, work_dir=str(tmp_path))
    async with create_backend("isolation", "remote", config, gate=False) as sandbox:
        await sandbox.connect()
        started = time.monotonic()
        with anyio.move_on_after(60):  # bounds the test if cancellation never arrives
            async with anyio.create_task_group() as group:
                group.start_soon(sandbox.execute, "/bin/sh",
                                 ["-c", "echo $$ > pid; sleep 30; echo survived > after"])
                while not pid_file.exists() or not pid_file.read_text().strip():
                    await anyio.sleep(0.05)
                group.cancel_scope.cancel()
        assert time.monotonic() - started < 30
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _gone(pid):
            await anyio.sleep(0.1)
        assert _gone(pid), "the cancelled run is still running on its node"
        # The node keeps serving.
        assert (await sandbox.execute("/bin/echo", ["next"])).stdout == b"next\n"
    assert not (tmp_path / "after").exists()


async def test_runs_in_flight_per_node_are_bounded(remote_config: Any) -> None:
    config = attrs.evolve(remote_config, max_in_flight=2)
    async with create_backend("isolation", "remote", config, gate=False) as sandbox:
        await sandbox.connect()
        nodes = len([n for n in sandbox.nodes if n.alive])
        spans: list[tuple[float, float]] = []
        most = 0

        async def one() -> None:
            nonlocal most
            result = await sandbox.execute(
                "/bin/sh", ["-c", "date +%s.%N; sleep 1; date +%s.%N"])
            start, end = (float(x) for x in result.stdout.split())
            spans.append((start, end))
            most = max(most, max(n.in_flight for n in sandbox.nodes))

        async with anyio.create_task_group() as group:
            for _ in range(4 * nodes):
                group.start_soon(one)
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert len(spans) == 4 * nodes
    assert overlap <= 2 * nodes
    assert most <= 2
