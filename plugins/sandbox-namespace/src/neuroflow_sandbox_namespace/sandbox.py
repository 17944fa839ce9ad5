"""The ``namespace`` isolation backend: SPEC's ``NamespaceIsolator``.

A run is the process sandbox's run (the same gate and audit, allow-list, clean environment,
dedicated uid per run when the host is root, run cgroups, capped output, wall-clock
timeout, whole-tree kill and result), started by ``neuroflow-native``'s namespace launcher
instead of a plain spawn:

1. the launcher clones the run's PID 1 into new user, pid, mount, ipc, uts and (network
   off) network namespaces -- one made ahead where this process may, with its loopback
   up --, sharing this process's memory while it sets up (no copy of the interpreter is
   made); this process maps the run's uid and gid (the same id inside and out: the
   dedicated uid when the host is root, else our own);
2. PID 1 takes the run's ids, its own host name, builds a minimal root on a tmpfs
   (``/usr``, ``/lib*``, ``/bin`` and a few ``/etc`` files read-only, a fresh ``/proc``, a
   ``/dev`` of five device binds, size-capped tmpfs ``/tmp`` and ``/dev/shm``, the work
   directory and ``binds``), pivots into it, detaches the host's root and makes the new
   one read-only, then executes the launcher's init program (a static program of a few
   pages: from then on it holds nothing of this process);
3. the init program makes itself undumpable, joins the run's cgroups, makes a new cgroup
   namespace, drops its last capability, sets ``no_new_privs`` and the seccomp filter
   (the rlimits were set before its exec) -- all of which the command inherits -- and
   forks the command, which execs;
4. PID 1 reaps every zombie; when the command ends it reports the command's wait status
   and exits, and the kernel kills whatever else is left in the namespace.

The cgroups (memory, pids) are made and written by this process, outside the sandbox:
nothing inside can see (no ``/sys``) or write them.
"""

from __future__ import annotations

import contextvars
import os
import struct
from collections.abc import Mapping
from typing import Any

import attrs

from neuroflow.errors import SandboxError, UnsupportedLimitError
from neuroflow.sandbox import (
    SandboxConfig,
    SandboxIsolator,
    SandboxSecurityLevel,
    cgroup_pool,
    cgroup_support,
)
from neuroflow_sandbox_namespace.config import NamespaceConfig
from neuroflow_sandbox_namespace.mounts import MountPlan
from neuroflow_sandbox_namespace.userns import userns_problem

try:
    from neuroflow_native import _namespace as _launcher
except ImportError:  # pragma: no cover - neuroflow-native is a dependency
    _launcher = None

#: The status pipes of the run in progress in this task (one per launch).
_RUN_STATUS: contextvars.ContextVar[list[tuple[int, int]]] = contextvars.ContextVar(
    "neuroflow_namespace_run_status")


class _Pid1:
    """The namespace's PID 1 (our child): its pid and, once reaped, its exit code."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None


def _as_config(config: Any) -> NamespaceConfig:
    if config is None:
        return NamespaceConfig()
    if isinstance(config, NamespaceConfig):
        return config
    if isinstance(config, SandboxConfig):
        return NamespaceConfig(**{field.name: getattr(config, field.name)
                                  for field in attrs.fields(SandboxConfig)})
    if isinstance(config, Mapping):
        from neuroflow.config import structure

        return structure(config, NamespaceConfig, path="sandbox.namespace")
    raise SandboxError(
        f"config: expected a NamespaceConfig, a SandboxConfig or a table of options, "
        f"got {type(config).__name__}")


class NamespaceSandbox(SandboxIsolator):
    """Run commands in fresh Linux namespaces under seccomp and cgroup limits.

    Args:
        config: a :class:`NamespaceConfig` (a ``SandboxConfig`` or a table of options is
            taken too); ``None`` for the defaults.
        gate: the ``ActionGate`` asked before every command and told how it ended
            (``None``: the configured one, ``False``: none).
        actor: who runs the commands, for the audit records.

    Raises:
        UnsupportedLimitError: this machine cannot enforce a setting (user namespaces
            forbidden -- the message names the sysctl --, no pids cgroup for
            ``max_processes``), unless the config allows weaker isolation where that
            makes sense.
        SandboxError: the launcher (``neuroflow-native``) is missing.
    """

    component = "sandbox.namespace"

    def __init__(self, config: Any = None, *, gate: Any = None, actor: str = "user") -> None:
        if _launcher is None:
            raise SandboxError(
                "the namespace sandbox needs neuroflow-native's launcher: "
                "pip install 'neuroflow[namespace]' (it compiles a small C extension)")
        self._ns_config = _as_config(config)
        self._status_fds: dict[int, int] = {}  # PID 1 -> the pipe its command's status comes on
        cfg = self._ns_config
        self._seccomp = cfg.enable_seccomp or cfg.security_level is SandboxSecurityLevel.STRICT
        self._network = cfg.enable_network and cfg.security_level is not SandboxSecurityLevel.STRICT
        self._mount_plan = MountPlan(cfg)
        super().__init__(cfg, gate=gate, actor=actor)

    # --- what this machine can enforce (replaces the process backend's plan) ---------------

    def _plan(self) -> Any:
        cfg = self.config
        problem = userns_problem()
        if problem is not None:
            raise UnsupportedLimitError(f"the namespace sandbox cannot start here: {problem}")
        info = cgroup_support()
        pool = cgroup_pool()
        if pool is None or not info.pids:
            why = info.problem or "this process cannot create pids cgroups"
            if cfg.max_processes is not None:
                self._refuse(f"max_processes={cfg.max_processes}",
                             f"needs a pids cgroup ({why}); RLIMIT_NPROC does not hold for "
                             "root or in a fresh user namespace")
        if cfg.memory_limit is not None and (pool is None or not info.memory):
            # The address-space rlimit is set instead: weaker (it counts mappings, not
            # memory, and not the tmpfs), so it is a warning, as in the process backend.
            self._warnings.append(
                f"memory_limit={cfg.memory_limit}: enforced with RLIMIT_AS (no memory cgroup "
                "here); the private /tmp and /dev/shm are capped by their sizes only")
        for name, value in (("work_dir_max_bytes", cfg.work_dir_max_bytes),
                            ("work_dir_max_files", cfg.work_dir_max_files)):
            if value is not None:
                self._refuse(f"{name}={value}",
                             "the work directory is a bind of a host directory; cap "
                             "/tmp with tmp_size instead")
        return pool

    def _refuse(self, what: str, why: str) -> None:
        if not self.config.weaker_allowed:
            raise UnsupportedLimitError(
                f"{what}: {why}; set allow_weaker_isolation=True (or "
                "security_level='permissive') to run without it, or see `neuroflow doctor`")
        self._warnings.append(f"{what}: not enforced ({why})")

    def _plan_identity(self) -> Any:
        # A host that is not root runs the command as its own uid -- but alone in its own
        # user namespace, without capabilities and under seccomp, which is what 'strict'
        # asks of the process backend's dedicated uid: strict is fine here.
        cfg = self.config
        if os.geteuid() != 0 and cfg.security_level is SandboxSecurityLevel.STRICT:
            self.config = attrs.evolve(cfg, security_level=SandboxSecurityLevel.STANDARD)
            try:
                return super()._plan_identity()
            finally:
                self.config = cfg
        return super()._plan_identity()

    def _scratch_reachable(self) -> bool:
        # A run has its own /tmp and /dev/shm and no /var/tmp: the host's scratch
        # directories are out of its reach unless a writable bind leads into (or
        # above) one -- only then is there anything of the run's uid to look for there.
        for bind in self._ns_config.binds:
            if not bind.writable:
                continue
            source = os.path.realpath(bind.source)
            for scratch in self.scratch_dirs:
                scratch = os.path.realpath(scratch)
                if _within(source, scratch) or _within(scratch, source):
                    return True
        return False

    # --- one run ---------------------------------------------------------------------

    async def _run_in(self, *args: Any, **kwargs: Any) -> Any:
        launched: list[tuple[int, int]] = []
        token = _RUN_STATUS.set(launched)
        try:
            return await super()._run_in(*args, **kwargs)
        finally:
            _RUN_STATUS.reset(token)
            for pid, _ in launched:
                self._close_status(pid)

    def _close_status(self, pid: int) -> int | None:
        """Forget PID 1 ``pid``'s status pipe; return the command's wait status if sent."""
        fd = self._status_fds.pop(pid, None)
        if fd is None:
            return None
        try:
            data = os.read(fd, 4)
        except BlockingIOError:
            data = b""
        finally:
            os.close(fd)
        return struct.unpack("i", data)[0] if len(data) == 4 else None

    def _spawn(self, argv: list[str], executable: str, cwd: str, env: dict[str, str],
               stdin_fd: int, out_w: int, err_w: int, group: Any, identity: Any) -> _Pid1:
        """Start the run's PID 1 with the launcher (see the module docstring)."""
        assert _launcher is not None
        inside = executable if executable.startswith("/") else os.path.join(cwd, executable)
        if not self._mount_plan.visible(inside, cwd):
            raise SandboxError(
                f"cannot start {argv[0]!r}: {inside} is not inside the sandbox's file system "
                f"(only {', '.join(self._mount_plan.visible_roots(cwd))} are); add its "
                "directory to binds")
        root = os.geteuid() == 0
        if identity is not None:
            uid, gid = identity.uid, identity.gid
        else:
            uid, gid = os.geteuid(), os.getegid()
        pid, status_fd = _launcher.launch(
            executable, argv, [f"{name}={value}" for name, value in env.items()], cwd,
            (stdin_fd, out_w, err_w), self._mount_plan.mounts(cwd),
            (uid, uid, gid, gid, root),
            group.join_files() if group is not None else [],
            [(which, soft, hard) for which, (soft, hard) in self._rlimits],
            self._seccomp, self._network, self.config.hostname,
        )
        os.set_blocking(status_fd, False)
        # execute() closes what its run launched; a spawn()ed run's pipe is read and
        # closed when its result is made (wait() or aclose()).
        self._status_fds[pid] = status_fd
        _RUN_STATUS.get([]).append((pid, status_fd))
        return _Pid1(pid)

    def _result(self, code: int, status: int, usage: Any, *rest: Any) -> Any:
        # PID 1 exited (it cannot be killed by a signal from inside); the command's own
        # wait status is on the status pipe, unless PID 1 was killed first (timeout,
        # output cap: the run's reason says so).
        state = rest[3]
        sent = self._close_status(state.pid)
        if sent is not None:
            status = sent
            code = os.waitstatus_to_exitcode(status)
        return super()._result(code, status, usage, *rest)

    @property
    def seccomp(self) -> bool:
        """Whether commands run under the seccomp filter."""
        return self._seccomp

    @property
    def network(self) -> bool:
        """Whether commands share the host's network (otherwise: only a loopback)."""
        return self._network

    def __repr__(self) -> str:
        return f"NamespaceSandbox({self.config!r})"


def _within(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or below it (both real, absolute paths)."""
    return path == top or path.startswith(top.rstrip("/") + "/")

