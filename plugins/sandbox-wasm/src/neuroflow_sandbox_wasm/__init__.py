"""NeuroFlow's WebAssembly sandbox: WASI (preview 1) modules on wasmtime.

:class:`~neuroflow_sandbox_wasm.sandbox.WasmSandbox` runs a module under fuel, memory,
table, instance, wall-clock and output limits enforced by wasmtime itself, with host files
reachable only through explicitly preopened directories and no network.

This package's entry point (:mod:`neuroflow_sandbox_wasm.plugin`) only registers names,
so importing it does not import wasmtime.
"""

__version__ = "0.1.0"

_LAZY = {
    "WasmSandbox": "neuroflow_sandbox_wasm.sandbox",
    "WasmSandboxConfig": "neuroflow_sandbox_wasm.config",
    "Preopen": "neuroflow_sandbox_wasm.config",
    "WasmResult": "neuroflow_sandbox_wasm.result",
    "WasmEndReason": "neuroflow_sandbox_wasm.result",
}


def __getattr__(name: str) -> object:
    """Import the public names on first use (wasmtime loads with ``WasmSandbox``)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["Preopen", "WasmEndReason", "WasmResult", "WasmSandbox", "WasmSandboxConfig",
           "__version__"]
