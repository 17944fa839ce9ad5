"""Long-running sandboxed processes: what ``spawn`` hands back.

* :class:`FdReceiveStream` / :class:`FdSendStream`: anyio byte streams over the pipe
  descriptors a backend made (they work under asyncio and trio);
* :class:`ProcessHandle`: the process backend's :class:`~neuroflow.sandbox.SandboxProcess`;
* :func:`spawn`: start a process in any backend, with a clear error for a backend that
  cannot (spawning is optional).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.lowlevel
from anyio.abc import ByteReceiveStream, ByteSendStream

from neuroflow.errors import UnsupportedOperationError
from neuroflow.sandbox.result import SandboxResult, TerminationReason

_CHUNK = 65536


class FdReceiveStream(ByteReceiveStream):
    """Bytes read from a non-blocking pipe descriptor this stream owns."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd

    async def receive(self, max_bytes: int = _CHUNK) -> bytes:
        """The next bytes available (at most ``max_bytes``).

        Raises:
            anyio.EndOfStream: the writer closed its end.
            anyio.ClosedResourceError: this stream was closed.
        """
        while True:
            if self._fd < 0:
                raise anyio.ClosedResourceError
            try:
                data = os.read(self._fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)
                continue
            if not data:
                raise anyio.EndOfStream
            await anyio.lowlevel.checkpoint()
            return data

    async def aclose(self) -> None:
        """Close the descriptor (a task waiting in ``receive`` gets ``ClosedResourceError``)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            anyio.notify_closing(fd)
            os.close(fd)
        await anyio.lowlevel.checkpoint()


class FdSendStream(ByteSendStream):
    """Bytes written to a non-blocking pipe descriptor this stream owns."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd

    async def send(self, item: bytes) -> None:
        """Write all of ``item``, waiting while the pipe is full.

        Raises:
            anyio.BrokenResourceError: the reader is gone.
            anyio.ClosedResourceError: this stream was closed.
        """
        view = memoryview(item)
        while view:
            if self._fd < 0:
                raise anyio.ClosedResourceError
            try:
                view = view[os.write(self._fd, view):]
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
            except BrokenPipeError:
                raise anyio.BrokenResourceError from None
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Close the descriptor: the reader sees end-of-file."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            anyio.notify_closing(fd)
            os.close(fd)
        await anyio.lowlevel.checkpoint()


class ProcessHandle:
    """A process the ``process`` backend started with ``spawn`` (a ``SandboxProcess``).

    The backend hands over the process and what it needs to end it: ``state`` kills the
    tree (the run cgroup, or the process group), ``report`` turns the exit status into a
    :class:`SandboxResult`, ``release`` gives back the run's cgroup, uid and work
    directory.  Nothing here starts anything.
    """

    def __init__(
        self, *, pid: int, pidfd: int, stdin_fd: int, stdout_fd: int, stderr_fd: int,
        timeout: float | None, state: Any,
        report: Callable[[int, int, Any, float], SandboxResult],
        release: Callable[[], Awaitable[None]], on_reaped: Callable[[int], None],
    ) -> None:
        self.pid = pid
        self.stdin: ByteSendStream = FdSendStream(stdin_fd)
        self.stdout: ByteReceiveStream = FdReceiveStream(stdout_fd)
        self.stderr: ByteReceiveStream = FdReceiveStream(stderr_fd)
        self._pidfd = pidfd
        self._started = time.perf_counter()
        self._deadline = math.inf if timeout is None else time.monotonic() + timeout
        self._state = state
        self._report = report
        self._release = release
        self._on_reaped = on_reaped
        self._lock = anyio.Lock()
        self._returncode: int | None = None
        self._result: SandboxResult | None = None
        self._closed = False
        # A handle dropped without aclose() (or still open when the interpreter exits)
        # takes its process tree with it.
        self._reaped = [False]
        self._finalizer = weakref.finalize(self, _kill_unreaped, state, self._reaped)

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped (``-N``: killed by signal N)."""
        return self._returncode

    async def wait(self) -> SandboxResult:
        """Wait for the process to end (killing it at its timeout), kill the rest of its
        tree, release the run and report; every caller gets the one result."""
        if self._result is not None:
            return self._result
        async with self._lock:
            if self._result is None:
                await self._wait_exit()
                with anyio.CancelScope(shield=True):
                    self._result = await self._reap()
        return self._result

    async def _wait_exit(self) -> None:
        while True:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                self._state.kill(TerminationReason.TIMED_OUT)
                self._deadline = remaining = math.inf
            with anyio.move_on_after(remaining):
                await anyio.wait_readable(self._pidfd)
                return

    async def _reap(self) -> SandboxResult:
        wall = (time.perf_counter() - self._started) * 1000.0
        try:
            self._state.kill_rest()  # the process is a zombie: its pid is still ours
            await self._state.finish()
            _, status, usage = os.wait4(self.pid, 0)
            self._reaped[0] = True
            self._finalizer.detach()
            self._returncode = os.waitstatus_to_exitcode(status)
            self._on_reaped(self._returncode)
            return self._report(self._returncode, status, usage, wall)
        finally:
            anyio.notify_closing(self._pidfd)
            os.close(self._pidfd)
            await self._release()

    def terminate(self) -> None:
        """``SIGTERM`` to the process group; nothing once the process was reaped."""
        if self._returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        """``SIGKILL`` every process of the run now; nothing once the process was reaped
        (its pid, process group and cgroup may belong to someone else by then)."""
        if self._returncode is None:
            self._state.kill_rest()

    async def aclose(self) -> None:
        """Kill what is left, wait for it, close the streams; idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            self.kill()
            await self.wait()
            for stream in (self.stdin, self.stdout, self.stderr):
                await stream.aclose()

    async def __aenter__(self) -> Self:
        """Return the process."""
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        """Close the process (see :meth:`aclose`)."""
        await self.aclose()

    def __repr__(self) -> str:
        return f"ProcessHandle(pid={self.pid}, returncode={self._returncode})"


def _kill_unreaped(state: Any, reaped: list[bool]) -> None:
    if not reaped[0]:
        state.kill_rest()


async def spawn(
    backend: Any, command: str, args: Sequence[str] = (), *,
    env: Mapping[str, str] | None = None, timeout: float | None = None,
) -> Any:
    """Start ``command`` as a long-running process in ``backend`` (see
    :class:`~neuroflow.sandbox.SpawningBackend`); returns its ``SandboxProcess``.

    Raises:
        UnsupportedOperationError: the backend cannot start long-running processes.
    """
    method = getattr(backend, "spawn", None)
    if method is None:
        raise UnsupportedOperationError(unsupported_spawn(backend))
    return await method(command, args, env=env, timeout=timeout)


def unsupported_spawn(backend: Any) -> str:
    """The message for a backend without ``spawn``."""
    return (f"sandbox backend {type(backend).__name__} cannot start a long-running process "
            "(it has no spawn(), which is optional); the 'process' backend can")
