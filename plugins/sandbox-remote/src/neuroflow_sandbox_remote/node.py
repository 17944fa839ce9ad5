"""The node actor: one per node (per calling process), keeping warm runners.

``NodeAgent`` is a Ray async actor pinned to its node.  For each sandbox configuration a
caller opens it starts one :mod:`~neuroflow_sandbox_remote.runner` process (refcounted:
the last ``release`` stops it) and forwards run requests to it as opaque bytes.  A run
the caller cancels (``ray.cancel``) is cancelled in the runner too.  The actor never
unpickles anything a caller sends: requests are msgpack bytes the runner checks.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
from typing import Any

from neuroflow_sandbox_remote import frames


class _Runner:
    """The actor's handle on one runner process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.users = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.reader_task: asyncio.Task[None] | None = None

    async def read_replies(self) -> None:
        assert self.proc.stdout is not None
        try:
            while (message := await frames.read(self.proc.stdout)) is not None:
                future = self.pending.pop(message.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(message)
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_result({"error": {"type": "SandboxError",
                                                 "message": "the node's runner stopped"}})
            self.pending.clear()

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(frames.encode(message))

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        ident = message["id"]
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        self.send(message)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The caller cancelled: cancel the run and wait (briefly) for its tree to go.
            if not future.done():
                self.send({"op": "cancel", "id": ident})
                try:
                    await asyncio.wait_for(asyncio.shield(future), 10)
                except (TimeoutError, asyncio.CancelledError):
                    pass
            raise

    async def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self.reader_task is not None:
            await self.reader_task


class NodeAgent:
    """Runs sandbox requests on this node (made a Ray actor by ``ray.remote``)."""

    def __init__(self) -> None:
        self._runners: dict[str, _Runner] = {}
        self._lock: asyncio.Lock | None = None
        self._received: dict[str, int] = {}

    async def info(self) -> dict[str, Any]:
        """This node: host name, actor pid, Ray node id, runner pid and requests received
        by configuration digest."""
        import ray

        return {"hostname": socket.gethostname(), "pid": os.getpid(),
                "node_id": ray.get_runtime_context().get_node_id(),
                "runners": {digest: runner.proc.pid
                            for digest, runner in self._runners.items()},
                "received": dict(self._received)}

    async def acquire(self, backend: str, options: dict[str, Any], digest: str) -> int:
        """Start (or share) the runner for this configuration; return its pid.

        Raises ``ValueError`` when ``options`` are not what ``digest`` says (the runner
        checks again before it builds anything)."""
        from neuroflow_sandbox_remote.config import config_digest

        if config_digest(backend, options) != digest:
            raise ValueError("acquire: the options do not match their digest")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            runner = self._runners.get(digest)
            if runner is None or runner.proc.returncode is not None:
                runner = await self._start(backend, options, digest)
                self._runners[digest] = runner
            runner.users += 1
            return runner.proc.pid

    async def _start(self, backend: str, options: dict[str, Any], digest: str) -> _Runner:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "neuroflow_sandbox_remote.runner",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=frames.MAX_FRAME,
            # Its own session: a signal to the node's process group (the node being
            # killed) leaves it alive just long enough to end every run it started.
            start_new_session=True)
        runner = _Runner(proc)
        runner.send({"op": "init", "backend": backend, "options": options, "digest": digest})
        reply = await frames.read(proc.stdout)  # type: ignore[arg-type]
        if reply is None or "error" in reply:
            await runner.stop()
            error = (reply or {}).get("error") or {
                "type": "SandboxError", "message": "the runner exited while starting"}
            raise RuntimeError(f"{error['type']}: {error['message']}")
        runner.reader_task = asyncio.ensure_future(runner.read_replies())
        return runner

    async def release(self, digest: str) -> None:
        """One user of this configuration is done; the last one stops its runner."""
        runner = self._runners.get(digest)
        if runner is None:
            return
        runner.users -= 1
        if runner.users <= 0:
            del self._runners[digest]
            await runner.stop()

    async def run(self, digest: str, request: bytes) -> bytes:
        """Run one packed request in the runner for ``digest``; the packed reply."""
        from neuroflow_sandbox_remote.wire import pack

        self._received[digest] = self._received.get(digest, 0) + 1
        runner = self._runners.get(digest)
        if runner is None or runner.proc.returncode is not None:
            return pack({"error": {"type": "SandboxError", "message":
                                   "no runner for this sandbox configuration on this node"}})
        reply = await runner.call({"op": "run", "id": next(runner.ids), "req": request})
        return pack(reply)

    async def shutdown(self) -> None:
        """Stop every runner (and so every run)."""
        runners, self._runners = list(self._runners.values()), {}
        await asyncio.gather(*(runner.stop() for runner in runners), return_exceptions=True)


def installed_backends() -> list[str]:
    """The isolation backends installed on this node."""
    from neuroflow import BackendKind, get_plugin_manager

    manager = get_plugin_manager()
    return sorted(manager.backends(BackendKind.ISOLATION))
