"""Sandbox isolation: run commands under limits, through pluggable backends.
Backends that can (``process``) also :func:`spawn` long-running processes whose streams
the caller talks to (an MCP server over stdio).

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
    from neuroflow.sandbox.guarded import (
        GuardedBackend,
        command_action,
        run_guarded,
        spawn_guarded,
    )
    from neuroflow.sandbox.host_tools import (
        HostCallRecord,
        HostTool,
        HostToolError,
        HostTools,
    )
    from neuroflow.sandbox.process import SandboxIsolator
    from neuroflow.sandbox.protocol import IsolationBackend, SandboxProcess, SpawningBackend
    from neuroflow.sandbox.result import SandboxResult, TerminationReason
    from neuroflow.sandbox.spawned import spawn
    from neuroflow.security.levels import SandboxSecurityLevel

_LAZY: dict[str, str] = {
    "SandboxConfig": "neuroflow.sandbox.config",
    "IsolationBackend": "neuroflow.sandbox.protocol",
    "SpawningBackend": "neuroflow.sandbox.protocol",
    "SandboxProcess": "neuroflow.sandbox.protocol",
    "spawn": "neuroflow.sandbox.spawned",
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
    "spawn_guarded": "neuroflow.sandbox.guarded",
    "GuardedBackend": "neuroflow.sandbox.guarded",
    "HostTool": "neuroflow.sandbox.host_tools",
    "HostTools": "neuroflow.sandbox.host_tools",
    "HostToolError": "neuroflow.sandbox.host_tools",
    "HostCallRecord": "neuroflow.sandbox.host_tools",
}


_lazy_getattr, __dir__ = lazy_exports(__name__, _LAZY)


def __getattr__(name: str) -> object:
    """The lazily imported names, and the :mod:`~neuroflow.sandbox.validators` module
    config classes of sandbox backends share."""
    if name == "validators":
        import importlib

        module = importlib.import_module("neuroflow.sandbox.validators")
        globals()[name] = module
        return module
    return _lazy_getattr(name)


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
    "HostCallRecord",
    "HostTool",
    "HostToolError",
    "HostTools",
    "IsolationBackend",
    "NamespaceIsolator",
    "SandboxConfig",
    "SandboxIsolator",
    "SandboxProcess",
    "SandboxResult",
    "SandboxSecurityLevel",
    "SpawningBackend",
    "TerminationReason",
    "WasmSandbox",
    "WasmSandboxConfig",
    "cgroup_pool",
    "cgroup_support",
    "command_action",
    "open_sandbox",
    "run_guarded",
    "spawn",
    "spawn_guarded",
    "validators",
]
