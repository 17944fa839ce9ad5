"""The built-in ``process`` isolation backend: SPEC's ``SandboxIsolator``.

One run, in order:

1. resolve the program (shims to real binaries, by reading files: nothing is executed),
   refuse a command outside ``allowed_commands`` or (strict) a dangerous ``env`` name,
   ask the gate -- nothing has run yet;
2. build a clean environment; when the host is root, take a dedicated uid for the run
   (one this process holds already, cleaned up after its last run, else one locked with
   a lock file) and hand the work directory to it;
3. take a run cgroup from the pool and write all its limits;
4. spawn in a new session (no controlling terminal; SIGCONT, which a process may send
   to anyone in its session whatever the uid, cannot reach the host's).  With
   ``neuroflow-native`` installed, its C ``spawn`` starts the child the way
   ``posix_spawn`` does (sharing our memory until its exec) and the child writes itself
   into the run cgroups, sets its rlimits, sets ``no_new_privs`` and drops to the run's
   uid (no supplementary groups, raw system calls) before it execs.  Without it, the
   same set-up runs in Python after ``fork()`` when there are run cgroups or a uid to
   drop to; otherwise it spawns with ``vfork`` and sets the rlimits with ``prlimit``
   right after.  Either way only the child ever enters a run cgroup, and the program
   starts limited.  Where a new session would be a new top-level scheduling group
   (autogroup), the starting thread sits in this process's scheduling group and the
   child is born there (see :mod:`neuroflow.sandbox.cgroups`);
5. read stdout/stderr incrementally, capped, and wait on a pidfd with the wall timeout:
   a run like the last one, which ended within 2 ms, on its pidfd alone for that long;
   otherwise through one private epoll set (pipes, pidfd, the deadline's timerfd) that a
   single task awaits;
6. kill everything left in the run cgroup (or the process group without cgroups),
   reap, give the work directory back, remove what the run's uid left in ``/tmp``,
   ``/var/tmp``, ``/dev/shm``, ``/dev/mqueue`` and ``/run/lock`` (and its SysV IPC
   objects, where the run had no IPC namespace of its own), and report; the uid stays
   with this process for its next run.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.lowlevel
import anyio.to_thread

from neuroflow.errors import (
    CommandNotAllowedError,
    ConfigError,
    SandboxError,
    UnsupportedLimitError,
)
from neuroflow.sandbox import cgroups, runas
from neuroflow.sandbox.config import SandboxConfig, is_dangerous_env
from neuroflow.sandbox.host_tools import HostTools
from neuroflow.sandbox.resolve import DEFAULT_PATH, resolve_command, runnable_by
from neuroflow.sandbox.result import SandboxResult, TerminationReason
from neuroflow.sandbox.spawned import ProcessHandle
from neuroflow.security.levels import SandboxSecurityLevel

if TYPE_CHECKING:
    from neuroflow.sandbox.protocol import SandboxProcess

try:  # the C spawn of ``neuroflow-native`` (pip install 'neuroflow[native]'), when installed
    from neuroflow_native import spawn as _native_spawn
except ImportError:
    _native_spawn = None
try:  # its timerfd for a run's deadline (an older build has none)
    from neuroflow_native import deadline_fd as _deadline_fd
except ImportError:
    _deadline_fd = None
# Whether the C spawn can give the child an IPC namespace of its own (an older build
# cannot).
_NATIVE_IPC = "new_ipc" in (getattr(_native_spawn, "__doc__", None) or "")
# Whether it can give the child a session keyring of its own and clear its uid's.
_NATIVE_KEYRINGS = "keyrings" in (getattr(_native_spawn, "__doc__", None) or "")
# Whether it returns a pidfd of the child made by the clone itself.
_NATIVE_PIDFD = "pidfd" in (getattr(_native_spawn, "__doc__", None) or "")
# Whether the child can join its cgroups through files opened for it.
_NATIVE_JOIN_FDS = "an fd open for writing" in (getattr(_native_spawn, "__doc__", None) or "")

_READ_CHUNK = 65536
# Bytes read from one pipe before the loop checks the deadline and lets other tasks run:
# a program that writes faster than we read must not hold the event loop.
_PASS_BYTES = 4 * _READ_CHUNK
_DRAIN_GRACE = 2.0  # seconds to drain pipes after the tree was killed
_EXIT_SPIN = 0.001  # seconds to block for the exit right after a pipe closed
# Seconds to block for a run to end before waiting through the event loop, when this
# isolator's previous run ended within that time and no other run of it is in flight: a
# trip through the loop costs several times the CPU of one blocking wait, and a command
# this quick would have ended by then.  Concurrent runs never block the loop this way.
_QUICK_RUN = 0.002

_RLIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "as": resource.RLIMIT_AS,
    "nofile": resource.RLIMIT_NOFILE,
    "fsize": resource.RLIMIT_FSIZE,
    "core": resource.RLIMIT_CORE,
}


def _clamp(limit: int, which: int) -> int:
    """Never ask for more than our own hard limit (raising it needs privileges)."""
    hard = resource.getrlimit(which)[1]
    return limit if hard == resource.RLIM_INFINITY else min(limit, hard)


def _weaker(config: SandboxConfig, what: str, why: str, warnings: list[str]) -> None:
    if not config.weaker_allowed:
        raise UnsupportedLimitError(
            f"{what}: {why}; set allow_weaker_isolation=True (or security_level='permissive') "
            "to run without it, or see `neuroflow doctor`"
        )
    warnings.append(f"{what}: not enforced ({why})")


class _Child:
    """A child started by the native spawn: its pid, a pidfd of it (``-1``: none yet;
    the caller owns it) and, once reaped, its exit code."""

    __slots__ = ("pid", "pidfd", "returncode")

    def __init__(self, pid: int, pidfd: int = -1) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.returncode: int | None = None


_Proc = subprocess.Popen[bytes] | _Child


def _no_memory_to_start(exc: BaseException, group: cgroups.RunCgroup | None) -> bool:
    """Whether the child could not start for its memory cgroup's limit: any step after it
    joined the cgroup (setgroups, the keyrings, the IPC namespace, exec...) may be the one
    refused memory (ENOMEM)."""
    return (
        group is not None and "memory" in group.dirs and isinstance(exc, OSError)
        and exc.errno == errno.ENOMEM
    )


def ipc_namespaces() -> bool:
    """Whether runs under a dropped uid get an IPC namespace of their own here (the host
    may make one, and the native spawn, when installed, can)."""
    return _mount_calls() is not None and (_native_spawn is None or _NATIVE_IPC)


def spawn_path() -> str:
    """How this process backend starts programs: ``"native"`` (the C spawn of
    ``neuroflow-native``) or ``"fork"`` (``subprocess`` with a Python pre-exec step)."""
    return "native" if _native_spawn is not None else "fork"


class _Stream:
    """Incrementally read, capped output of one pipe."""

    __slots__ = ("buf", "cap", "fd", "truncated")

    def __init__(self, fd: int, cap: int | None) -> None:
        self.fd = fd
        self.cap = cap
        self.buf = bytearray()
        self.truncated = False


class SandboxIsolator:
    """Run commands as local processes under resource limits (the ``process`` backend).

    Args:
        config: the limits (a :class:`SandboxConfig`, a mapping of its fields, or
            ``None`` for the defaults).
        gate: an :class:`~neuroflow.security.ActionGate` asked before each command
            and told how it ended; ``None`` (the default) uses the gate built from
            ``[security]`` of the active configuration; ``False`` runs without one.
        actor: who runs the commands, for the gate's audit records.

    Raises:
        UnsupportedLimitError: a setting this machine cannot enforce (no pids cgroup for
            ``max_processes``, network or seccomp off), unless the config allows weaker
            isolation.
    """

    #: How the gate and the audit log name this backend (a subclass names its own).
    component = "sandbox.process"
    #: The host's scratch directories: where a dedicated uid's leftovers are looked for
    #: after its runs (see :meth:`_scratch_reachable`).
    scratch_dirs: tuple[str, ...] = runas.SCRATCH_DIRS

    def __init__(
        self,
        config: SandboxConfig | Mapping[str, Any] | None = None,
        *,
        gate: Any = None,
        actor: str = "user",
    ) -> None:
        if config is None:
            config = SandboxConfig()
        elif not isinstance(config, SandboxConfig):
            from neuroflow.config import structure

            config = structure(config, SandboxConfig, path="sandbox.process")
        self.config: SandboxConfig = config
        from neuroflow.security.manager import resolve_gate

        self._gate = resolve_gate(gate, "SandboxIsolator")
        self._actor = actor
        self._closed = False
        self._tmp: str | None = None
        self._finalizer: weakref.finalize | None = None
        self._warnings: list[str] = []
        self._cgroups = self._plan()
        self._runas = self._plan_identity()
        identity = self._runas.identity
        # Who the program runs as, for finding programs that identity may execute.
        self._who = (identity.uid, identity.gid) if identity is not None else None
        self._leases: dict[str, runas.Lease] = {}
        # (work dir, uid, gid) -> (the directories above it as seen, _closed_ancestor)
        self._closed_cache: dict[tuple[str, int, int],
                                 tuple[list[tuple[int, int, int, int, int]], str | None]] = {}
        self._lease_busy: anyio.Event | None = None
        self._search_path = config.env.get("PATH") or os.environ.get("PATH", DEFAULT_PATH)
        self._base_env = self._build_env()
        # (work dir, identities of the allowed programs resolved there)
        self._allowed: tuple[str, frozenset[str]] | None = None
        self._rlimits = self._rlimit_values()
        self._strict = config.exact_rlimits or (
            config.security_level is SandboxSecurityLevel.STRICT
        ) or (
            self._cgroups is not None and cgroups.support().version == 2
        )
        # The child sets itself up before its exec (cgroups, rlimits, uid, no_new_privs).
        self._setup_in_child = self._strict or self._cgroups is not None or self._runas.drops
        # A run under another uid gets an IPC namespace of its own where the host may
        # make one: its SysV IPC objects and POSIX message queues end with it, and the
        # host's are out of its reach.  Elsewhere they are swept by uid after the run.
        self._new_ipc = self._runas.drops and ipc_namespaces()
        # A run under another uid gets a session keyring of its own (it would possess the
        # host's, whatever its uid); a dedicated uid's own keyrings, which outlive its
        # processes, are emptied (and locked) before each run, so one run cannot leave
        # keys for the next.
        self._keyrings = 0 if not self._runas.drops else (
            2 if self._runas.mode == "dedicated" else 1)
        if self._keyrings and not (_NATIVE_KEYRINGS if _native_spawn is not None
                                   else _keyctl() is not None):
            _weaker(config, "keyring isolation",
                    "this neuroflow-native build or this machine's Python cannot give runs "
                    "a session keyring of their own (runs could read the host's session "
                    "keyring and keys an earlier run of their uid left)", self._warnings)
            self._keyrings = 0
        self._prctl = _prctl() if self._setup_in_child else None
        # Whether the last run ended within _QUICK_RUN of its start, and how many runs are
        # waited for now (see _run_in).
        self._quick = False
        self._in_flight = 0

    # --- set-up ------------------------------------------------------------------------

    def _plan(self) -> cgroups.CgroupPool | None:
        cfg = self.config
        warnings = self._warnings
        info = cgroups.support()
        pool = cgroups.pool()
        if not cfg.enable_network or cfg.security_level is SandboxSecurityLevel.STRICT:
            _weaker(cfg, "enable_network=False" if not cfg.enable_network
                    else "security_level='strict' (network off)",
                    "the process backend cannot cut network access; use the 'namespace' "
                    "backend (pip install 'neuroflow[namespace]')", warnings)
        if cfg.enable_seccomp:
            _weaker(cfg, "enable_seccomp=True",
                    "the process backend does not filter system calls; use the 'namespace' "
                    "backend (pip install 'neuroflow[namespace]')", warnings)
        if pool is None:
            why = info.problem or "no usable cgroup"
            _weaker(cfg, "whole-process-tree kill",
                    f"needs a pids or memory cgroup ({why}); a process that leaves its "
                    "process group could survive", warnings)
            if cfg.max_processes is not None:
                _weaker(cfg, f"max_processes={cfg.max_processes}",
                        f"needs a pids cgroup ({why})", warnings)
        elif cfg.max_processes is not None and not info.pids:
            _weaker(cfg, f"max_processes={cfg.max_processes}",
                    "needs a pids cgroup, which this process cannot create", warnings)
        for name, value in (("work_dir_max_bytes", cfg.work_dir_max_bytes),
                            ("work_dir_max_files", cfg.work_dir_max_files)):
            if value is not None:
                _weaker(cfg, f"{name}={value}",
                        "the process backend cannot cap a directory's size or file count "
                        "(it needs disk quotas); the 'namespace' backend caps its "
                        "private /tmp and /dev/shm instead (tmp_size, shm_size)", warnings)
        return pool

    def _plan_identity(self) -> runas.RunAsPlan:
        cfg = self.config
        plan = runas.plan(cfg.run_as, cfg.dedicated_uid_base, cfg.dedicated_uid_count)
        if plan.drops:
            return plan
        why = ("root inside the sandbox can write its own cgroup limits, trace the host "
               "process and read its environment, keys and configuration")
        if cfg.security_level is SandboxSecurityLevel.STRICT:
            raise UnsupportedLimitError(
                f"security_level='strict': commands would run with the host's own uid "
                f"({plan.reason}); strict needs a host running as root, which drops each "
                "run to a dedicated uid (run_as='auto'), or the 'namespace' backend"
            )
        if os.geteuid() == 0:
            _weaker(cfg, f"run_as={cfg.run_as!r}", why, self._warnings)
        return plan

    def _rlimit_values(self) -> list[tuple[int, tuple[int, int]]]:
        cfg = self.config
        values: list[tuple[int, tuple[int, int]]] = [(_RLIMITS["core"], (0, 0))]
        if cfg.cpu_time_limit is not None:
            seconds = max(1, math.ceil(cfg.cpu_time_limit))
            # Soft limit sends SIGXCPU; the hard limit one second later is SIGKILL.
            values.append((_RLIMITS["cpu"], (seconds, _clamp(seconds + 1, _RLIMITS["cpu"]))))
        address_space = cfg.address_space_limit
        if address_space is None and cfg.memory_limit is not None and not (
            self._cgroups is not None and cgroups.support().memory
        ):
            address_space = cfg.memory_limit  # no memory cgroup: address space instead
        for key, value in (("as", address_space), ("nofile", cfg.max_open_files),
                           ("fsize", cfg.max_file_size)):
            if value is not None:
                value = _clamp(value, _RLIMITS[key])
                values.append((_RLIMITS[key], (value, value)))
        return values

    def _build_env(self) -> dict[str, str]:
        env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        if not self.config.inherit_env:
            env.update(self.config.env)
        return env

    def _run_env(self, cwd: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        """Defaults, then inherited host variables (read now), config ``env``, the
        current span's ``TRACEPARENT``, the call's."""
        from neuroflow.sandbox.guarded import traceparent_env

        cfg = self.config
        env = dict(self._base_env)
        if cfg.inherit_env:
            for name in cfg.inherit_env:
                value = os.environ.get(name)
                if value is not None:
                    env[name] = value
            env.update(cfg.env)
        env.setdefault("HOME", cwd)
        env.setdefault("TMPDIR", cwd)
        # The span running this command (run_guarded's): the program can continue the
        # trace.  A TRACEPARENT the call passes wins.
        env.update(traceparent_env())
        if extra:
            env.update(extra)
        return env

    def _work_dir(self) -> str:
        if self.config.work_dir is not None:
            path = os.path.abspath(os.path.expanduser(self.config.work_dir))
            if not os.path.isdir(path):
                try:
                    os.makedirs(path, exist_ok=True)
                except OSError as exc:
                    raise SandboxError(
                        f"work_dir: cannot create {path!r}: {exc.strerror}"
                    ) from None
            _refuse_config_inside(path)
            return path
        if self._tmp is None or not os.path.isdir(self._tmp):
            self._tmp = tempfile.mkdtemp(prefix="neuroflow-sandbox-")
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        return self._tmp

    # --- the allow-list ------------------------------------------------------------------

    def _check_allowed(self, command: str, executable: str | None, cwd: str) -> None:
        """Refuse ``command`` unless the program it resolved to is an allowed one.

        ``executable`` is what will run (``command`` resolved once, relative paths
        against ``cwd``), so the check and the run cannot disagree about the program.
        """
        allowed = self.config.allowed_commands
        if allowed is None:
            return
        if executable is not None:
            if self._allowed is None or self._allowed[0] != cwd:
                real = set()
                for entry in allowed:
                    found = resolve_command(entry, self._search_path, cwd, self._who)
                    if found:
                        real.add(_program_identity(found))
                self._allowed = (cwd, frozenset(real))
            if _program_identity(executable) in self._allowed[1]:
                return
        elif "/" not in command and command in allowed:
            return  # listed but not installed: the run reports it as not found
        raise CommandNotAllowedError(
            f"command {command!r} is not in allowed_commands ({', '.join(allowed)})"
        )

    def _check_env(self, env: Mapping[str, str] | None) -> None:
        """(strict) Refuse variables that make a program load other code than its own."""
        cfg = self.config
        if not env or cfg.security_level is not SandboxSecurityLevel.STRICT:
            return
        refused = sorted(name for name in env if is_dangerous_env(name)
                         and name not in cfg.allowed_dangerous_env)
        if refused:
            raise CommandNotAllowedError(
                f"env: {', '.join(refused)} may change what the program loads or runs; "
                "security_level='strict' refuses them unless listed in "
                "allowed_dangerous_env"
            )

    # --- running ---------------------------------------------------------------------------

    async def execute(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> SandboxResult:
        """Run ``command`` with ``args`` and return how it ended.

        Args:
            command: a program name (looked up on ``PATH``, shims resolved) or a path.
            args: its arguments.
            stdin: bytes for its standard input (``None``: empty input).
            env: extra environment variables for this run.
            timeout: wall-clock seconds (default: ``config.wall_timeout``).

        Raises:
            CommandNotAllowedError: the command is not in ``allowed_commands``.
            SecurityError: the gate denied it.
            SandboxError: an argument of the wrong type or value (the message names
                it), or the program cannot be found or started.
        """
        if self._closed:
            raise SandboxError("this SandboxIsolator is closed")
        args, stdin, env, timeout = check_call(command, args, stdin, env, timeout)
        cwd = self._work_dir()
        # Resolved once: the allow-list check and the run use this very path.
        # Nothing is executed to resolve it (shims are read, not run).
        executable = resolve_command(command, self._search_path, cwd, self._who)
        admitted = await self._admit(command, executable, cwd, args, env)

        def run() -> Any:
            return self._run(command, executable, cwd, args, stdin, env, timeout)

        if admitted is None:
            return await run()
        from neuroflow.sandbox.guarded import run_guarded

        return await run_guarded(self._gate, *admitted, run, env)

    async def _admit(self, command: str, executable: str | None, cwd: str,
                     args: Sequence[str], env: Mapping[str, str] | None
                     ) -> tuple[Any, Any] | None:
        """Check the allow list and (strict) the environment; with a gate, return the
        ``(action, context)`` to authorize (a refusal is audited before it is raised)."""
        if self._gate is None:
            self._check_allowed(command, executable, cwd)
            self._check_env(env)
            return None
        from neuroflow.sandbox.guarded import command_action, redacted_env

        action, context = command_action(command, args, self._actor, self.component,
                                         env=env, cwd=cwd, executable=executable,
                                         search_path=self._search_path)
        rule = "sandbox.allowed_commands"
        try:
            self._check_allowed(command, executable, cwd)
            rule = "sandbox.dangerous_env"
            self._check_env(env)
        except CommandNotAllowedError as exc:
            # Refused by the sandbox itself: nothing ran, but the refusal is audited.
            details = {"rule": rule, "reason": str(exc)}
            if env:
                details["env"] = redacted_env(self._gate, env)
            await self._gate.record_outcome(action, context, "denied", details)
            raise
        return action, context

    async def spawn(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> SandboxProcess:
        """Start ``command`` and return it running: a ``SandboxProcess`` (a
        :class:`~neuroflow.sandbox.spawned.ProcessHandle`, behind the gate's recorder when
        there is a gate) with ``stdin``/``stdout``/``stderr`` streams, ``wait()``,
        ``terminate()``, ``kill()`` and ``aclose()``.

        Everything :meth:`execute` applies holds: the allow list, the gate (asked now,
        told how the process ended when it is waited for), the clean environment, the
        run's uid, its cgroup and rlimits, the work directory; the whole tree dies with
        it.  Output is streamed, not kept, so ``max_output_bytes`` does not apply, and
        ``wall_timeout`` neither: ``timeout`` (default none) is the wall-clock limit.

        Raises:
            CommandNotAllowedError: the command is not in ``allowed_commands``.
            SecurityError: the gate denied it.
            SandboxError: a bad argument (named), or the program cannot be started.
        """
        if self._closed:
            raise SandboxError("this SandboxIsolator is closed")
        args, _, env, timeout = check_call(command, args, None, env, timeout)
        cwd = self._work_dir()
        executable = resolve_command(command, self._search_path, cwd, self._who)
        admitted = await self._admit(command, executable, cwd, args, env)

        async def start() -> ProcessHandle:
            return await self._start(command, executable, cwd, args, env, timeout)

        if admitted is None:
            return await start()
        from neuroflow.sandbox.guarded import spawn_guarded

        return await spawn_guarded(self._gate, *admitted, start, env)

    async def run_code(
        self,
        code: str,
        language: str = "python",
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        host_tools: HostTools | None = None,
    ) -> SandboxResult:
        """Run a Python program (``python3 -I``) in this sandbox, like :meth:`execute`.

        With ``host_tools`` the program may call those host functions as ``from host
        import tools; tools.NAME(...)`` (:mod:`neuroflow.sandbox.code_runner`), and
        ``result.host_calls`` lists every call it made.

        Raises:
            SandboxError: an unknown ``language`` or a ``code`` that is not a str.
            CommandNotAllowedError: ``python3`` is not in ``allowed_commands``.
            SecurityError: the gate denied it.
        """
        if language != "python":
            raise SandboxError(f"language: expected 'python', got {language!r}")
        if not isinstance(code, str):
            raise SandboxError(f"code: expected a str, got {type(code).__name__}")
        if host_tools is None:
            return await self.execute("python3", ["-I", "-c", code], env=env, timeout=timeout)
        if not isinstance(host_tools, HostTools):
            raise SandboxError(f"host_tools: expected a neuroflow.sandbox.HostTools, got "
                               f"{type(host_tools).__name__}")
        from neuroflow.sandbox.code_runner import run_python

        return await run_python(self.execute, self._work_dir(), code, host_tools, env=env,
                                timeout=timeout)

    def execute_sync(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> SandboxResult:
        """Blocking twin of :meth:`execute`, for code that is not async.

        Raises:
            SandboxError: when called from inside a running event loop (use ``await
                execute()`` there).
        """
        library = _running_event_loop()
        if library is not None:
            raise SandboxError(
                f"execute_sync() was called inside a running {library} event loop; "
                "use `await isolator.execute(...)` there"
            )
        return anyio.run(lambda: self.execute(command, args, stdin=stdin, env=env,
                                              timeout=timeout))

    def _spawn(
        self, argv: list[str], executable: str, cwd: str, env: dict[str, str],
        stdin_fd: int, out_w: int, err_w: int, group: cgroups.RunCgroup | None,
        identity: runas.Identity | None,
    ) -> _Proc:
        lease = self._leases.get(cwd) if identity is not None else None
        closed = lease.closed if lease is not None else None
        # Born in this process's scheduling group (when it has one), the run joins its own
        # cpu cgroup in it: its new session then costs no wait for a turn of its own.
        sched = group is not None and group.sched_dir is not None and (
            cgroups.enter_sched_group())
        if _native_spawn is not None:
            view = None
            if closed is not None and _mount_calls() is not None:
                view = (closed, _view_steps(cwd, closed))
            ids = (identity.uid, identity.gid, []) if identity is not None else (-1, -1, None)
            started = _native_spawn(
                executable, argv, [f"{name}={value}" for name, value in env.items()],
                cwd, [stdin_fd, out_w, err_w],
                # Opened once per cgroup: the child only writes to them.
                (group.join_fds(sched) if _NATIVE_JOIN_FDS else group.join_files(sched))
                if group is not None else [],
                *ids,
                [(which, soft, hard) for which, (soft, hard) in self._rlimits],
                self._setup_in_child, True, view=view,
                **({"new_ipc": True} if self._new_ipc else {}),
                **({"keyrings": self._keyrings} if self._keyrings else {}),
                # Too little memory to join or exec in: the child ends by SIGKILL, as
                # the OOM killer ends a forked child (it skips one sharing our memory).
                nomem_kill=group is not None and "memory" in group.dirs,
                **({"pidfd": True} if _NATIVE_PIDFD else {}),
            )
            return _Child(*started) if isinstance(started, tuple) else _Child(started)
        common: dict[str, Any] = dict(
            executable=executable, stdin=stdin_fd, stdout=out_w, stderr=err_w, cwd=cwd,
            env=env, close_fds=True, start_new_session=True, restore_signals=True,
        )
        if self._setup_in_child:
            return subprocess.Popen(
                argv, preexec_fn=self._preexec(group, identity, cwd, closed), **common)
        proc = subprocess.Popen(argv, **common)
        _prlimit_all(proc.pid, self._rlimits)
        return proc

    def _preexec(
        self, group: cgroups.RunCgroup | None, identity: runas.Identity | None,
        cwd: str = "", closed: str | None = None,
    ) -> Callable[[], None]:
        """The child's set-up between ``fork()`` and ``exec``, in this order: join the
        run cgroups (only the child ever enters them), rlimits (while still allowed to
        raise them), its own view of the work directory when a directory above it is
        closed to the run's uid (``closed``), an IPC namespace of its own (when the
        isolator gives runs one), a session keyring of its own, drop to the run's uid and
        gid with no supplementary groups, empty and lock that uid's keyrings, then
        ``no_new_privs`` (no set-uid program can give root back)."""
        limits = self._rlimits
        # With the thread in the scheduling group, the run's cpu cgroup comes last.
        procs = group.procs_files() if group is not None else []
        prctl = self._prctl
        calls = _mount_calls() if self._new_ipc else None
        unshare = calls[0] if calls is not None else None
        keyrings = self._keyrings
        keyctl = _keyctl() if keyrings else None
        ids = (identity.uid, identity.gid) if identity is not None else None
        view = _view_setup(cwd, closed) if closed is not None else None

        def setup() -> None:
            for path in procs:
                fd = os.open(path, os.O_WRONLY)
                os.write(fd, b"0")
                os.close(fd)
            for which, value in limits:
                resource.setrlimit(which, value)
            if view is not None:
                view()
            if unshare is not None and unshare(_CLONE_NEWIPC) != 0:
                raise OSError("unshare(CLONE_NEWIPC) failed")
            if keyctl is not None:
                _fresh_session_keyring(keyctl)
            if ids is not None:
                uid, gid = ids
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
            if keyctl is not None and keyrings >= 2:
                _clear_uid_keyrings(keyctl)
            if prctl is not None and prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise OSError("prctl(PR_SET_NO_NEW_PRIVS) failed")

        return setup

    # --- the run's identity ------------------------------------------------------------

    async def _lease_turn(self) -> anyio.Event | None:
        """Wait until no hand-over or give-back of this isolator is under way in a thread.

        Small ones run on the loop without awaiting, so they never interleave; a large one
        (see :meth:`_tree_job`) marks itself under way while a worker thread does it.
        """
        while self._lease_busy is not None:
            await self._lease_busy.wait()
        return None

    async def _tree_job(self, small: bool, job: Callable[[], object]) -> None:
        """Run ``job`` (a walk: hand-over, give-back, clean-up) on the loop when what it
        walks is ``small``, else in a worker thread, so that a run that leaves a million
        files cannot stall the event loop (and an everyday run pays no thread hand-off)."""
        if small:
            job()
            return
        busy = self._lease_busy = anyio.Event()
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(job)
        finally:
            self._lease_busy = None
            busy.set()

    async def _take_lease(self, cwd: str) -> runas.Lease | None:
        """The identity for a run in ``cwd``: runs overlapping in one work directory
        share one (it owns the directory while they run); the directory is handed over
        (a small one at once, a large one in a worker thread, see :meth:`_tree_job`)."""
        plan = self._runas
        if not plan.drops:
            return None
        if self._lease_busy is not None:
            await self._lease_turn()
        lease = self._leases.get(cwd)
        if lease is None:
            cfg = self.config
            if plan.mode == "dedicated":
                lease = runas.Lease.dedicated(cfg.dedicated_uid_base, cfg.dedicated_uid_count,
                                              scratch=self._scratch_reachable())
            else:
                assert plan.identity is not None
                # Only a dedicated uid's leftovers are cleaned: no snapshot to take.
                lease = runas.Lease(plan.identity, None, scratch=False)
            # Registered first: a run in the same directory that starts while the hand-over
            # runs in a thread waits for it (_lease_turn), then shares the lease.
            self._leases[cwd] = lease
            identity = lease.identity
            uid, gid, host = identity.uid, identity.gid, os.geteuid()
            try:
                if not runas.chown_small_tree(cwd, host, uid, gid, hand_over=True):
                    await self._tree_job(False, lambda: runas.chown_tree(
                        cwd, host, uid, gid, hand_over=True))
            except OSError as exc:
                del self._leases[cwd]
                lease.cleaned = True  # nothing ran as it
                lease.release()
                raise SandboxError(
                    f"work_dir: cannot hand {cwd!r} to uid {lease.identity.uid}: "
                    f"{exc.strerror}") from None
            lease.closed = self._closed_above(cwd, identity)
            if lease.closed is not None and _mount_calls() is None:
                note = (f"work_dir {cwd!r}: {lease.closed} is closed to the run's uid, so "
                        "programs there cannot open files by absolute path (`python3 "
                        "script.py` among them), and this host cannot give the run its own "
                        "view (no CAP_SYS_ADMIN); put work_dir where others may search")
                if note not in self._warnings:
                    self._warnings.append(note)
        lease.users += 1
        return lease

    def _closed_above(self, cwd: str, identity: runas.Identity) -> str | None:
        """:func:`_closed_ancestor`, remembered per work directory and uid for as long as
        the directories above it keep their identity, owner and mode."""
        parts = cwd.strip("/").split("/")[:-1]
        sign: list[tuple[int, int, int, int, int]] = []
        current = ""
        for part in parts:
            current += "/" + part
            try:
                st = os.stat(current)
            except OSError:
                sign.clear()
                break
            sign.append((st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid))
        key = (cwd, identity.uid, identity.gid)
        known = self._closed_cache.get(key)
        if sign and known is not None and known[0] == sign:
            return known[1]
        closed = _closed_ancestor(cwd, identity)
        if sign:
            if len(self._closed_cache) >= 64:
                self._closed_cache.clear()
            self._closed_cache[key] = (sign, closed)
        return closed

    def _scratch_reachable(self) -> bool:
        """Whether a run can create files in the host's scratch directories (``/tmp``,
        ``/var/tmp``, ``/dev/shm``), so that a dedicated uid's leftovers there must be
        looked for after it; a backend that gives runs their own says ``False``."""
        return True

    async def _return_lease(self, cwd: str, lease: runas.Lease) -> None:
        """The last run in ``cwd`` ended: remove what a dedicated uid left behind, give
        the work directory back to the host's uid, free the uid.  Large walks run in a
        worker thread (:meth:`_tree_job`); the uid is held until they are done."""
        lease.users -= 1
        if lease.users:
            return
        if self._lease_busy is not None:
            with anyio.CancelScope(shield=True):
                await self._lease_turn()
            if lease.users:
                return  # a run in this directory started meanwhile: it keeps the lease
        del self._leases[cwd]
        try:
            # First the work directory (it may itself be in /tmp), then the rest.
            uid, host, group = lease.identity.uid, os.geteuid(), os.getegid()
            if not runas.chown_small_tree(cwd, uid, host, group):
                await self._tree_job(False, lambda: runas.chown_tree(cwd, uid, host, group))
            if self._runas.mode == "dedicated":
                if not self._new_ipc:
                    lease.clean(cwd, kill=False, ipc=True, scratch=False)
                # Its processes died with the run cgroup; without one, find them by uid.
                kill = self._cgroups is None
                changed = lease.changed_scratch()
                if changed or kill:
                    # One pass over the changed directories (bounded) on the loop; the
                    # uid's directories found there, which may hold any number of files,
                    # are removed off it.
                    small = not kill and all(
                        runas.small_tree(d, 1024, recursive=False) for d in changed)
                    trees: list[str] = []
                    await self._tree_job(small, lambda: lease.clean_scratch(
                        changed, kill, trees))
                    if trees:
                        await self._tree_job(False, lambda: runas.remove_trees(trees))
            lease.cleaned = True
        finally:
            lease.release()

    async def _run(
        self,
        command: str,
        executable: str | None,
        cwd: str,
        args: Sequence[str],
        stdin: bytes | None,
        extra_env: Mapping[str, str] | None,
        timeout: float | None,
    ) -> SandboxResult:
        cfg = self.config
        if executable is None:
            raise SandboxError(
                f"command {command!r} not found (PATH={self._search_path!r}) or not executable"
            )
        env = self._run_env(cwd, extra_env)
        # argv[0] is the real path: interpreters find their prefix from it, and a name
        # looked up on the sandbox's PATH could find a different program than we ran.
        argv = [executable, *args]
        if self._runas.drops and executable.startswith(cwd.rstrip("/") + "/"):
            # A program in the work directory is run by a path relative to it: the child
            # is already there, and the directories above may be closed to its uid.
            executable = "./" + os.path.relpath(executable, cwd)
        timeout = cfg.wall_timeout if timeout is None else timeout
        lease = await self._take_lease(cwd)
        try:
            group = None
            if self._cgroups is not None:
                try:
                    group = self._cgroups.acquire(cfg.max_processes, cfg.memory_limit)
                except OSError as exc:
                    raise SandboxError(
                        f"cannot set up the run cgroup (max_processes={cfg.max_processes}, "
                        f"memory_limit={cfg.memory_limit}): {exc.strerror or exc}"
                    ) from None
            try:
                return await self._run_in(argv, executable, cwd, env, stdin, timeout, group,
                                          lease.identity if lease is not None else None)
            finally:
                if group is not None and self._cgroups is not None:
                    if group.emptied:
                        self._cgroups.release(group)
                    else:
                        # Removing a cgroup that may not be empty kills and waits: off
                        # the loop.
                        with anyio.CancelScope(shield=True):
                            await anyio.to_thread.run_sync(self._cgroups.release, group)
        finally:
            if lease is not None:
                # Never cancelled half-way: it waits only under shields of its own.
                await self._return_lease(cwd, lease)

    async def _run_in(
        self, argv: list[str], executable: str, cwd: str, env: dict[str, str],
        stdin: bytes | None, timeout: float | None, group: cgroups.RunCgroup | None,
        identity: runas.Identity | None = None,
    ) -> SandboxResult:
        cap = self.config.max_output_bytes
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # Only our ends are non-blocking (the flag belongs to the open file, not the fd);
        # a pipe end has no other status flag to keep.
        fcntl.fcntl(out_r, fcntl.F_SETFL, os.O_NONBLOCK)
        fcntl.fcntl(err_r, fcntl.F_SETFL, os.O_NONBLOCK)
        if stdin:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, in_w = _devnull(), -1
        open_fds = [out_r, out_w, err_r, err_w] + ([in_r, in_w] if in_w >= 0 else [])
        proc: _Proc | None = None
        poller: select.epoll | None = None
        self._in_flight += 1
        try:
            start = time.perf_counter()
            try:
                proc = self._spawn(argv, executable, cwd, env, in_r, out_w, err_w, group,
                                   identity)
            except (OSError, subprocess.SubprocessError) as exc:
                if _no_memory_to_start(exc, group):
                    assert group is not None
                    return self._no_memory_result(group, (time.perf_counter() - start) * 1e3)
                raise _cannot_start(exc, argv, executable, identity) from None
            pidfd = _take_pidfd(proc)
            open_fds.append(pidfd)
            for fd in (out_w, err_w, in_r) if in_w >= 0 else (out_w, err_w):
                os.close(fd)
                open_fds.remove(fd)
            state = _RunState(proc.pid, group)
            out, err = _Stream(out_r, cap), _Stream(err_r, cap)
            streams = {out_r: out, err_r: err}
            feed = memoryview(stdin or b"")
            deadline = math.inf if timeout is None else time.monotonic() + timeout
            exited = False
            wall = 0.0
            if self._quick and in_w < 0 and self._in_flight == 1:
                # A run like the last one, which ended at once, is waited for here a
                # moment, for its exit alone (its pipes close just before it exits: they
                # cannot wake us early), holding the loop at most _QUICK_RUN: no trip
                # through the event loop.  Then what it left in the pipes is read.
                pause = min(_QUICK_RUN, max(deadline - time.monotonic(), 0.0))
                if select.select((pidfd,), (), (), pause)[0]:
                    exited = True
                    wall = (time.perf_counter() - start) * 1000.0
                    # The main process is a zombie: its pid cannot be reused yet.
                    state.kill_rest(exited=True)
                    deadline = time.monotonic() + _DRAIN_GRACE
                    for stream_fd in (out_r, err_r):
                        if self._read(streams[stream_fd], state):
                            del streams[stream_fd]
            if not exited or streams:
                # One private epoll set for the pipes and the pidfd (and the deadline's
                # timerfd, once waiting is needed): a single task waits on it, instead of
                # a task per stream (much cheaper per run).
                poller = select.epoll(5)
                for stream_fd in streams:
                    poller.register(stream_fd, select.EPOLLIN)
                if not exited:
                    poller.register(pidfd, select.EPOLLIN)
                if in_w >= 0:
                    fcntl.fcntl(in_w, fcntl.F_SETFL, os.O_NONBLOCK)
                    poller.register(in_w, select.EPOLLOUT)
                alarm = -1  # the deadline's timerfd, made when the first wait needs it
                saw_eof = False
                spins = 0
                while not exited or streams:
                    if time.monotonic() >= deadline:
                        # Checked on every pass: a program that never stops writing never
                        # lets the poll below come back empty.
                        if exited:
                            break  # something escaped the kill and holds a pipe open
                        state.kill(TerminationReason.TIMED_OUT)
                        deadline = math.inf  # wait for the kill to land
                    events = poller.poll(0)
                    if not events and saw_eof and not exited and spins < 2:
                        # A pipe just closed: the program is almost always exiting right
                        # now, and a short blocking wait for its exit alone (the other pipe
                        # closes before it) beats another trip through the event loop.
                        spins += 1
                        if select.select((pidfd,), (), (), _EXIT_SPIN)[0]:
                            events = [(pidfd, select.EPOLLIN)]
                    saw_eof = False
                    if not events:
                        if deadline == math.inf or _deadline_fd is None:
                            with anyio.move_on_after(deadline - time.monotonic()):
                                await anyio.wait_readable(poller.fileno())
                            continue
                        if alarm < 0:
                            # The deadline as a timerfd in the same set: waiting costs one
                            # trip through the event loop and no timer of the loop's.
                            alarm = _deadline_fd(max(deadline - time.monotonic(), 1e-6))
                            open_fds.append(alarm)
                            poller.register(alarm, select.EPOLLIN)
                        await anyio.wait_readable(poller.fileno())
                        continue
                    for fd, _ in events:
                        if fd == pidfd:
                            exited = True
                            wall = (time.perf_counter() - start) * 1000.0
                            poller.unregister(pidfd)
                            # The main process is a zombie: its pid cannot be reused yet.
                            state.kill_rest(exited=True)
                            deadline = time.monotonic() + _DRAIN_GRACE
                            if alarm >= 0:
                                poller.unregister(alarm)
                                open_fds.remove(alarm)
                                os.close(alarm)
                                alarm = -1
                            # Its descriptors closed before it exited: what is left in the
                            # pipes is read now (one still open is shared with a process
                            # that escaped the tree; it was just killed, the loop waits).
                            for stream_fd in list(streams):
                                if self._read(streams[stream_fd], state):
                                    poller.unregister(stream_fd)
                                    del streams[stream_fd]
                        elif fd == alarm:
                            # The deadline passed: the check at the top of the loop acts.
                            poller.unregister(alarm)
                            open_fds.remove(alarm)
                            os.close(alarm)
                            alarm = -1
                        elif fd == in_w:
                            feed = self._feed(poller, in_w, feed, open_fds)
                            if not feed:
                                in_w = -1
                        elif fd in streams:
                            stream = streams[fd]
                            if self._read(stream, state):
                                poller.unregister(fd)
                                del streams[fd]
                                saw_eof = True
                    if (not exited or streams) and not saw_eof:
                        # The last pass needs no trip through the loop, nor does one that
                        # just saw a pipe close (the exit follows at once: the short wait
                        # above).
                        await anyio.lowlevel.checkpoint()
            self._quick = 0.0 < wall <= _QUICK_RUN * 1000.0
            await state.finish()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return self._result(proc.returncode, status, usage, wall, out, err, state, group)
        finally:
            self._in_flight -= 1
            if poller is not None:
                # Nothing waits on it any more: this task was the only waiter, and
                # wait_readable removes its reader however it ends.
                poller.close()
            for fd in open_fds:
                os.close(fd)
            if proc is not None and proc.returncode is None:
                with anyio.CancelScope(shield=True):
                    await _reap_after_kill(proc, group)

    async def _start(
        self, command: str, executable: str | None, cwd: str, args: Sequence[str],
        extra_env: Mapping[str, str] | None, timeout: float | None,
    ) -> ProcessHandle:
        """Spawn as :meth:`_run` does, with pipes for all three streams, and hand the
        process, its cgroup and its uid lease to a :class:`ProcessHandle`."""
        if executable is None:
            raise SandboxError(
                f"command {command!r} not found (PATH={self._search_path!r}) or not executable"
            )
        env = self._run_env(cwd, extra_env)
        argv = [executable, *args]
        if self._runas.drops and executable.startswith(cwd.rstrip("/") + "/"):
            executable = "./" + os.path.relpath(executable, cwd)
        cfg = self.config
        lease = await self._take_lease(cwd)
        group: cgroups.RunCgroup | None = None
        fds: list[int] = []
        try:
            if self._cgroups is not None:
                try:
                    group = self._cgroups.acquire(cfg.max_processes, cfg.memory_limit)
                except OSError as exc:
                    raise SandboxError(
                        f"cannot set up the run cgroup (max_processes={cfg.max_processes}, "
                        f"memory_limit={cfg.memory_limit}): {exc.strerror or exc}"
                    ) from None
            for _ in range(3):
                fds += os.pipe2(os.O_CLOEXEC)
            in_r, in_w, out_r, out_w, err_r, err_w = fds
            identity = lease.identity if lease is not None else None
            try:
                proc = self._spawn(argv, executable, cwd, env, in_r, out_w, err_w, group,
                                   identity)
            except (OSError, subprocess.SubprocessError) as exc:
                if _no_memory_to_start(exc, group):
                    raise SandboxError(
                        f"cannot start {argv[0]!r}: memory_limit={cfg.memory_limit} is too "
                        "small for the program to start") from None
                raise _cannot_start(exc, argv, executable, identity) from None
            pidfd = _take_pidfd(proc)
            fds.append(pidfd)
            for fd in (in_r, out_w, err_w):
                os.close(fd)
                fds.remove(fd)
            fds.remove(pidfd)
        except BaseException:
            for fd in fds:
                os.close(fd)
            if group is not None and self._cgroups is not None:
                self._cgroups.release(group)
            if lease is not None:
                with anyio.CancelScope(shield=True):
                    await self._return_lease(cwd, lease)
            raise
        state = _RunState(proc.pid, group)
        pool = self._cgroups

        async def release() -> None:
            try:
                if group is not None and pool is not None:
                    if group.emptied:
                        pool.release(group)
                    else:  # removing a cgroup that may not be empty kills and waits
                        await anyio.to_thread.run_sync(pool.release, group)
            finally:
                if lease is not None:
                    with anyio.CancelScope(shield=True):
                        await self._return_lease(cwd, lease)

        def report(code: int, status: int, usage: Any, wall: float) -> SandboxResult:
            return self._result(code, status, usage, wall, _Stream(-1, None),
                                _Stream(-1, None), state, group)

        def reaped(code: int) -> None:
            proc.returncode = code

        return ProcessHandle(pid=proc.pid, pidfd=pidfd, stdin_fd=in_w, stdout_fd=out_r,
                             stderr_fd=err_r, timeout=timeout, state=state, report=report,
                             release=release, on_reaped=reaped)

    def _no_memory_result(self, group: cgroups.RunCgroup, wall: float) -> SandboxResult:
        """The run's memory cgroup was too full for the program to join or exec in: the
        native spawn's child ended by SIGKILL (as the OOM killer ends a forked child), and
        was reaped."""
        peak = group.stats()[0]
        return SandboxResult(
            exit_code=-signal.SIGKILL, stdout=b"", stderr=b"", wall_time_ms=wall,
            cpu_time_ms=0.0, peak_memory_bytes=peak, reason=TerminationReason.MEMORY_LIMIT,
            signal=signal.SIGKILL, limits_hit=("memory",), warnings=tuple(self._warnings),
        )

    @staticmethod
    def _read(stream: _Stream, state: _RunState) -> bool:
        """Read what is available, up to ``_PASS_BYTES``; return True at end of file."""
        fd, buf, cap = stream.fd, stream.buf, stream.cap
        for _ in range(_PASS_BYTES // _READ_CHUNK):
            try:
                chunk = os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            if stream.truncated:
                continue
            if cap is not None and len(buf) + len(chunk) > cap:
                buf += chunk[: cap - len(buf)]
                stream.truncated = True
                state.kill(TerminationReason.OUTPUT_LIMIT)
            else:
                buf += chunk
        return False

    @staticmethod
    def _feed(poller: select.epoll, fd: int, data: memoryview, open_fds: list[int]
              ) -> memoryview:
        """Write what the pipe takes; close it when all is written or the reader left."""
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            return data
        except BrokenPipeError:
            data = data[:0]
        if not data:
            poller.unregister(fd)
            os.close(fd)
            open_fds.remove(fd)
        return data

    def _result(
        self, code: int, status: int, usage: Any, wall: float, out: _Stream, err: _Stream,
        state: _RunState, group: cgroups.RunCgroup | None,
    ) -> SandboxResult:
        cpu_ms = (usage.ru_utime + usage.ru_stime) * 1000.0
        peak: int | None = usage.ru_maxrss * 1024
        oom = mem_hit = pids_hit = False
        if group is not None:
            group_peak, oom, mem_hit, pids_hit = group.stats(clean_exit=code == 0)
            if group_peak is not None:
                peak = group_peak
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        limits_hit = []
        if mem_hit:
            limits_hit.append("memory")
        if pids_hit:
            limits_hit.append("processes")
        cpu_limit = self.config.cpu_time_limit
        cpu_hit = sig == signal.SIGXCPU or (
            sig == signal.SIGKILL and cpu_limit is not None
            and cpu_ms >= math.ceil(cpu_limit) * 1000.0
        )
        if cpu_hit:
            limits_hit.append("cpu")
        if out.truncated or err.truncated:
            limits_hit.append("output")
        if sig == signal.SIGXFSZ:
            limits_hit.append("file_size")
        if state.reason is not None:
            reason = state.reason
        elif oom and sig == signal.SIGKILL:
            reason = TerminationReason.MEMORY_LIMIT
        elif cpu_hit:
            reason = TerminationReason.CPU_LIMIT
        elif sig == signal.SIGXFSZ:
            reason = TerminationReason.FILE_SIZE_LIMIT
        elif pids_hit and code != 0:
            reason = TerminationReason.PROCESS_LIMIT
        elif sig is not None:
            reason = TerminationReason.SIGNALLED
        else:
            reason = TerminationReason.EXITED
        if state.reason is TerminationReason.TIMED_OUT:
            limits_hit.append("wall_time")
        return SandboxResult(
            exit_code=code, stdout=bytes(out.buf), stderr=bytes(err.buf), wall_time_ms=wall,
            cpu_time_ms=cpu_ms, peak_memory_bytes=peak, reason=reason, signal=sig,
            stdout_truncated=out.truncated, stderr_truncated=err.truncated,
            limits_hit=tuple(limits_hit), warnings=tuple(self._warnings),
        )

    # --- closing ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Remove the private work directory (if one was made); idempotent."""
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._tmp = None

    async def __aenter__(self) -> Self:
        """Return the isolator."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the isolator."""
        await self.aclose()

    def __repr__(self) -> str:
        return f"SandboxIsolator({self.config!r})"


def _cannot_start(exc: BaseException, argv: list[str], executable: str,
                  identity: runas.Identity | None) -> SandboxError:
    """The error for a program the spawn could not start."""
    why = getattr(exc, "strerror", None) or exc
    # the native spawn names the step that failed ("setuid: ..."); only exec is about access
    step = str(why).split(":", 1)[0] if ":" in str(why) else "exec"
    if identity is not None and step == "exec" and getattr(exc, "errno", None) in (
            errno.EACCES, errno.EPERM):
        why = (f"{why}: the run's uid {identity.uid} may not execute it (a "
               "directory above it may not be searchable by others, e.g. a "
               "0700 home directory); name a program outside it (a bare "
               "'python3' finds one the run may execute), or see run_as")
    return SandboxError(f"cannot start {argv[0]!r} ({executable}): {why}")


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise SandboxError(f"{name}: expected a string, got {value!r}")
    if "\0" in value:
        raise SandboxError(f"{name}: expected a string without NUL bytes, got {value!r}")
    return value


def check_call(
    command: object, args: object, stdin: object, env: object, timeout: object
) -> tuple[list[str], bytes | None, dict[str, str] | None, float | None]:
    """Check :meth:`SandboxIsolator.execute`'s arguments; return them normalized.

    Raises:
        SandboxError: naming the first bad argument and what was expected.
    """
    _text(command, "command")
    if not command:
        raise SandboxError("command: expected a non-empty string, got ''")
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise SandboxError(f"args: expected a list of strings, got {args!r}")
    checked_args = [_text(arg, f"args[{i}]") for i, arg in enumerate(args)]
    if stdin is not None:
        if not isinstance(stdin, (bytes, bytearray, memoryview)):
            raise SandboxError(
                f"stdin: expected bytes or None, got {stdin!r} ({type(stdin).__name__})"
                + ("; encode text first, e.g. text.encode()" if isinstance(stdin, str) else "")
            )
        stdin = bytes(stdin)
    checked_env: dict[str, str] | None = None
    if env is not None:
        if not isinstance(env, Mapping):
            raise SandboxError(f"env: expected a mapping of names to strings, got {env!r}")
        checked_env = {}
        for name, value in env.items():
            if not isinstance(name, str):
                raise SandboxError(f"env: expected string names, got {name!r}")
            if not name or "=" in name or "\0" in name:
                raise SandboxError(
                    f"env: invalid variable name {name!r} (non-empty, no '=' or NUL)"
                )
            checked_env[name] = _text(value, f"env[{name!r}]")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float))
        or not timeout > 0 or not math.isfinite(timeout)
    ):
        raise SandboxError(
            f"timeout: expected a positive number of seconds or None, got {timeout!r}"
        )
    return checked_args, stdin, checked_env, (None if timeout is None else float(timeout))


_null_fd = -1
_null_lock = threading.Lock()


def _devnull() -> int:
    """One read-only ``/dev/null`` descriptor for every run of the process (never closed).

    One per isolator would leak a descriptor for each isolator nobody closes.
    """
    global _null_fd
    if _null_fd < 0:
        with _null_lock:
            if _null_fd < 0:
                _null_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _null_fd


def _program_identity(path: str) -> str:
    """``path`` with its directories resolved but not the file itself.

    ``/bin/ls`` and ``/usr/bin/ls`` are the same program where ``/bin`` links to
    ``/usr/bin``; ``ls`` and ``rm`` stay different even where both link to one multi-call
    binary (busybox), so allowing one never allows the other.
    """
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _running_event_loop() -> str | None:
    """The name of the event loop running in this thread, if any."""
    import asyncio

    try:
        asyncio.get_running_loop()
        return "asyncio"
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None and getattr(trio.lowlevel, "in_trio_run", lambda: False)():
        return "trio"
    return None


_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
_mounts_fns: tuple[Callable[..., int], Callable[..., int]] | bool | None = False


def _mount_calls() -> tuple[Callable[..., int], Callable[..., int]] | None:
    """libc's ``unshare`` and ``mount`` when this process may make mount namespaces
    (``CAP_SYS_ADMIN``), else ``None``.  Loaded once, before any fork."""
    global _mounts_fns
    if _mounts_fns is False:
        found: tuple[Callable[..., int], Callable[..., int]] | None = None
        try:
            with open("/proc/self/status") as fh:
                caps = next(line for line in fh if line.startswith("CapEff:"))
            if int(caps.split()[1], 16) & (1 << 21):  # CAP_SYS_ADMIN
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                unshare, mount = libc.unshare, libc.mount
                unshare.argtypes = [ctypes.c_int]
                mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.c_ulong, ctypes.c_char_p]
                found = (unshare, mount)
        except (OSError, StopIteration, ValueError, AttributeError):
            found = None
        _mounts_fns = found
    return _mounts_fns  # type: ignore[return-value]


def _closed_ancestor(cwd: str, identity: runas.Identity) -> str | None:
    """The highest directory above ``cwd`` that ``identity`` may not search, if any."""
    parts = cwd.strip("/").split("/")[:-1]
    current = ""
    for part in parts:
        current += "/" + part
        if not runnable_by(current, identity.uid, identity.gid, search_only=True):
            return current
    return None


def _view_steps(cwd: str, closed: str) -> list[str]:
    """The directories from just below ``closed`` down to ``cwd``, to make in the view."""
    rest = cwd[len(closed) + 1:]
    return [closed + "/" + "/".join(rest.split("/")[: i + 1])
            for i in range(rest.count("/") + 1)]


def _view_setup(cwd: str, closed: str) -> Callable[[], None] | None:
    """A pre-exec step that gives the child a private mount namespace in which the work
    directory keeps its path but ``closed`` (a directory above it the run's uid may not
    search) is an empty, searchable tmpfs holding only the way down to the work
    directory (bound there): what else is in ``closed`` stays out of sight."""
    calls = _mount_calls()
    if calls is None:
        return None
    unshare, mount = calls
    target = cwd.encode()
    top = closed.encode()
    steps = _view_steps(cwd, closed)

    def view() -> None:
        if unshare(_CLONE_NEWNS) != 0:
            raise OSError("unshare(CLONE_NEWNS) failed")
        if mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            raise OSError("making the mount namespace private failed")
        # The child stands in the work directory: "." still names it once it is hidden.
        if mount(b"tmpfs", top, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=64k") != 0:
            raise OSError(f"mounting a tmpfs on {closed} failed")
        for step in steps:
            os.mkdir(step, 0o755)
        if mount(b".", target, None, _MS_BIND | _MS_REC, None) != 0:
            raise OSError(f"binding the work directory at {cwd} failed")
        os.chdir(cwd)

    return view

_prctl_fn: Callable[..., int] | None = None
# keyctl(2) by number (glibc has no wrapper), for the fork path.
_KEYCTL_NR = {"x86_64": 250, "aarch64": 219, "riscv64": 219}
_keyctl_fn: Callable[..., int] | bool | None = False


def _keyctl() -> Callable[..., int] | None:
    """``keyctl(2)`` through libc's ``syscall`` (loaded once, before any fork), or
    ``None`` on an architecture whose system call number is not listed here."""
    global _keyctl_fn
    if _keyctl_fn is False:
        number = _KEYCTL_NR.get(os.uname().machine)
        found: Callable[..., int] | None = None
        if number is not None:
            import ctypes

            syscall = ctypes.CDLL(None, use_errno=True).syscall
            syscall.restype = ctypes.c_long

            def found(*args: int) -> int:
                result = syscall(number, *(ctypes.c_long(a) for a in args))
                return -ctypes.get_errno() if result < 0 else result
        _keyctl_fn = found
    return _keyctl_fn  # type: ignore[return-value]


# keyctl(2) refused as a whole: no keys in this kernel, or a seccomp filter blocking the
# key system calls (Docker's default profile), which binds the program as well.
_NO_KEYRINGS = (errno.ENOSYS, errno.EPERM)


def _fresh_session_keyring(keyctl: Callable[..., int]) -> None:
    """(pre-exec, still the host's uid) Join a new, empty session keyring."""
    done = keyctl(1, 0)  # KEYCTL_JOIN_SESSION_KEYRING, anonymous
    if done < 0 and -done not in _NO_KEYRINGS:
        raise OSError(-done, "keyctl(KEYCTL_JOIN_SESSION_KEYRING) failed")


#: Possessor and user may view, read and search a locked keyring; nobody may write (add,
#: link, revoke) or set attributes (permissions).
LOCKED_KEYRING_PERM = 0x0B0B0000


def _lock_keyring(keyctl: Callable[..., int], ring: int, lock: bool = True) -> None:
    """Empty ``ring`` and, with ``lock``, lock it (:data:`LOCKED_KEYRING_PERM`), unless
    it is locked already (nothing was added since it was emptied) or unusable (revoked,
    expired, invalidated)."""
    import ctypes

    text = ctypes.create_string_buffer(256)
    size = keyctl(6, ring, ctypes.addressof(text), 256)  # KEYCTL_DESCRIBE
    if size < 0:
        if -size in (errno.EKEYREVOKED, errno.EKEYEXPIRED, errno.ENOKEY, *_NO_KEYRINGS):
            return
        raise OSError(-size, "keyctl(KEYCTL_DESCRIBE) failed")
    fields = text.raw[:min(size, 256)].split(b";")
    if len(fields) > 3 and fields[3] == b"%08x" % LOCKED_KEYRING_PERM:
        return
    done = keyctl(7, ring)  # KEYCTL_CLEAR
    if done >= 0 and lock:
        done = keyctl(5, ring, LOCKED_KEYRING_PERM)  # KEYCTL_SETPERM
    if done < 0:
        raise OSError(-done, "keyctl: emptying and locking the uid's keyrings failed")


def _clear_uid_keyrings(keyctl: Callable[..., int]) -> None:
    """(pre-exec, as the run's uid) Empty and lock its persistent, user and user-session
    keyrings: they outlive its processes, and a run must find nothing of an earlier run
    there, nor be able to leave anything, revoke them or change that."""
    # Linked into the (new) session keyring, the persistent keyring is possessed, which
    # emptying and locking it need; the links go again at the end.
    ring = keyctl(22, -1, -3)  # KEYCTL_GET_PERSISTENT, self, KEY_SPEC_SESSION_KEYRING
    if ring >= 0:
        # Emptied only: the kernel makes it without the attribute permission, so no one
        # can lock (or unlock) it; what a run adds is emptied before the next run.
        _lock_keyring(keyctl, ring, lock=False)
    elif -ring not in (errno.EOPNOTSUPP, errno.EKEYREVOKED, errno.EKEYEXPIRED,
                       *_NO_KEYRINGS):
        raise OSError(-ring, "keyctl(KEYCTL_GET_PERSISTENT) failed")
    for spec in (-4, -5):  # KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING
        keyctl(8, spec, -3)  # KEYCTL_LINK: possessed (a locked one refuses, needs none)
        _lock_keyring(keyctl, spec)
    cleared = keyctl(7, -3)  # the links go again
    if cleared < 0 and -cleared not in _NO_KEYRINGS:
        raise OSError(-cleared, "keyctl(KEYCTL_CLEAR) of the session keyring failed")


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (loaded once, before any fork), or ``None`` where it is missing."""
    global _prctl_fn
    if _prctl_fn is None:
        import ctypes

        try:
            function = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return None
        function.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        function.restype = ctypes.c_int
        _prctl_fn = function
    return _prctl_fn


def _refuse_config_inside(work_dir: str) -> None:
    """Refuse a work directory that holds a configuration file this process read
    (``neuroflow.toml``, a ``pyproject.toml`` with ``[tool.neuroflow]``): what is in the
    work directory is the sandboxed code's to change (it is handed to the run's uid), so
    it could rewrite the file and the next start would run without its guards."""
    from neuroflow.config import get_config

    try:
        files = get_config().files
    except (ConfigError, OSError):
        return  # a configuration that cannot be read is reported where it is used
    tops = {work_dir.rstrip("/") + "/", os.path.realpath(work_dir).rstrip("/") + "/"}
    for file in files:
        for candidate in (os.path.abspath(file), os.path.realpath(file)):
            if any(candidate.startswith(top) for top in tops):
                raise SandboxError(
                    f"work_dir: {work_dir!r} holds the configuration file {str(file)!r}; "
                    "the sandboxed code could rewrite it, and the next start would read "
                    "it: give the sandbox a folder of its own (a subfolder will do)")


def _take_pidfd(proc: Any) -> int:
    """A pidfd of the just-started ``proc``, for the caller to close: the one its spawn
    made, else a new one (nothing has reaped it yet, so its pid still names it)."""
    pidfd = getattr(proc, "pidfd", -1)
    if pidfd is not None and pidfd >= 0:
        proc.pidfd = -1
        return int(pidfd)
    return os.pidfd_open(proc.pid)


def _prlimit_all(pid: int, limits: list[tuple[int, tuple[int, int]]]) -> None:
    for which, value in limits:
        try:
            resource.prlimit(pid, which, value)
        except ProcessLookupError:
            return  # it already ended


async def _reap_after_kill(
    proc: _Proc, group: cgroups.RunCgroup | None
) -> None:
    """Cancelled or failed mid-run: kill the tree and reap, so nothing is left behind."""
    if group is not None:
        await group.kill_all_async()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.waitpid(proc.pid, 0)
    except ChildProcessError:
        pass
    proc.returncode = -signal.SIGKILL


class _RunState:
    """What the readers and the waiter share during one run."""

    __slots__ = ("group", "pid", "reason")

    def __init__(self, pid: int, group: cgroups.RunCgroup | None) -> None:
        self.pid = pid
        self.group = group
        self.reason: TerminationReason | None = None

    def kill(self, reason: TerminationReason) -> None:
        """End the whole tree now, for ``reason`` (the first reason wins)."""
        if self.reason is None:
            self.reason = reason
        self.kill_rest()

    def kill_rest(self, exited: bool = False) -> None:
        """SIGKILL every process of the run, without waiting (see :meth:`finish`).

        ``exited``: the main process has exited and is not reaped yet.
        """
        if self.group is not None:
            self.group.signal_all(zombies=1 if exited else 0)
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    async def finish(self) -> None:
        """Wait until every process of a run that was killed is gone (its cgroup empty)."""
        group = self.group
        if group is not None and not group.emptied and not await group.kill_all_async():
            raise SandboxError("could not kill every process of the run within 5 s")
