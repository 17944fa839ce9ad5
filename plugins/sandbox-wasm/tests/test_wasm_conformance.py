"""The ``wasm`` backend passes the isolation conformance suite: the parts that apply to
WebAssembly, the others declared not applicable with the reason.

The suite's programs are WASI modules (``suite_programs.WasmPrograms``); its settings map
to ``WasmSandboxConfig`` (``wall_timeout`` -> ``timeout_seconds``, ``memory_limit`` ->
``max_memory_bytes``, ``work_dir`` -> a writable preopen the module sees as fd 3, ``.``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from suite_programs import WasmPrograms

from neuroflow.testing import IsolationBackendSuite

#: The reasons shared by both WebAssembly backends.
NOT_FOR_WASM = {
    "signals": "WebAssembly has no signals: a module ends by exiting or trapping (a trap is "
               "reported SIGNALLED; see test_wasm_limits.py)",
    "cpu_time_limit": "wasmtime meters instructions (max_fuel), not CPU seconds; fuel is "
                      "tested in test_wasm_limits.py",
    "allowed_commands": "the backend runs WebAssembly, not host commands; the gate decides "
                        "what may run",
    "process_tree": "a module cannot start a process: WASI preview 1 has no fork or exec",
}


def wasm_settings(settings: dict[str, Any], work_guest: str) -> dict[str, Any]:
    """The suite's ``SandboxConfig`` settings as ``WasmSandboxConfig`` fields."""
    renamed = {"wall_timeout": "timeout_seconds", "memory_limit": "max_memory_bytes"}
    out: dict[str, Any] = {}
    for name, value in settings.items():
        if name == "work_dir":
            Path(value).mkdir(parents=True, exist_ok=True)
            out["preopens"] = [(value, work_guest, False)]
        else:
            out[renamed.get(name, name)] = value
    return out


class TestWasmConformance(IsolationBackendSuite):
    """Built by name through ``create_backend``, as users get it."""

    backend_name = "wasm"
    unsupported = NOT_FOR_WASM

    @pytest.fixture(autouse=True)
    def _private_cache(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("NEUROFLOW_WASM_CACHE_DIR", str(tmp_path / "wasm-cache"))

    @pytest.fixture
    def suite_programs(self, tmp_path_factory: pytest.TempPathFactory) -> WasmPrograms:
        return WasmPrograms(tmp_path_factory.mktemp("wasm-programs"))

    def backend_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return wasm_settings(settings, ".")


def test_the_declaration_names_only_real_features() -> None:
    from neuroflow.testing import FEATURES

    assert set(NOT_FOR_WASM) <= set(FEATURES)
    left_out = TestWasmConformance.suite_not_applicable
    assert set(left_out) == {"test_a_signal_is_reported",
                             "test_cpu_time_limit_stops_a_spinning_command",
                             "test_allowed_commands_refuses_before_running",
                             "test_no_process_survives_the_run",
                             "test_no_process_survives_a_timeout"}
    assert all(reason.startswith("not applicable: ") for reason in left_out.values())
