"""``IsolationBackend``: the role every sandbox backend plays; ``SpawningBackend`` and
``SandboxProcess``: the optional streaming half (a long-running process whose stdin and
stdout the caller talks to, e.g. an MCP server)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

if TYPE_CHECKING:
    from anyio.abc import ByteReceiveStream, ByteSendStream

    from neuroflow.sandbox.result import SandboxResult


@runtime_checkable
class IsolationBackend(Protocol):
    """Runs commands in isolation.  Built by ``neuroflow.create_backend("isolation", ...)``.

    A backend is an async context manager; ``aclose()`` releases what it holds and may be
    called more than once.
    """

    async def execute(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> SandboxResult:
        """Run ``command`` with ``args`` and return how it ended.

        Args:
            command: a program name (looked up on ``PATH``) or a path.
            args: its arguments (without ``argv[0]``).
            stdin: bytes fed to its standard input (``None``: an empty input).
            env: extra environment variables for this run only.
            timeout: wall-clock seconds for this run (default: the config's ``wall_timeout``).
        """
        ...

    async def aclose(self) -> None:
        """Release everything the backend holds; idempotent."""
        ...

    async def __aenter__(self) -> Self:
        """Return the backend itself."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Call ``aclose()``."""
        ...


@runtime_checkable
class SandboxProcess(Protocol):
    """A process started by :meth:`SpawningBackend.spawn`, still running or ended.

    Its streams are anyio byte streams (they work under asyncio and trio); nothing the
    process writes is buffered by the sandbox, so ``max_output_bytes`` does not apply --
    the reader sets the pace.  ``wait()`` enforces the spawn's wall-clock ``timeout``
    while it is awaited; every other limit holds without it.  ``aclose()`` must be
    called (or ``async with`` used): it kills whatever of the process tree is left and
    releases what the run held (its cgroup, its uid, its work directory).

    Attributes:
        pid: the host pid of the process the sandbox started (for messages and
            statuses; signal it through :meth:`terminate` and :meth:`kill`).
        stdin: the process's standard input; ``await stdin.aclose()`` sends end-of-file.
        stdout: its standard output.
        stderr: its standard error.
    """

    pid: int
    stdin: ByteSendStream
    stdout: ByteReceiveStream
    stderr: ByteReceiveStream

    @property
    def returncode(self) -> int | None:
        """The exit status once the process was reaped by :meth:`wait` (``-N``: signal N)."""
        ...

    async def wait(self) -> SandboxResult:
        """Wait until the process ends; then kill what is left of its tree and report.

        The result's ``stdout``/``stderr`` are empty (they were streamed); its reason says
        how the process ended (``EXITED``, ``SIGNALLED``, ``TIMED_OUT``, ``CPU_LIMIT``,
        ``MEMORY_LIMIT``...).  Every caller gets the same result; safe to call again.
        """
        ...

    def terminate(self) -> None:
        """Ask the process to stop (``SIGTERM`` to its process group); no-op once reaped."""
        ...

    def kill(self) -> None:
        """``SIGKILL`` the whole process tree now, without waiting (safe in ``atexit``)."""
        ...

    async def aclose(self) -> None:
        """Kill what is left, wait for it, close the streams, release the run; idempotent."""
        ...

    async def __aenter__(self) -> Self:
        """Return the process itself."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Call ``aclose()``."""
        ...


@runtime_checkable
class SpawningBackend(Protocol):
    """An isolation backend that can also start a long-running process (optional).

    A backend offers ``spawn`` when it can hand back a live process instead of running a
    command to completion.  The process runs under the same rules as ``execute``: the
    allow list, the gate (asked before it starts, told how it ended), the clean
    environment, the run's uid, cgroup limits and rlimits, the work directory -- and the
    whole tree dies with it.  :func:`neuroflow.sandbox.spawn` calls it, and raises
    :class:`~neuroflow.errors.UnsupportedOperationError` for a backend without it.
    """

    async def spawn(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> SandboxProcess:
        """Start ``command`` with ``args``; return the running process.

        Args:
            command: a program name (looked up on the sandbox's ``PATH``) or a path.
            args: its arguments (without ``argv[0]``).
            env: extra environment variables for this process.
            timeout: wall-clock seconds the process may live (enforced by ``wait()``);
                ``None``: no wall-clock limit -- unlike ``execute``, the config's
                ``wall_timeout`` does not apply, since a spawned process lives as long as
                its caller needs it.

        Raises:
            CommandNotAllowedError: the command is not in ``allowed_commands``.
            SecurityError: the gate denied it.
            SandboxError: a bad argument (named), or the program cannot be started.
        """
        ...
