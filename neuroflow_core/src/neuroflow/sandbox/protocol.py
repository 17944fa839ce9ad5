"""``IsolationBackend``: the role every sandbox backend plays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

if TYPE_CHECKING:
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
