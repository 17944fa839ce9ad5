"""Sandbox isolation: run commands under limits, through pluggable backends.

The built-in ``process`` backend (:class:`SandboxIsolator`) runs local processes under
rlimits and per-run cgroups.  ``NamespaceIsolator`` and ``WasmSandbox`` come from the
``neuroflow[namespace]`` and ``neuroflow[wasm]`` plugins; :func:`open_sandbox` builds
whichever backend the configuration selects.

Names are imported lazily, so ``import neuroflow.sandbox`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow._lazy import lazy_exports

if TYPE_CHECKING:
    from neuroflow.sandbox.cgroups import CgroupPool, CgroupSupport
    from neuroflow.sandbox.config import SandboxConfig
    from neuroflow.sandbox.facade import (
        NamespaceIsolator,
        WasmSandbox,
        WasmSandboxConfig,
        open_sandbox,
    )
    from neuroflow.sandbox.guarded import GuardedBackend, command_action, run_guarded
    from neuroflow.sandbox.process import SandboxIsolator
    from neuroflow.sandbox.protocol import IsolationBackend
    from neuroflow.sandbox.result import SandboxResult, TerminationReason
    from neuroflow.security.levels import SandboxSecurityLevel

_LAZY: dict[str, str] = {
    "SandboxConfig": "neuroflow.sandbox.config",
    "IsolationBackend": "neuroflow.sandbox.protocol",
    "SandboxResult": "neuroflow.sandbox.result",
    "TerminationReason": "neuroflow.sandbox.result",
    "SandboxSecurityLevel": "neuroflow.security.levels",
    "SandboxIsolator": "neuroflow.sandbox.process",
    "NamespaceIsolator": "neuroflow.sandbox.facade",
    "WasmSandbox": "neuroflow.sandbox.facade",
    "WasmSandboxConfig": "neuroflow.sandbox.facade",
    "open_sandbox": "neuroflow.sandbox.facade",
    "command_action": "neuroflow.sandbox.guarded",
    "run_guarded": "neuroflow.sandbox.guarded",
    "GuardedBackend": "neuroflow.sandbox.guarded",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


def cgroup_support() -> CgroupSupport:
    """What this process can do with per-run cgroups (v1 or v2, which controllers, or why
    not), detected once; for backends that put their runs in cgroups."""
    from neuroflow.sandbox import cgroups

    return cgroups.support()


def cgroup_pool() -> CgroupPool | None:
    """The process-wide pool of run cgroups (``acquire(max_processes, memory_limit)``,
    ``release(group)``), or ``None`` when this process cannot create cgroups."""
    from neuroflow.sandbox import cgroups

    return cgroups.pool()


__all__ = [
    "GuardedBackend",
    "IsolationBackend",
    "NamespaceIsolator",
    "SandboxConfig",
    "SandboxIsolator",
    "SandboxResult",
    "SandboxSecurityLevel",
    "TerminationReason",
    "WasmSandbox",
    "WasmSandboxConfig",
    "cgroup_pool",
    "cgroup_support",
    "command_action",
    "open_sandbox",
    "run_guarded",
]
