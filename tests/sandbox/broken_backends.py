"""Deliberately broken isolation backends: the real process backend, each with one defect.

``test_conformance_catches_broken.py`` runs ``IsolationBackendSuite`` against each and
checks that the suite fails it in the tests aimed at that defect.  Each class is built
like the real one: ``Broken(SandboxConfig(...), gate=...)``.  They reach into the process
backend's private methods on purpose; :func:`check_hooks` fails loudly if those change.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, SandboxResult
from neuroflow.sandbox import process as _process
from neuroflow.sandbox import runas as _runas

#: The private parts of the process backend these classes override.
_HOOKS = ("_plan", "_build_env", "_run_env", "_check_allowed", "_run", "_run_in")


def check_hooks() -> None:
    """Fail if the process backend no longer has what the broken backends override."""
    missing = [name for name in _HOOKS if not hasattr(SandboxIsolator, name)]
    missing += [] if hasattr(_process, "_RunState") else ["process._RunState"]
    missing += [] if hasattr(_runas, "kill_uid") else ["runas.kill_uid"]
    assert not missing, f"SandboxIsolator changed; update broken_backends.py: {missing}"


class IgnoresTimeouts(SandboxIsolator):
    """Never times out: drops ``wall_timeout`` and every call's ``timeout``."""

    def __init__(self, config: SandboxConfig, **kwargs: Any) -> None:
        super().__init__(attrs.evolve(config, wall_timeout=None), **kwargs)

    async def execute(self, command: str, args: Sequence[str] = (), *,
                      stdin: bytes | None = None, env: Mapping[str, str] | None = None,
                      timeout: float | None = None) -> SandboxResult:
        """Run without any timeout."""
        return await super().execute(command, args, stdin=stdin, env=env, timeout=None)


class IgnoresCpuLimit(SandboxIsolator):
    """Drops ``cpu_time_limit``."""

    def __init__(self, config: SandboxConfig, **kwargs: Any) -> None:
        super().__init__(attrs.evolve(config, cpu_time_limit=None), **kwargs)


class IgnoresMemoryLimit(SandboxIsolator):
    """Drops ``memory_limit`` (and any address-space limit)."""

    def __init__(self, config: SandboxConfig, **kwargs: Any) -> None:
        super().__init__(
            attrs.evolve(config, memory_limit=None, address_space_limit=None), **kwargs)


class IgnoresOutputCap(SandboxIsolator):
    """Drops ``max_output_bytes``: keeps everything a program prints."""

    def __init__(self, config: SandboxConfig, **kwargs: Any) -> None:
        super().__init__(attrs.evolve(config, max_output_bytes=None), **kwargs)


class IgnoresLimits(IgnoresTimeouts):
    """Ignores every limit: timeouts, CPU time, memory and the output cap."""

    def __init__(self, config: SandboxConfig, **kwargs: Any) -> None:
        super().__init__(attrs.evolve(config, cpu_time_limit=None, memory_limit=None,
                                      address_space_limit=None, max_output_bytes=None),
                         **kwargs)


class LeaksHostEnvironment(SandboxIsolator):
    """Copies the host's ``os.environ`` when it is built, into every command's environment."""

    def _build_env(self) -> dict[str, str]:
        return {**os.environ, **super()._build_env()}


class PassesHostEnvironment(SandboxIsolator):
    """Starts every command's environment from the host's ``os.environ`` at run time."""

    def _run_env(self, cwd: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {**os.environ, **super()._run_env(cwd, extra)}


class KillsOnlyTheProcessGroup(SandboxIsolator):
    """Uses no cgroup and does not sweep the run's uid: kills the command's process
    group, so a descendant that calls ``setsid()`` survives (memory is limited by address
    space instead)."""

    def _plan(self) -> Any:
        return None

    async def _run(self, *args: Any, **kwargs: Any) -> SandboxResult:
        original = _runas.kill_uid
        _runas.kill_uid = lambda uid: None  # type: ignore[assignment]
        try:
            return await super()._run(*args, **kwargs)
        finally:
            _runas.kill_uid = original  # type: ignore[assignment]


class _DirectChildOnly(_process._RunState):
    """Kills the run's first process and nothing else."""

    __slots__ = ()

    def kill_rest(self, exited: bool = False) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class KillsOnlyTheDirectChild(KillsOnlyTheProcessGroup):
    """Kills only the process it started: every child and grandchild is left behind.

    The process backend builds its kill state inside ``_run_in``; this swaps the class
    it uses for one run (the tests that use it run one command at a time).
    """

    async def _run_in(self, *args: Any, **kwargs: Any) -> SandboxResult:
        original = _process._RunState
        _process._RunState = _DirectChildOnly  # type: ignore[misc]
        try:
            return await super()._run_in(*args, **kwargs)
        finally:
            _process._RunState = original  # type: ignore[misc]


class IgnoresAllowedCommands(SandboxIsolator):
    """Runs every command, whatever ``allowed_commands`` says."""

    def _check_allowed(self, command: str, executable: str | None, cwd: str) -> None:
        return None


class IgnoresWorkDir(SandboxIsolator):
    """Runs commands in a private temporary directory instead of ``work_dir``."""

    def __init__(self, config: SandboxConfig, **kwargs: Any) -> None:
        super().__init__(attrs.evolve(config, work_dir=None), **kwargs)


class SkipsTheGate(SandboxIsolator):
    """Takes a ``gate`` and never asks it."""

    def __init__(self, config: SandboxConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._gate = None


class AsksTheGateAfterRunning(SandboxIsolator):
    """Runs the command first and asks the gate afterwards (too late to stop it)."""

    async def execute(self, command: str, args: Sequence[str] = (), *,
                      stdin: bytes | None = None, env: Mapping[str, str] | None = None,
                      timeout: float | None = None) -> SandboxResult:
        """Run, then authorize and record the outcome."""
        from neuroflow.sandbox.guarded import command_action

        gate, self._gate = self._gate, None
        try:
            result = await super().execute(command, args, stdin=stdin, env=env,
                                           timeout=timeout)
        finally:
            self._gate = gate
        if gate is not None:
            action, context = command_action(command, list(args), "user", "sandbox.broken")
            await gate.authorize(action, context)
            await gate.record_outcome(action, context, "success" if result.ok else "error",
                                      {"exit_code": result.exit_code})
        return result


def _defects() -> dict[str, type[SandboxIsolator]]:
    """Every broken backend of this module, by class name."""
    return {name: value for name, value in globals().items()
            if isinstance(value, type) and issubclass(value, SandboxIsolator)
            and value is not SandboxIsolator and not name.startswith("_")}


BROKEN: dict[str, type[SandboxIsolator]] = _defects()
