"""Security levels: one knob that sets how strict every isolation backend and guard is."""

from __future__ import annotations

import enum


class SandboxSecurityLevel(str, enum.Enum):
    """How strict a sandbox and the guards around it are.

    * ``PERMISSIVE``: actions no rule covers are allowed; limits a machine cannot enforce
      are reported and skipped.
    * ``STANDARD``: actions no rule covers are allowed, limits must be enforced.
    * ``STRICT``: actions no rule covers are denied, limits must be enforced, network off.
    """

    PERMISSIVE = "permissive"
    STANDARD = "standard"
    STRICT = "strict"

    def __str__(self) -> str:
        return self.value


#: What each level means, concretely, for the guards and for every isolation backend.
#: Sandbox backends read their column to fill settings the user did not set; a setting
#: the user did set explicitly wins, except that no level turns a required limit into an
#: optional one silently (``allow_weaker_isolation`` must be set by the user).
LEVEL_SETTINGS: dict[SandboxSecurityLevel, dict[str, dict[str, object]]] = {
    SandboxSecurityLevel.PERMISSIVE: {
        "guards": {"unmatched_action": "allow"},
        "process": {
            "rlimits": "applied when set",          # cpu_time_limit, memory_limit, files
            "cgroups": "used when available",       # pids/memory cgroup; skipped if absent
            "exact_rlimits": False,                 # rlimits set by prlimit right after exec
            "enable_network": True,
            "allow_weaker_isolation": True,         # a limit it cannot enforce is reported
        },
        "namespace": {
            "namespaces": ["user", "pid", "mount", "ipc", "uts"],
            "network_namespace": False,             # shares the host network
            "seccomp": "used when available",
            "allow_weaker_isolation": True,
        },
        "wasm": {"fuel_and_memory_limits": "applied when set", "wasi_network": False,
                 "preopened_dirs": "work_dir read-write"},
    },
    SandboxSecurityLevel.STANDARD: {
        "guards": {"unmatched_action": "allow"},
        "process": {
            "rlimits": "required",                  # refused if a set limit cannot be applied
            "cgroups": "required for memory/pids limits that are set",
            "exact_rlimits": False,
            "enable_network": True,                 # the network guard still applies
            "allow_weaker_isolation": False,
        },
        "namespace": {
            "namespaces": ["user", "pid", "mount", "ipc", "uts"],
            "network_namespace": False,
            "seccomp": "required when enable_seccomp is set",
            "allow_weaker_isolation": False,
        },
        "wasm": {"fuel_and_memory_limits": "required", "wasi_network": False,
                 "preopened_dirs": "work_dir read-write"},
    },
    SandboxSecurityLevel.STRICT: {
        "guards": {"unmatched_action": "deny"},
        "process": {
            "rlimits": "required",
            "cgroups": "required for memory/pids limits that are set",
            "exact_rlimits": True,                  # rlimits set before exec, no window
            "enable_network": False,                # the process backend cannot cut it:
                                                    # refused unless allow_weaker_isolation
            "allow_weaker_isolation": False,
        },
        "namespace": {
            "namespaces": ["user", "pid", "mount", "ipc", "uts", "net"],
            "network_namespace": True,              # no network at all
            "seccomp": "required",
            "allow_weaker_isolation": False,
        },
        "wasm": {"fuel_and_memory_limits": "required", "wasi_network": False,
                 "preopened_dirs": "work_dir only"},
    },
}


def level_settings(level: SandboxSecurityLevel | str) -> dict[str, dict[str, object]]:
    """The concrete settings ``level`` stands for, by backend (``"guards"``, ``"process"``,
    ``"namespace"``, ``"wasm"``); what ``neuroflow config show`` prints for the level.

    Raises:
        ValueError: ``level`` is not a security level.
    """
    try:
        level = SandboxSecurityLevel(level)
    except ValueError:
        known = ", ".join(v.value for v in SandboxSecurityLevel)
        raise ValueError(f"security level: expected one of {known}, got {level!r}") from None
    return {backend: dict(values) for backend, values in LEVEL_SETTINGS[level].items()}

