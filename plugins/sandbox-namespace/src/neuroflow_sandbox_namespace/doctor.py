"""``neuroflow doctor``'s checks for the namespace backend."""

from __future__ import annotations

import importlib.util
import os

from neuroflow import Check
from neuroflow.sandbox import cgroup_support
from neuroflow_sandbox_namespace.userns import userns_problem


def checks() -> list[Check]:
    """User namespaces for this uid, the native launcher, and which limits cgroups hold."""
    problem = userns_problem()
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    found = [Check("namespace sandbox: user namespaces", problem is None,
                   problem or f"available to {who}")]
    try:
        launcher = importlib.util.find_spec("neuroflow_native._namespace") is not None
    except ImportError:
        launcher = False
    found.append(Check("namespace sandbox: launcher", launcher,
                       "neuroflow_native._namespace" if launcher else
                       "neuroflow-native is missing or too old: "
                       "pip install 'neuroflow[namespace]'"))
    if launcher:
        from neuroflow_native import _namespace

        usable = getattr(_namespace, "init_program_usable", lambda: False)()
        found.append(Check(
            "namespace sandbox: PID 1", usable,
            "the launcher's init program (PID 1 shares nothing of this process)" if usable
            else "a copy of this process (the init program cannot be executed here: a "
                 "memfd refused execution, or an older neuroflow-native): slower starts"))
    info = cgroup_support()
    if info.pids and info.memory:
        found.append(Check("namespace sandbox: cgroup limits", True,
                           f"memory and pids cgroups (v{info.version}) for every run"))
    else:
        missing = [name for name, ok in (("pids", info.pids), ("memory", info.memory))
                   if not ok]
        found.append(Check(
            "namespace sandbox: cgroup limits", False,
            f"no {' or '.join(missing)} cgroup for this process "
            f"({info.problem or 'not delegated'}): max_processes is refused unless "
            "allow_weaker_isolation=True; memory_limit falls back to RLIMIT_AS"))
    return found
