"""``SandboxResult`` and ``TerminationReason``: what every isolation backend returns."""

from __future__ import annotations

import enum
from typing import Any

import attrs


class TerminationReason(str, enum.Enum):
    """Why a sandboxed command ended."""

    EXITED = "exited"  # it exited by itself (any exit code)
    SIGNALLED = "signalled"  # a signal it did not get from a limit killed it
    TIMED_OUT = "timed_out"  # the wall-clock timeout was reached; the tree was killed
    CPU_LIMIT = "cpu_limit"  # the CPU-time limit was reached
    MEMORY_LIMIT = "memory_limit"  # the memory limit was reached (out-of-memory kill)
    OUTPUT_LIMIT = "output_limit"  # stdout or stderr went over the output cap
    FILE_SIZE_LIMIT = "file_size_limit"  # it wrote a file larger than max_file_size
    PROCESS_LIMIT = "process_limit"  # it failed after hitting the process-count limit
    ERROR = "error"  # the backend could not run it (the command failed to start)

    def __str__(self) -> str:
        return self.value


@attrs.frozen(kw_only=True)
class SandboxResult:
    """How a sandboxed command ended and what it printed.

    Attributes:
        exit_code: the exit status, or ``-N`` when signal ``N`` ended it.
        stdout: what it wrote to stdout (at most ``max_output_bytes``).
        stderr: what it wrote to stderr (at most ``max_output_bytes``).
        wall_time_ms: wall-clock time from start to end, in milliseconds.
        cpu_time_ms: user + system CPU time of the command, in milliseconds.
        peak_memory_bytes: the highest memory use seen (cgroup peak when available,
            else the largest resident set), or ``None`` if unknown.
        reason: why it ended.
        signal: the signal that ended it, if any.
        stdout_truncated: stdout was cut at the output cap.
        stderr_truncated: stderr was cut at the output cap.
        limits_hit: every limit the command ran into (``"processes"``, ``"memory"``...),
            even those that did not end it.
        warnings: settings this run could not enforce and skipped (weaker isolation).
        host_calls: every host-tool call the guest made, in order, when it ran with
            ``run_code(..., host_tools=...)`` (:mod:`neuroflow.sandbox.host_tools`).
    """

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    wall_time_ms: float = 0.0
    cpu_time_ms: float = 0.0
    peak_memory_bytes: int | None = None
    reason: TerminationReason = attrs.field(
        default=TerminationReason.EXITED, converter=TerminationReason
    )
    signal: int | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    limits_hit: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    host_calls: tuple[Any, ...] = ()

    @property
    def output(self) -> bytes:
        """The command's stdout (SPEC's ``result.output``)."""
        return self.stdout

    @property
    def ok(self) -> bool:
        """Whether it exited by itself with status 0."""
        return self.reason is TerminationReason.EXITED and self.exit_code == 0

    @property
    def execution_time_ms(self) -> float:
        """Alias of ``wall_time_ms`` (the name the WASM sandbox uses)."""
        return self.wall_time_ms

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict; output is decoded as UTF-8 with replacement characters."""
        data = attrs.asdict(self)
        data["reason"] = self.reason.value
        data["stdout"] = self.stdout.decode("utf-8", "replace")
        data["stderr"] = self.stderr.decode("utf-8", "replace")
        data["limits_hit"] = list(self.limits_hit)
        data["warnings"] = list(self.warnings)
        return data
