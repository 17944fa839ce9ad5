"""A stdio transport that owns its server's whole process group.

Like the SDK's ``stdio_client``, but the server starts in a session of its own and the
transport knows its process id, so stopping it kills the whole group -- including the
grandchild ``npx`` or ``uvx`` starts -- and the client can notice at once when the server
process dies.  Lines on stdout that are not JSON-RPC reach the session as exceptions
(reported, not fatal); the last lines of stderr are kept for error messages.

Given an isolation backend (``sandbox=``), the server is started by the backend's
``spawn`` instead (:func:`neuroflow.sandbox.spawn`): it then runs under that sandbox's
limits, uid and guards, and its whole tree is the sandbox run's, ended by the sandbox.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from mcp.shared.message import SessionMessage


class ServerProcess:
    """The running server: its process, group and the tail of its stderr."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.pid = process.pid
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self.exited = anyio.Event()

    @property
    def returncode(self) -> int | None:
        """The exit status once the server ended."""
        return self.process.returncode

    def describe_exit(self) -> str:
        """``"exited with code 1: <last stderr line>"``."""
        code = self.returncode
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exited with code {code}")
        tail = [line for line in self.stderr_tail if line.strip()]
        return f"server process {how}" + (f": {tail[-1].strip()}" if tail else "")

    def terminate_group(self) -> None:
        """SIGTERM the server's process group."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)

    def kill_group(self) -> None:
        """SIGKILL every process left in the server's group (safe to call twice)."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    async def wait(self) -> None:
        """Wait until the server process exited."""
        await self.process.wait()

    async def wait_group_gone(self, timeout: float = 2.0) -> bool:
        """Wait until no live process is left in the server's group; whether none is."""
        with anyio.move_on_after(timeout):
            while group_alive(self.pid):
                await anyio.sleep(0.01)
            return True
        return False


class SandboxedServerProcess(ServerProcess):
    """A server an isolation backend spawned: its process tree is the sandbox run's, so
    the sandbox signals it (its run cgroup, not only the process group) and says how it
    ended (``memory_limit``, ``cpu_limit``...)."""

    def __init__(self, process: Any) -> None:
        super().__init__(process)
        self.result: Any = None

    def describe_exit(self) -> str:
        """Like :meth:`ServerProcess.describe_exit`, naming the sandbox's limit when one
        ended the server."""
        text = super().describe_exit()
        reason = getattr(getattr(self.result, "reason", None), "value", None)
        if reason not in (None, "exited", "signalled"):
            text = text.replace("server process ", f"server process ended by the sandbox "
                                f"({reason}), ", 1)
        return text

    def terminate_group(self) -> None:
        """SIGTERM the server (the sandbox's ``terminate``)."""
        self.process.terminate()

    def kill_group(self) -> None:
        """SIGKILL everything of the sandbox run (safe in ``atexit``)."""
        self.process.kill()

    async def wait(self) -> None:
        """Wait until the server ended and the sandbox reported how."""
        self.result = await self.process.wait()

    async def wait_group_gone(self, timeout: float = 2.0) -> bool:
        """Close the sandbox's process: it kills and waits for the whole tree."""
        with anyio.move_on_after(max(timeout, 10.0)):
            await self.process.aclose()
            return True
        return False


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of group ``pgid`` exists (read from /proc)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            return True
    return False


@asynccontextmanager
async def stdio_transport(command: str, args: list[str], *, env: dict[str, str],
                          cwd: str | None, grace: float, started: Any = None,
                          sandbox: Any = None
                          ) -> AsyncIterator[tuple[Any, Any, ServerProcess]]:
    """Start ``command`` in its own session (or, given ``sandbox``, with that isolation
    backend's ``spawn``, in its work directory with ``env`` added to its environment);
    yield ``(read_stream, write_stream, process)``.

    On exit: stdin is closed, the server gets ``grace`` seconds to leave, then its whole
    process group gets SIGTERM and, shortly after, SIGKILL.
    """
    server: ServerProcess
    if sandbox is None:
        process = await anyio.open_process([command, *args], env=env, cwd=cwd,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, start_new_session=True)
        server = ServerProcess(process)
    else:
        from neuroflow.sandbox import spawn

        process = await spawn(sandbox, command, args, env=env)
        server = SandboxedServerProcess(process)
    if started is not None:
        started(server)
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](16)

    async def stdout_reader() -> None:
        assert process.stdout is not None
        buffer = ""
        try:
            async with read_writer:
                async for chunk in TextReceiveStream(process.stdout, errors="replace"):
                    lines = (buffer + chunk).split("\n")
                    buffer = lines.pop()
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            message: SessionMessage | Exception = SessionMessage(
                                types.jsonrpc_message_adapter.validate_json(line, by_name=False))
                        except ValueError as exc:
                            message = ValueError(f"not a JSON-RPC message on stdout: "
                                                 f"{line[:200]!r} ({type(exc).__name__})")
                        await read_writer.send(message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass

    async def stderr_reader() -> None:
        assert process.stderr is not None
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for chunk in TextReceiveStream(process.stderr, errors="replace"):
                server.stderr_tail.extend(chunk.splitlines())

    async def stdin_writer() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send((data + "\n").encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_writer.aclose()

    async def waiter() -> None:
        await server.wait()
        server.exited.set()

    guardian: _Guardian | None = None
    try:
        guardian = await _Guardian.start(server.pid)
        async with anyio.create_task_group() as tg:
            tg.start_soon(stdout_reader)
            tg.start_soon(stderr_reader)
            tg.start_soon(stdin_writer)
            tg.start_soon(waiter)
            try:
                yield read_stream, write_stream, server
            finally:
                with anyio.CancelScope(shield=True):
                    await _stop(server, grace)
                tg.cancel_scope.cancel()
    finally:
        server.kill_group()  # whatever happened above, nothing of the group survives
        with anyio.CancelScope(shield=True):
            await server.wait_group_gone()
            if guardian is not None:
                await guardian.dismiss()
            for stream in (read_stream, write_stream, read_writer, write_reader):
                await stream.aclose()


class _Guardian:
    """Kills a server's process group if this process dies without stopping it.

    A server exits when its stdin closes with us, but what it started below itself (the
    ``node`` that ``npx`` runs, a worker) need not read that stdin.  So each server gets
    a guardian: a ``/bin/sh`` in a session of its own, blocked reading a pipe only we
    hold.  If we die (even by SIGKILL), the pipe closes, the read returns and the shell
    SIGKILLs the server's whole process group.  On a normal stop we kill the guardian
    first, so it never acts.
    """

    _SCRIPT = 'read _ignored; kill -9 -"$1" 2>/dev/null'

    def __init__(self, process: Process | None, pipe: int) -> None:
        self.process = process
        self.pipe = pipe

    @classmethod
    async def start(cls, pgid: int) -> _Guardian:
        """A guardian for process group ``pgid`` (inert where ``/bin/sh`` is missing)."""
        read_end, write_end = os.pipe()  # not inherited by anything we start later
        try:
            process = await anyio.open_process(
                ["/bin/sh", "-c", cls._SCRIPT, "guardian", str(pgid)], stdin=read_end,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            process = None
        finally:
            os.close(read_end)
        return cls(process, write_end)

    async def dismiss(self) -> None:
        """Stop the guardian without letting it act, and reap it."""
        if self.process is not None:
            with suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
            self.process = None
        if self.pipe >= 0:
            os.close(self.pipe)
            self.pipe = -1


async def _stop(server: ServerProcess, grace: float) -> None:
    process = server.process
    if process.stdin is not None:
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdin.aclose()
    with anyio.move_on_after(grace):
        await server.exited.wait()
    if server.returncode is None:
        server.terminate_group()
        with anyio.move_on_after(1.0):
            await server.exited.wait()
    # The leader may be gone while a grandchild (npx -> node) still holds the group.
    server.kill_group()
    if server.returncode is None:
        with anyio.move_on_after(1.0):
            await server.exited.wait()
