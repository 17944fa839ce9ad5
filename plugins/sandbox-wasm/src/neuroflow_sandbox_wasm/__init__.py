"""NeuroFlow's WebAssembly sandbox: WASI (preview 1) modules on wasmtime.

:class:`~neuroflow_sandbox_wasm.sandbox.WasmSandbox` runs a module under fuel, memory,
table, instance, wall-clock and output limits enforced by wasmtime itself, with host files
reachable only through explicitly preopened directories and no network.

This package's entry point (:mod:`neuroflow_sandbox_wasm.plugin`) only registers names,
so importing it does not import wasmtime.
"""

__version__ = "0.1.0"
