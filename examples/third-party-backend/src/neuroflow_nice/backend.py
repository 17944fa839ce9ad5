"""The ``nice`` backend: every command goes through the built-in process sandbox,
started under ``nice -n <niceness>`` so it cannot starve the host of CPU."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Self

import attrs

from neuroflow import create_backend
from neuroflow.errors import CommandNotAllowedError, ConfigError
from neuroflow.sandbox import SandboxConfig, SandboxResult


def _check_niceness(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 19:
        raise ConfigError(f"niceness: expected an integer from 1 to 19, got {value!r}")


@attrs.frozen(kw_only=True)
class NiceConfig(SandboxConfig):
    """``[sandbox.nice]``: every process-sandbox option, plus ``niceness`` (1-19)."""

    niceness: int = attrs.field(default=10, validator=_check_niceness)


class NiceSandbox:
    """Runs commands in the process sandbox under ``nice -n <niceness>``."""

    def __init__(self, config: NiceConfig | None = None) -> None:
        self.config = config or NiceConfig()
        options = attrs.asdict(self.config, recurse=False)
        self._niceness = options.pop("niceness")
        # The process sandbox only ever sees `nice`; the allow list is checked here.
        self._allowed = options.pop("allowed_commands")
        # gate=False: the guards judge the user's command once, where this sandbox was
        # opened (open_sandbox wraps backends like this one), not the `nice` underneath.
        self._inner = create_backend("isolation", "process", SandboxConfig(**options),
                                     gate=False)

    def _resolve(self, command: str) -> str | None:
        """The absolute program to run, checked against ``allowed_commands``."""
        if "/" in command and not command.startswith("/"):
            # Relative to what? The host's cwd and the sandbox's work_dir differ.
            raise CommandNotAllowedError(f"command {command!r}: give a name or an absolute path")
        found = shutil.which(command)
        if self._allowed is not None and not any(
            found is not None and shutil.which(entry) == found for entry in self._allowed
        ):
            raise CommandNotAllowedError(
                f"command {command!r} is not in allowed_commands ({', '.join(self._allowed)})"
            )
        return found

    async def execute(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> SandboxResult:
        """Run ``command`` with ``args`` at the configured niceness."""
        found = self._resolve(command)
        if found is None:  # let the process sandbox report a missing command its own way
            return await self._inner.execute(command, args, stdin=stdin, env=env, timeout=timeout)
        nice_args = ["-n", str(self._niceness), found, *args]
        return await self._inner.execute("nice", nice_args, stdin=stdin, env=env, timeout=timeout)

    async def aclose(self) -> None:
        """Release the process sandbox underneath; safe to call twice."""
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        """Return the backend itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the backend."""
        await self.aclose()
