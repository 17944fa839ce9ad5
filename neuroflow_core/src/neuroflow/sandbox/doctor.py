"""What this machine lets a sandbox enforce, as ``neuroflow doctor`` checks."""

from __future__ import annotations

import os
import resource
from typing import TYPE_CHECKING

from neuroflow.doctor import Check

if TYPE_CHECKING:
    from neuroflow.sandbox.runas import RunAsPlan


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def user_namespaces() -> Check:
    """Whether unprivileged user namespaces can be created."""
    limit = _read("/proc/sys/user/max_user_namespaces")
    if limit is None:
        return Check("user namespaces", False, "/proc/sys/user/max_user_namespaces not found")
    if int(limit) == 0:
        return Check("user namespaces", False,
                     "disabled: set sysctl user.max_user_namespaces to a positive number")
    clone = _read("/proc/sys/kernel/unprivileged_userns_clone")
    if clone == "0" and os.geteuid() != 0:
        return Check("user namespaces", False,
                     "unprivileged use disabled: sysctl kernel.unprivileged_userns_clone=1")
    restricted = _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if restricted == "1" and os.geteuid() != 0:
        return Check("user namespaces", False, "restricted by AppArmor: sysctl "
                     "kernel.apparmor_restrict_unprivileged_userns=0")
    return Check("user namespaces", True, f"max_user_namespaces={limit}")


def seccomp() -> Check:
    """Whether the kernel supports seccomp filters."""
    status = _read("/proc/self/status") or ""
    line = next((ln for ln in status.splitlines() if ln.startswith("Seccomp:")), None)
    if line is None:
        return Check("seccomp", False, "kernel built without seccomp (no Seccomp: in "
                     "/proc/self/status)")
    actions = _read("/proc/sys/kernel/seccomp/actions_avail")
    mode = line.split(":", 1)[1].strip()
    detail = f"supported (this process: mode {mode})"
    if actions:
        detail += f"; actions: {actions}"
    return Check("seccomp", True, detail)


def cgroup_checks() -> list[Check]:
    """cgroup versions and controllers, and whether this process can create run cgroups."""
    from neuroflow.sandbox import cgroups

    info = cgroups.support()
    v1, v2 = cgroups._mounts()
    checks = [Check("cgroups mounted", bool(v1 or v2), info.mounted)]
    if v2:
        controllers = _read(os.path.join(v2, "cgroup.controllers")) or ""
        checks.append(Check("cgroup v2 controllers", bool(controllers.split()),
                            controllers or f"none enabled at {v2}"))
    for controller, purpose in (("pids", "max_processes, fork bombs"),
                                ("memory", "memory_limit, peak memory"),
                                ("cpu", "CPU accounting")):
        where = v1.get(controller)
        if controller in info.parents:
            checks.append(Check(f"{controller} cgroup (v{info.version})", True,
                                f"usable for {purpose}: run cgroups go in "
                                f"{info.parents[controller]}"))
        elif where:
            checks.append(Check(f"{controller} cgroup (v1)", controller == "cpu",
                                f"mounted at {where}" + ("" if controller == "cpu" else
                                                         "; this process cannot create "
                                                         "cgroups there")))
        else:
            checks.append(Check(f"{controller} cgroup", False, f"not available ({purpose})"))
    checks.append(Check(
        "process sandbox: per-run cgroups", info.usable,
        "whole-tree kill, process and memory limits enforced" if info.usable else
        f"{info.problem or 'no usable cgroup'}; the process backend needs "
        "allow_weaker_isolation=True here",
        required=_config_needs_cgroups(),
    ))
    if info.usable:
        # Informational either way: without it runs start slower under load, not weaker.
        checks.append(Check(
            "process sandbox: scheduling group", True,
            f"runs start in a cpu cgroup of their own inside this process's group "
            f"(neuroflow-<pid>-cpu in {info.sched}): a run's new session waits for no "
            "turn of its own" if info.sched else
            f"none needed or possible ({info.sched_note or 'cgroup v2'})"))
    return checks


def _config_needs_cgroups() -> bool:
    """Whether the active configuration selects the process backend in a mode that
    refuses to run without cgroups."""
    try:
        from neuroflow.config import get_config
        from neuroflow.sandbox.config import SandboxConfig

        section = get_config().section("sandbox")
        options = section.options_for()
    except Exception:  # noqa: BLE001 - `neuroflow doctor` reports config problems itself
        return False
    return (
        section.backend == "process"
        and isinstance(options, SandboxConfig)
        and not options.weaker_allowed
    )


def rlimits() -> Check:
    """Whether resource limits can be read and applied to child processes."""
    names = ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CORE")
    try:
        for name in names:
            resource.getrlimit(getattr(resource, name))
        resource.prlimit(os.getpid(), resource.RLIMIT_CORE)
    except (OSError, AttributeError, ValueError) as exc:
        return Check("rlimits", False, f"{type(exc).__name__}: {exc}")
    return Check("rlimits", True, "CPU, address space, open files, file size (prlimit)")


def spawn_path() -> Check:
    """Which way the process sandbox starts programs: the native spawn or fork + Python."""
    from importlib import metadata

    from neuroflow.sandbox import process

    name = "process sandbox: spawn"
    if process.spawn_path() == "native":
        try:
            version = f" {metadata.version('neuroflow-native')}"
        except metadata.PackageNotFoundError:
            version = ""
        return Check(name, True, f"native (neuroflow-native{version}): a vfork-style clone; "
                     "the child joins its cgroups, sets its rlimits and no_new_privs and "
                     "drops privileges in C before its exec")
    why = "not installed"
    try:
        import neuroflow_native  # noqa: F401
    except ImportError as exc:
        if getattr(exc, "name", None) != "neuroflow_native":
            why = f"installed but not importable ({exc})"
    return Check(name, False, f"fork: subprocess with a Python pre-exec step, slower to "
                 f"start (neuroflow-native {why}: pip install 'neuroflow[native]')",
                 required=False)


def python_interpreter() -> Check:
    """Which real interpreter ``python3`` resolves to (shims followed)."""
    from neuroflow.sandbox.resolve import resolve_command

    found = resolve_command("python3")
    if found is None:
        return Check("python3 interpreter", False, "no python3 on PATH")
    return Check("python3 interpreter", True, f"runs {found}")


def _default_plan() -> tuple[RunAsPlan | None, str]:
    from neuroflow.sandbox import runas
    from neuroflow.sandbox.config import SandboxConfig

    config = SandboxConfig()
    try:
        return runas.plan(config.run_as, config.dedicated_uid_base,
                          config.dedicated_uid_count), ""
    except Exception as exc:  # noqa: BLE001 - reported as the check's detail
        return None, str(exc)


def privilege_drop() -> Check:
    """Whether the process sandbox runs commands under another uid than the host's."""
    from neuroflow.sandbox.config import SandboxConfig

    plan, problem = _default_plan()
    name = "process sandbox: privilege drop"
    if plan is None:
        return Check(name, False, problem)
    if plan.drops:
        config = SandboxConfig()
        last = config.dedicated_uid_base + config.dedicated_uid_count - 1
        return Check(name, True, f"the host is root: each run gets a dedicated uid from "
                                 f"{config.dedicated_uid_base}..{last} (gid = uid, no "
                                 "supplementary groups, no_new_privs)")
    return Check(name, False, f"cannot drop privileges: {plan.reason}; sandboxed code "
                 "can reach the host process, its environment and files; "
                 "security_level='strict' refuses to run")


def ipc_leftovers() -> Check:
    """What becomes of the SysV IPC objects and POSIX message queues a run makes."""
    from neuroflow.sandbox.process import ipc_namespaces

    plan, problem = _default_plan()
    name = "process sandbox: IPC objects of a run"
    if plan is None:
        return Check(name, False, problem, required=False)
    if not plan.drops:
        return Check(name, False, "runs keep the host's uid: the SysV IPC objects and POSIX "
                     "message queues they leave cannot be told from the host's",
                     required=False)
    if ipc_namespaces():
        return Check(name, True, "each run has an IPC namespace of its own: its SysV IPC "
                     "objects and POSIX message queues end with it, the host's are out of "
                     "its reach")
    mqueue = os.path.ismount("/dev/mqueue")
    return Check(name, mqueue, "no IPC namespaces here (they need CAP_SYS_ADMIN): SysV IPC "
                 "objects a run's uid created or owns are removed after the run"
                 + ("; so are its POSIX message queues (/dev/mqueue)" if mqueue else
                    "; POSIX message queues made with mq_open stay (mount the mqueue file "
                    "system on /dev/mqueue to have them removed)"), required=False)


def python_for_runs() -> Check:
    """Which ``python3`` a sandboxed run gets (one its uid may execute)."""
    from neuroflow.sandbox.resolve import resolve_command

    plan, _ = _default_plan()
    identity = plan.identity if plan is not None else None
    who = (identity.uid, identity.gid) if identity is not None else None
    found = resolve_command("python3", who=who)
    label = "python3 for sandboxed runs"
    if found is None:
        return Check(label, False, "no python3 on PATH that the run's uid may execute"
                     + (f" (uid {who[0]})" if who else ""))
    whom = f"unprivileged runs (uid {who[0]}...)" if who else "runs (the host's uid)"
    return Check(label, True, f"{whom} get {found}")


def work_dir_caps() -> Check:
    """Whether a total size / file-count cap on ``work_dir`` can be enforced."""
    return Check("work_dir size/file caps", False,
                 "not enforceable by the process or namespace backends (the work directory "
                 "is a host directory: it needs disk quotas; the namespace backend caps its "
                 "private /tmp and /dev/shm instead); work_dir_max_bytes / "
                 "work_dir_max_files are refused unless weaker isolation is allowed",
                 required=False)


def plugin_backends() -> list[Check]:
    """Whether the stronger backends (and the runtime they need) are installed.

    Reads distribution metadata only: nothing is imported.
    """
    from importlib import metadata
    from importlib.util import find_spec

    from neuroflow.backends import BackendKind, install_hint

    checks = []
    for name, runtime in (("namespace", None), ("wasm", "wasmtime")):
        distribution = install_hint(BackendKind.ISOLATION, name) or (
            "no NeuroFlow distribution provides it yet")
        try:
            metadata.distribution(f"neuroflow-sandbox-{name}")
            checks.append(Check(f"{name} sandbox backend", True, "installed"))
        except metadata.PackageNotFoundError:
            checks.append(Check(f"{name} sandbox backend", False, f"not installed: {distribution}"))
        if runtime is not None:
            present = find_spec(runtime) is not None
            checks.append(Check(runtime, present,
                                "importable" if present else f"not installed: {distribution}"))
    return checks


def all_checks() -> list[Check]:
    """Every sandbox check, for the ``neuroflow_doctor_checks`` hook."""
    return [user_namespaces(), seccomp(), *cgroup_checks(), rlimits(), privilege_drop(),
            ipc_leftovers(), spawn_path(),
            python_interpreter(), python_for_runs(), work_dir_caps(), *plugin_backends()]
