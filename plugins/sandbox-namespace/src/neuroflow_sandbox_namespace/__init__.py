"""NeuroFlow's Linux-namespace sandbox: the ``namespace`` isolation backend.

SPEC's ``NamespaceIsolator``: every command runs in new user, pid, mount, ipc, uts, cgroup
and (network off) network namespaces, in a minimal read-only root with a private ``/tmp``,
``/dev/shm``, ``/proc`` and ``/dev``, with no capabilities, ``no_new_privs``, a seccomp-bpf
filter, rlimits and per-run cgroups (see :mod:`neuroflow_sandbox_namespace.sandbox`).
"""

__version__ = "0.1.0"
