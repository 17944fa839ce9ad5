"""Sandbox isolation: run commands under limits, through pluggable backends.

The built-in ``process`` backend (:class:`SandboxIsolator`) runs local processes under
rlimits and per-run cgroups.  ``NamespaceIsolator`` and ``WasmSandbox`` come from the
``neuroflow[namespace]`` and ``neuroflow[wasm]`` plugins; :func:`open_sandbox` builds
whichever backend the configuration selects.

Names are imported lazily, so ``import neuroflow.sandbox`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from neuroflow.sandbox.config import SandboxConfig
from neuroflow.sandbox.protocol import IsolationBackend
from neuroflow.sandbox.result import SandboxResult, TerminationReason
from neuroflow.security.levels import SandboxSecurityLevel

if TYPE_CHECKING:
    from neuroflow.sandbox.facade import (
        NamespaceIsolator,
        WasmSandbox,
        WasmSandboxConfig,
        open_sandbox,
    )
    from neuroflow.sandbox.process import SandboxIsolator

_LAZY: dict[str, str] = {
    "SandboxIsolator": "neuroflow.sandbox.process",
    "NamespaceIsolator": "neuroflow.sandbox.facade",
    "WasmSandbox": "neuroflow.sandbox.facade",
    "WasmSandboxConfig": "neuroflow.sandbox.facade",
    "open_sandbox": "neuroflow.sandbox.facade",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'neuroflow.sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "IsolationBackend",
    "NamespaceIsolator",
    "SandboxConfig",
    "SandboxIsolator",
    "SandboxResult",
    "SandboxSecurityLevel",
    "TerminationReason",
    "WasmSandbox",
    "WasmSandboxConfig",
    "open_sandbox",
]
