"""Entry point ``sandbox-namespace``: registers the ``namespace`` isolation backend.

Cheap to import: the backend (and the native launcher) load when a user selects it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendSpec, hookimpl

if TYPE_CHECKING:
    from neuroflow import Check


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """The ``namespace`` backend (SPEC's ``NamespaceIsolator``)."""
    return [
        BackendSpec(
            name="namespace",
            kind="isolation",
            factory="neuroflow_sandbox_namespace.sandbox:NamespaceSandbox",
            config_class="neuroflow_sandbox_namespace.config:NamespaceConfig",
            description="Linux namespaces (user, pid, mount, ipc, uts, cgroup, net), a "
                        "minimal read-only root, no capabilities, seccomp-bpf, cgroup limits",
            enforces_gate=True,
        ),
    ]


@hookimpl
def neuroflow_doctor_checks() -> list[Check]:
    """What the namespace backend needs: user namespaces, its launcher, cgroups."""
    from neuroflow_sandbox_namespace.doctor import checks

    return checks()
