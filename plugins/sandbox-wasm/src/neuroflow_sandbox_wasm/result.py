"""``WasmResult``: a :class:`~neuroflow.sandbox.SandboxResult` with what only WASM knows."""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from neuroflow.sandbox import SandboxResult, TerminationReason


class WasmEndReason(str, enum.Enum):
    """Why a WebAssembly execution ended (finer than :class:`TerminationReason`)."""

    EXITED = "exited"  # the entry returned, or the module called proc_exit
    TRAPPED = "trapped"  # a trap: unreachable, out-of-bounds access, stack overflow...
    OUT_OF_FUEL = "out_of_fuel"  # max_fuel was used up
    TIMED_OUT = "timed_out"  # timeout_seconds passed (epoch interruption)
    MEMORY_LIMIT = "memory_limit"  # it failed at max_memory_bytes (or could not start)
    OUTPUT_LIMIT = "output_limit"  # stdout/stderr/a returned file went over the cap
    ERROR = "error"  # the module could not be run (invalid, missing export or import)

    def __str__(self) -> str:
        return self.value

    @property
    def termination(self) -> TerminationReason:
        """The backend-independent reason (what ``SandboxResult.reason`` holds)."""
        return _TERMINATION[self]


_TERMINATION = {
    WasmEndReason.EXITED: TerminationReason.EXITED,
    WasmEndReason.TRAPPED: TerminationReason.SIGNALLED,
    WasmEndReason.OUT_OF_FUEL: TerminationReason.CPU_LIMIT,
    WasmEndReason.TIMED_OUT: TerminationReason.TIMED_OUT,
    WasmEndReason.MEMORY_LIMIT: TerminationReason.MEMORY_LIMIT,
    WasmEndReason.OUTPUT_LIMIT: TerminationReason.OUTPUT_LIMIT,
    WasmEndReason.ERROR: TerminationReason.ERROR,
}

#: ``exit_code`` of a run that did not exit by itself (like the wasmtime CLI on a trap).
TRAP_EXIT_CODE = 134


@attrs.frozen(kw_only=True)
class WasmResult(SandboxResult):
    """How a WebAssembly execution ended.

    Besides the :class:`~neuroflow.sandbox.SandboxResult` fields (``exit_code``: the
    ``proc_exit`` status, 0 when the entry returned, 134 when it did not exit by itself;
    ``stdout``/``output``, ``stderr``, ``wall_time_ms``/``execution_time_ms``,
    ``cpu_time_ms``, ``peak_memory_bytes``: the largest linear memory size; ``reason``):

    Attributes:
        wasm_reason: why it ended, in WebAssembly terms (:class:`WasmEndReason`).
        fuel_consumed: fuel used, or ``None`` when fuel metering is off.
        trap: the trap or error message, when it did not exit by itself.
        module_sha256: the hex SHA-256 of the module that ran.
        files: the files the module left in the ``files=`` folder (relative path ->
            bytes), when ``execute(files=...)`` was given.
        cache: where the compiled module came from: ``"memory"``, ``"disk"`` or
            ``"compiled"``.
    """

    wasm_reason: WasmEndReason = attrs.field(default=WasmEndReason.EXITED,
                                             converter=WasmEndReason)
    fuel_consumed: int | None = None
    trap: str | None = None
    module_sha256: str = ""
    files: Mapping[str, bytes] | None = None
    cache: str = ""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (output decoded as UTF-8, files by name and size)."""
        data = super().to_dict()
        data["wasm_reason"] = self.wasm_reason.value
        data["files"] = (None if self.files is None
                         else {name: len(body) for name, body in self.files.items()})
        return data
