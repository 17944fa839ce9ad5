"""The node side: one process per sandbox configuration, holding the warm local backend.

The node actor starts it (``python -m neuroflow_sandbox_remote.runner``) and talks to it
over stdin/stdout in :mod:`~neuroflow_sandbox_remote.frames`.  The first message names the
backend, its options and their digest; the runner recomputes the digest, refuses a
mismatch, and builds the backend by name through ``neuroflow.create_backend`` with no gate
(the caller's gate judged each command before it was sent).  Then each ``run`` message is
checked (format, digest) and executed under the caller's trace context; ``cancel`` ends a
run.  When its stdin closes -- the actor stopped or died with its node -- the runner
cancels every run (the local backend kills each run's process tree), closes the backend
and exits, so nothing it started outlives it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from neuroflow_sandbox_remote import frames
from neuroflow_sandbox_remote.config import config_digest
from neuroflow_sandbox_remote.wire import (
    check_request,
    error_data,
    result_data,
    unpack,
)


class Runner:
    """Executes the requests of one node actor in one warm backend."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._backend: Any = None
        self._digest = ""
        self._runs: dict[int, asyncio.Task[None]] = {}

    def _send(self, message: dict[str, Any]) -> None:
        self._writer.write(frames.encode(message))

    async def start(self, message: dict[str, Any]) -> None:
        """Build the backend the ``init`` message names, after checking its digest."""
        from neuroflow import create_backend

        backend, options = message.get("backend"), message.get("options")
        if not isinstance(backend, str) or not isinstance(options, dict):
            raise ValueError("init: expected a backend name and a table of options")
        digest = config_digest(backend, options)
        if digest != message.get("digest"):
            raise ValueError("init: the options do not match their digest")
        self._backend = create_backend("isolation", backend, options, gate=False)
        self._digest = digest

    async def _run(self, ident: int, raw: bytes) -> None:
        from neuroflow.observability import attach_context, operation

        try:
            request = check_request(unpack(raw))
            if request["digest"] != self._digest:
                raise PermissionError(
                    "the request was judged under another sandbox configuration "
                    f"(digest {request['digest'][:12]}, this node runs {self._digest[:12]})")
            command = request["command"]
            with attach_context(request["trace"]), operation(
                    f"remote_execute {command}", "sandbox", "remote_execute",
                    {"neuroflow.sandbox.command": command,
                     "neuroflow.sandbox.digest": self._digest}) as op:
                result = await self._backend.execute(
                    command, request["args"], stdin=request["stdin"], env=request["env"],
                    timeout=request["timeout"])
                if op.recording:
                    op.set("neuroflow.sandbox.reason", result.reason.value)
            self._send({"id": ident, "result": result_data(result)})
        except asyncio.CancelledError:
            self._send({"id": ident, "cancelled": True})
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the caller by class name
            self._send({"id": ident, "error": error_data(exc)})
        finally:
            self._runs.pop(ident, None)

    def dispatch(self, message: dict[str, Any]) -> None:
        """Start a run or cancel one."""
        op, ident = message.get("op"), message.get("id")
        if op == "run" and isinstance(ident, int) and isinstance(message.get("req"), bytes):
            self._runs[ident] = asyncio.ensure_future(self._run(ident, message["req"]))
        elif op == "cancel" and ident in self._runs:
            self._runs[ident].cancel()

    async def stop(self) -> None:
        """Cancel every run, wait for their process trees to go, close the backend."""
        runs = list(self._runs.values())
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        if self._backend is not None:
            await self._backend.aclose()


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the init message, then serve runs until the input closes."""
    from neuroflow.observability import TracingService

    tracing = TracingService("neuroflow-sandbox-node")
    await tracing.start()
    runner = Runner(writer)
    try:
        first = await frames.read(reader)
        if first is None:
            return
        try:
            await runner.start(first)
        except Exception as exc:  # noqa: BLE001 - reported to the node actor
            writer.write(frames.encode({"id": 0, "error": error_data(exc)}))
            await writer.drain()
            return
        writer.write(frames.encode({"id": 0, "ok": True, "pid": os.getpid()}))
        while (message := await frames.read(reader)) is not None:
            runner.dispatch(message)
    finally:
        await runner.stop()
        await tracing.stop()
        try:
            await writer.drain()
        except (ConnectionError, BrokenPipeError):
            pass


async def _main() -> None:
    loop = asyncio.get_running_loop()
    # Frames go to a private copy of stdout; anything printed goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    reader = asyncio.StreamReader(limit=frames.MAX_FRAME)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    await serve(reader, writer)


if __name__ == "__main__":
    asyncio.run(_main())
