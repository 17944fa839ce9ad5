"""Per-run cgroups for the process sandbox: process count, memory, peak usage, tree kill.

Detection (:func:`support`) runs once per process.  Each run takes a :class:`RunCgroup`
from a small process-wide pool (creating a memory cgroup costs far more than a spawn),
configures its limits, puts the child in it *before* the child's first instruction, and
kills everything left in it at the end.

How the child gets in: only the child ever enters a run cgroup.  It writes its own pid
to each run cgroup's ``cgroup.procs`` in its pre-exec step (after ``fork()``, before the
``exec``, while it is still root and before it drops to the run's uid), so the program
is limited from its first instruction and no thread of the host is ever in a run cgroup
(an out-of-memory kill in a run cgroup can only pick the run's processes).

Every run writes every limit it asked for: a value cached from an earlier run would let a
limit changed in between (by the host's other code, or by a run that could write its
cgroup files) carry over.  The run cgroups belong to root and are not delegated: a run
that dropped to an unprivileged uid cannot write them.

Cgroups are created as children of this process's own cgroup in each hierarchy, so the
host's limits still apply to the sandbox.  They are named ``neuroflow-<pid>-<n>``; ones
left by a process that died are removed at the next detection.

The scheduling group.  Each run leads a session of its own (``setsid``).  Where the host
sits in the root cpu cgroup and the kernel's autogroup is on (a root process on a plain VM
or machine, not in a container), a new session is a new scheduling group at the top
level, so every run would first wait for its own turn behind whatever else the machine
runs (about a time slice, a millisecond or more under load, before its first
instruction).  There, the thread that starts runs is put in a cpu cgroup of this process
(``neuroflow-<pid>-cpu``, no limits; see :func:`enter_sched_group`), and each run in a
child cpu cgroup of it: the run is born in the group that is already running and its
``setsid`` changes nothing about scheduling.  A run still shares no weight with the host:
inside the group, the starting thread and each run weigh the same (a run's processes share
its own cgroup's weight), so a run cannot starve the host, nor another run, whatever it
forks; the group as a whole weighs what the host's session did.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import itertools
import os
import signal
import threading
import time

import anyio
import attrs

_PREFIX = "neuroflow-"
_POOL_SIZE = 8
_KILL_PAUSE = 0.0005  # first wait for killed processes to go; doubles up to the max
_KILL_PAUSE_MAX = 0.02
#: A finished run leaves a little kernel memory charged (per-CPU charge batches, slab);
#: a cgroup holding more than this (page cache of files it wrote) is not reused.
_REUSE_MAX_CHARGE = 4 * 1024 * 1024


def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


@attrs.frozen
class CgroupSupport:
    """What this process can do with cgroups.

    Attributes:
        version: 1 or 2 when per-run cgroups can be created, else ``None``.
        parents: controller -> the directory run cgroups are created in (our own cgroup).
        mounts: controller -> where its hierarchy is mounted.
        mounted: a human description of the cgroup mounts found.
        problem: why per-run cgroups cannot be used, when ``version`` is ``None``.
    """

    version: int | None
    parents: dict[str, str] = attrs.field(factory=dict)
    mounts: dict[str, str] = attrs.field(factory=dict)
    mounted: str = ""
    problem: str = ""
    #: the directory (the root of the v1 cpu hierarchy) this process's scheduling group
    #: is made in, or "" when runs need none (see the module docstring)
    sched: str = ""
    #: why there is no scheduling group, when ``sched`` is ""
    sched_note: str = ""

    @property
    def pids(self) -> bool:
        """Whether a process-count limit (pids controller) is available."""
        return "pids" in self.parents

    @property
    def memory(self) -> bool:
        """Whether a memory limit and peak (memory controller) is available."""
        return "memory" in self.parents

    @property
    def usable(self) -> bool:
        """Whether run cgroups can be created at all (tree kill by cgroup)."""
        return bool(self.parents)


def _mounts() -> tuple[dict[str, str], str | None]:
    """Return ``(v1 controller -> mount point, v2 mount point)``."""
    v1: dict[str, str] = {}
    v2: str | None = None
    try:
        text = _read("/proc/self/mounts")
    except OSError:
        return v1, v2
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mount_point, fstype, options = parts[1], parts[2], parts[3].split(",")
        if fstype == "cgroup":
            for option in options:
                if option in ("pids", "memory", "cpu", "cpuacct", "freezer"):
                    v1.setdefault(option, mount_point)
        elif fstype == "cgroup2" and v2 is None:
            v2 = mount_point
    return v1, v2


def _own_paths(proc_file: str = "/proc/self/cgroup") -> tuple[dict[str, str], str | None]:
    """Return ``(v1 controller -> our path, our v2 path)`` from ``/proc/<x>/cgroup``."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in _read(proc_file).splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            v2 = path
        for controller in controllers.split(","):
            v1[controller] = path
    return v1, v2


def _probe(parent: str, files: tuple[str, ...]) -> str:
    """Create and remove a test cgroup under ``parent``; return '' or the problem."""
    probe = os.path.join(parent, f"{_PREFIX}{os.getpid()}-probe")
    try:
        os.mkdir(probe)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"cannot create a cgroup in {parent}: {exc.strerror}"
    try:
        missing = [f for f in files if not os.path.exists(os.path.join(probe, f))]
        if missing:
            return f"{parent}: controller files missing ({', '.join(missing)})"
        return ""
    finally:
        try:
            os.rmdir(probe)
        except OSError:
            pass


def _sweep(parent: str) -> None:
    """Remove empty run cgroups left behind by processes that no longer exist (and the
    run cgroups in a scheduling group left behind, then the group)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        owner = name[len(_PREFIX) :].split("-", 1)[0]
        if not name.startswith(_PREFIX) or not owner.isdigit():
            continue
        if int(owner) == os.getpid() or os.path.exists(f"/proc/{owner}"):
            continue
        path = os.path.join(parent, name)
        if name.endswith(_SCHED_SUFFIX):
            try:
                inner = [n for n in os.listdir(path) if n.startswith(_PREFIX)]
            except OSError:
                inner = []
            for child in inner:
                try:
                    os.rmdir(os.path.join(path, child))
                except OSError:
                    pass
        try:
            os.rmdir(path)
        except OSError:
            pass


_SCHED_SUFFIX = "-cpu"


def _sched_parent(v1_mounts: dict[str, str], v1_paths: dict[str, str]) -> tuple[str, str]:
    """Where this process's scheduling group goes, or ``("", why not)``: only where a new
    session makes a new top-level scheduling group (autogroup on, this process in the
    root of a v1 cpu hierarchy) and this process may make cpu cgroups there."""
    mount = v1_mounts.get("cpu")
    if mount is None:
        return "", "no v1 cpu hierarchy (a new session does not change the run's group)"
    if v1_paths.get("cpu", "/") != "/":
        return "", ("this process has a cpu cgroup of its own: a run's new session keeps "
                    "it, no scheduling group is needed")
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as fh:
            enabled = fh.read().strip() == "1"
    except OSError:
        enabled = False
    if not enabled:
        return "", "the kernel's autogroup is off: a run's new session keeps its group"
    problem = _probe(mount, ("tasks",))
    if problem:
        return "", problem
    _sweep(mount)
    return mount, ""


def detect() -> CgroupSupport:
    """Find out (without caching) which cgroup controllers this process can use."""
    v1_mounts, v2_mount = _mounts()
    try:
        v1_paths, v2_path = _own_paths()
    except OSError as exc:
        return CgroupSupport(None, problem=f"cannot read /proc/self/cgroup: {exc.strerror}")
    described = [f"v1 {c}" for c in sorted(v1_mounts)]
    if v2_mount:
        described.append(f"v2 at {v2_mount}")
    mounted = ", ".join(described) or "none"
    problems: list[str] = []
    parents: dict[str, str] = {}
    wanted = {"pids": ("pids.max", "cgroup.procs"), "memory": ("memory.limit_in_bytes",)}
    for controller, files in wanted.items():
        if controller not in v1_mounts:
            continue
        parent = os.path.normpath(
            v1_mounts[controller] + "/" + v1_paths.get(controller, "/").lstrip("/")
        )
        problem = _probe(parent, files)
        if problem:
            problems.append(problem)
        else:
            parents[controller] = parent
            _sweep(parent)
    if parents:
        sched, note = _sched_parent(v1_mounts, v1_paths)
        return CgroupSupport(1, parents, {c: v1_mounts[c] for c in parents}, mounted,
                             sched=sched, sched_note=note)
    if v2_mount and v2_path is not None:
        parent = os.path.normpath(v2_mount + "/" + v2_path.lstrip("/"))
        try:
            enabled = _read(os.path.join(parent, "cgroup.subtree_control")).split()
        except OSError:
            enabled = []
        usable = [c for c in ("pids", "memory") if c in enabled]
        if usable:
            problem = _probe(parent, ("cgroup.procs",))
            if not problem:
                _sweep(parent)
                return CgroupSupport(
                    2, dict.fromkeys(usable, parent), dict.fromkeys(usable, v2_mount), mounted,
                    sched_note="cgroup v2: a run's new session keeps its group unless this "
                    "process sits in the root cgroup with the kernel's autogroup on",
                )
            problems.append(problem)
        else:
            problems.append(
                f"cgroup v2 at {parent}: pids/memory not enabled in cgroup.subtree_control"
            )
    if not v1_mounts and not v2_mount:
        problems.append("no cgroup file system is mounted")
    return CgroupSupport(None, {}, {}, mounted, "; ".join(problems))


_support: CgroupSupport | None = None
_support_lock = threading.Lock()


def support() -> CgroupSupport:
    """The cached result of :func:`detect`."""
    global _support
    if _support is None:
        with _support_lock:
            if _support is None:
                _support = detect()
    return _support


@attrs.define(eq=False)
class RunCgroup:
    """The cgroups of one run (one directory per controller; one directory on v2)."""

    version: int
    dirs: dict[str, str]
    _oom_base: int = 0
    _pids_base: int = 0
    _max_processes: int | None = None
    _has_memsw: bool | None = None
    _mem_max_base: int = 0
    _failcnt_dirty: bool = True
    _fresh: bool = True
    emptied: bool = False
    #: (path, flags) -> an open descriptor of one of the cgroup's control files
    _fds: dict[tuple[str, int], int] = attrs.field(factory=dict)
    _join: list[str] | None = None
    #: the run's cpu cgroup in this process's scheduling group (no limits), if any
    sched_dir: str | None = None
    _hot: dict[str, int] | None = None

    # --- the control files ---------------------------------------------------------------
    #
    # Each control file a run reads or writes is opened once per cgroup and kept open
    # (close-on-exec; a spawned child keeps only its fds 0-2): a run then costs one system
    # call per access instead of three.  ``cgroup.procs`` is the exception: on cgroup v1 a
    # descriptor that read it once keeps answering from the pid list it built then.

    def _fd(self, path: str, flags: int) -> int:
        key = (path, flags)
        fd = self._fds.get(key)
        if fd is None:
            fd = self._fds[key] = os.open(path, flags | os.O_CLOEXEC)
        return fd

    def _get(self, path: str) -> str:
        return os.pread(self._fd(path, os.O_RDONLY), 65536, 0).decode()

    def _put(self, path: str, value: str) -> None:
        os.pwrite(self._fd(path, os.O_WRONLY), value.encode(), 0)

    def close_files(self) -> None:
        """Close the control files this object keeps open."""
        fds, self._fds = self._fds, {}
        self._hot = None
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass

    # --- configuration -------------------------------------------------------------

    def _set(self, controller: str, name: str, value: str) -> None:
        self._put(self.dirs[controller] + "/" + name, value)

    def _files(self) -> dict[str, int]:
        """The control files every run reads or writes, opened once: name -> descriptor
        (``memsw``: ``memory.memsw.limit_in_bytes``, or on v2 ``memory.swap.max``, only
        where swap is accounted)."""
        files = self._hot
        if files is not None:
            return files
        files = {}
        read, write = os.O_RDONLY, os.O_WRONLY
        pids = self.dirs.get("pids")
        if pids is not None:
            files["pids.max"] = self._fd(pids + "/pids.max", write)
            files["pids.events"] = self._fd(pids + "/pids.events", read)
            files["pids.current"] = self._fd(pids + "/pids.current", read)
        memory = self.dirs.get("memory")
        if memory is not None:
            if self.version == 1:
                names = {"limit": ("memory.limit_in_bytes", write),
                         "max_usage": ("memory.max_usage_in_bytes", write),
                         "peak": ("memory.max_usage_in_bytes", read),
                         "failcnt": ("memory.failcnt", read),
                         "usage": ("memory.usage_in_bytes", read)}
                swap = "memory.memsw.limit_in_bytes"
            else:
                names = {"limit": ("memory.max", write), "events": ("memory.events", read),
                         "usage": ("memory.current", read)}
                swap = "memory.swap.max"
            for key, (name, flags) in names.items():
                files[key] = self._fd(f"{memory}/{name}", flags)
            if self._has_memsw is None:
                self._has_memsw = os.path.exists(f"{memory}/{swap}")
            if self._has_memsw:
                files["memsw"] = self._fd(f"{memory}/{swap}", write)
        self._hot = files
        return files

    def configure(self, max_processes: int | None, memory_limit: int | None) -> None:
        """Set this run's limits (and, for a new cgroup, the event-counter baselines)."""
        self._max_processes = max_processes
        self.emptied = False
        fresh, self._fresh = self._fresh, False
        files = self._files()
        if "pids" in self.dirs:
            os.pwrite(files["pids.max"], b"max" if max_processes is None
                      else b"%d" % max_processes, 0)
            if fresh:
                self._pids_base = _counter(self._get(self.dirs["pids"] + "/pids.events"), "max")
        if "memory" in self.dirs:
            if self.version == 1:
                self._configure_memory_v1(memory_limit, fresh, files)
            else:
                os.pwrite(files["limit"], b"max" if memory_limit is None
                          else b"%d" % memory_limit, 0)
                if "memsw" in files:
                    os.pwrite(files["memsw"], b"0" if memory_limit else b"max", 0)
                if fresh:
                    events = self._get(self.dirs["memory"] + "/memory.events")
                    self._oom_base = _counter(events, "oom_kill")
                    self._mem_max_base = _counter(events, "max")

    def _configure_memory_v1(self, memory_limit: int | None, fresh: bool,
                             files: dict[str, int]) -> None:
        base = self.dirs["memory"]
        value = b"-1" if memory_limit is None else b"%d" % memory_limit
        memsw = files.get("memsw")
        try:
            os.pwrite(files["limit"], value, 0)
        except OSError as exc:
            # Above the current memsw limit: memsw must stay >= the memory limit while
            # both change, so it is lifted first.
            if memsw is None or exc.errno != errno.EINVAL:
                raise
            os.pwrite(memsw, b"-1", 0)
            os.pwrite(files["limit"], value, 0)
        if memsw is not None:
            os.pwrite(memsw, value, 0)
        os.pwrite(files["max_usage"], b"0", 0)  # peak := current usage
        if self._failcnt_dirty:
            self._put(base + "/memory.failcnt", "0")
            if self._has_memsw:
                self._put(base + "/memory.memsw.failcnt", "0")
            self._failcnt_dirty = False
        if fresh:
            self._oom_base = _counter(self._get(base + "/memory.oom_control"), "oom_kill")

    # --- joining ---------------------------------------------------------------------

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files the child writes itself into before its exec: the
        limits' (pids, memory) and, when the calling thread is in this process's
        scheduling group (so the child is born there), the run's cpu cgroup in it, last.
        A backend that starts its children its own way gets the same placement."""
        files = self._limit_procs_files()
        if self.sched_dir is not None and in_sched_group():
            files.append(self.sched_dir + "/cgroup.procs")
        return files

    def _limit_procs_files(self) -> list[str]:
        return sorted({d + "/cgroup.procs" for d in self.dirs.values()})

    def join_files(self, sched: bool = False) -> list[str]:
        """The files a child that is a single thread writes ``0`` to, to join the cgroups.

        On cgroup v1 that is ``tasks``: a write of one thread skips the threadgroup lock
        whose taking can wait for an RCU grace period (milliseconds); ``cgroup.procs``
        elsewhere.  Found once per cgroup.  ``sched``: the child is born in this process's
        scheduling group (:func:`enter_sched_group`), so it joins the run's cpu cgroup in
        it too (last: the others' limits hold first).
        """
        if self._join is None:
            files = []
            for procs in self._limit_procs_files():
                tasks = procs[: -len("cgroup.procs")] + "tasks"
                files.append(tasks if self.version == 1 and os.path.exists(tasks) else procs)
            self._join = files
        if sched and self.sched_dir is not None:
            return [*self._join, self.sched_dir + "/tasks"]
        return self._join

    def join_fds(self, sched: bool = False) -> list[int]:
        """:meth:`join_files`, opened for writing and kept open with the cgroup's other
        control files (close-on-exec, above fd 2): a child that writes ``0`` to them joins
        without opening anything itself."""
        fds = []
        for path in self.join_files(sched):
            fd = self._fds.get((path, -1))
            if fd is None:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                if fd < 3:  # never where a child's fd map puts its stdin, stdout, stderr
                    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
                    os.close(fd)
                    fd = moved
                self._fds[(path, -1)] = fd
            fds.append(fd)
        return fds

    # --- ending ------------------------------------------------------------------------

    def pids(self) -> list[int]:
        """Process ids currently in the run cgroup."""
        directory = self.dirs.get("pids") or next(iter(self.dirs.values()))
        return [int(p) for p in _read(directory + "/cgroup.procs").split()]

    def signal_all(self, zombies: int = 0) -> bool:
        """SIGKILL every process in the run cgroup once, without waiting; True if empty.

        After the first process is seen, no new ones can be made (``pids.max`` is 0), so
        :meth:`kill_all` / :meth:`kill_all_async` only have to wait for these to go.

        ``zombies``: how many members the caller knows to have exited and not yet been
        reaped (the run's main process, right after it exited).  A zombie is charged to
        ``pids.current`` until it is reaped but no longer listed in ``cgroup.procs``, so
        a count no higher than that says "nothing else is left" with one read of an open
        file instead of listing the members.
        """
        if zombies and "pids" in self.dirs and int(
            os.pread(self._files()["pids.current"], 64, 0)
        ) <= zombies:
            self.emptied = True
            return True
        pids = self.pids()
        if not pids:
            # Nothing is left that could fork or join: it stays empty.
            self.emptied = True
            return True
        if "pids" in self.dirs:
            # No new processes from here on, so the waiting loop cannot be outrun.
            self._set("pids", "pids.max", "0")
            pids = self.pids()
        if self.version == 2:
            kill_file = self.dirs[next(iter(self.dirs))] + "/cgroup.kill"
            if os.path.exists(kill_file):
                self._put(kill_file, "1")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return False

    def kill_all(self, deadline: float = 5.0) -> bool:
        """SIGKILL every process in the run cgroup until it is empty; True if it emptied.

        Blocks the calling thread while it waits: from async code use
        :meth:`kill_all_async`.
        """
        if self.signal_all():
            return True
        end = time.monotonic() + deadline
        pause = _KILL_PAUSE
        while not self.signal_all():
            if time.monotonic() > end:
                return False
            time.sleep(pause)
            pause = min(pause * 2, _KILL_PAUSE_MAX)
        return True

    async def kill_all_async(self, deadline: float = 5.0) -> bool:
        """:meth:`kill_all` that waits with ``anyio.sleep``: other tasks keep running."""
        if self.signal_all():
            return True
        end = time.monotonic() + deadline
        pause = _KILL_PAUSE
        while not self.signal_all():
            if time.monotonic() > end:
                return False
            await anyio.sleep(pause)
            pause = min(pause * 2, _KILL_PAUSE_MAX)
        return True

    def stats(self, clean_exit: bool = False) -> tuple[int | None, bool, bool, bool]:
        """Return ``(peak memory, oom killed, memory limit hit, process limit hit)``.

        ``clean_exit``: the program exited with status 0, so only a cheap check for
        memory-limit trouble is needed.  Also carries the event counters over as the
        next run's baselines.
        """
        peak: int | None = None
        oom = mem_hit = pids_hit = False
        files = self._files()
        if "memory" in self.dirs:
            base = self.dirs["memory"]
            if self.version == 1:
                peak = int(os.pread(files["peak"], 64, 0))
                mem_hit = int(os.pread(files["failcnt"], 64, 0)) > 0
                if mem_hit or not clean_exit:
                    # With swap accounting the memsw limit may be the one that was hit.
                    if self._has_memsw:
                        mem_hit = mem_hit or int(
                            self._get(base + "/memory.memsw.failcnt")) > 0
                    kills = _counter(self._get(base + "/memory.oom_control"), "oom_kill")
                    oom, self._oom_base = kills > self._oom_base, kills
                    mem_hit = mem_hit or oom
                self._failcnt_dirty = self._failcnt_dirty or mem_hit
            else:
                try:
                    peak = int(self._get(base + "/memory.peak"))
                except OSError:
                    peak = None
                events = os.pread(files["events"], 65536, 0).decode()
                kills = _counter(events, "oom_kill")
                oom, self._oom_base = kills > self._oom_base, kills
                mem_hit = oom or _counter(events, "max") > self._mem_max_base
                self._mem_max_base = _counter(events, "max")
        if "pids" in self.dirs:
            hits = _counter(os.pread(files["pids.events"], 4096, 0).decode(), "max")
            pids_hit, self._pids_base = hits > self._pids_base, hits
        return peak, oom, mem_hit, pids_hit

    def reusable(self, empty: bool = False) -> bool:
        """Whether the cgroup is empty and holds no memory charge (safe to reuse).

        ``empty``: the caller has just seen it empty (skips one read).
        """
        if not empty and self.pids():
            return False
        if "memory" in self.dirs:
            return int(os.pread(self._files()["usage"], 64, 0)) <= _REUSE_MAX_CHARGE
        return True

    def remove(self) -> None:
        """Remove the cgroup directories (after killing anything left)."""
        try:
            self.kill_all(deadline=1.0)
        finally:
            self.close_files()
        directories = list(self.dirs.values())
        if self.sched_dir is not None:
            directories.append(self.sched_dir)
        for directory in directories:
            for _ in range(50):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    time.sleep(0.002)


def _write_bytes(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class CgroupPool:
    """A process-wide pool of run cgroups; empty ones are reused, the rest removed."""

    def __init__(self, info: CgroupSupport) -> None:
        self._info = info
        self._idle: list[RunCgroup] = []
        self._lock = threading.Lock()
        self._names = itertools.count()
        # The scheduling group first: at exit the pool's cgroups (some in the group) go
        # before the group does (atexit runs the last registered first).
        sched_group()
        atexit.register(self.clear)

    def _create(self) -> RunCgroup:
        name = f"{_PREFIX}{os.getpid()}-{next(self._names)}"
        dirs: dict[str, str] = {}
        made: list[str] = []
        try:
            for controller, parent in self._info.parents.items():
                directory = os.path.join(parent, name)
                if directory not in dirs.values():
                    os.mkdir(directory)
                    made.append(directory)
                dirs[controller] = directory
            group = sched_group()
            sched = None
            if group is not None:
                try:
                    os.mkdir(os.path.join(group, name))
                    sched = os.path.join(group, name)
                    made.append(sched)
                except OSError:
                    sched = None  # the run stays where it is born, in the group
        except OSError:
            for directory in reversed(made):
                try:
                    os.rmdir(directory)
                except OSError:
                    pass
            raise
        return RunCgroup(self._info.version or 1, dirs, sched_dir=sched)

    def acquire(self, max_processes: int | None, memory_limit: int | None) -> RunCgroup:
        """Return an idle run cgroup (or a new one) configured with these limits."""
        with self._lock:
            group = self._idle.pop() if self._idle else None
        if group is not None:
            try:
                group.configure(max_processes, memory_limit)
                return group
            except OSError as exc:
                # EBUSY: a reused cgroup still holds more charge than the new memory
                # limit allows; a fresh one starts from zero.
                if exc.errno != errno.EBUSY:
                    raise
                group.remove()
        group = self._create()
        try:
            group.configure(max_processes, memory_limit)
        except OSError:
            group.remove()
            raise
        return group

    def release(self, group: RunCgroup) -> None:
        """Give back a run cgroup whose processes have all been killed."""
        try:
            reuse = group.reusable(empty=group.emptied)
        except OSError:
            reuse = False
        if reuse:
            with self._lock:
                if len(self._idle) < _POOL_SIZE:
                    self._idle.append(group)
                    return
        group.remove()

    def clear(self) -> None:
        """Remove every idle run cgroup (called at interpreter exit)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for group in idle:
            group.remove()


_sched: str | bool | None = False
_sched_guard = threading.Lock()
_sched_thread = threading.local()


def sched_group() -> str | None:
    """This process's scheduling group (made on first use), or ``None`` where runs need
    none or it cannot be made (see the module docstring)."""
    global _sched
    if _sched is False:
        with _sched_guard:
            if _sched is False:
                parent = support().sched
                found: str | None = None
                if parent:
                    path = os.path.join(parent, f"{_PREFIX}{os.getpid()}{_SCHED_SUFFIX}")
                    try:
                        os.mkdir(path)
                    except FileExistsError:
                        pass
                    except OSError:
                        path = ""
                    found = path or None
                    if found is not None:
                        atexit.register(_leave_sched_group, found, parent)
                _sched = found
    return _sched  # type: ignore[return-value]


def enter_sched_group() -> bool:
    """Put the calling thread in this process's scheduling group, once per thread; return
    whether it is there, so that the children it starts are born in the group and may
    join their run's cpu cgroup in it.

    A thread that has a cpu cgroup of its own already stays where it is (a run's new
    session keeps the group it is born in there): ``False``.
    """
    inside = getattr(_sched_thread, "inside", None)
    if inside is not None:
        return inside
    group = sched_group()
    inside = False
    if group is not None:
        try:
            with open("/proc/thread-self/cgroup") as fh:
                lines = fh.read().splitlines()
            cpu = next((line.split(":", 2)[2] for line in lines
                        if "cpu" in line.split(":", 2)[1].split(",")), None)
            if cpu == "/":
                _write(group + "/tasks", str(threading.get_native_id()))
                inside = True
            else:
                inside = cpu == "/" + os.path.basename(group)
        except (OSError, IndexError):
            inside = False
    _sched_thread.inside = inside
    return inside


def in_sched_group() -> bool:
    """Whether the calling thread sits in this process's scheduling group (see
    :func:`enter_sched_group`): the children it starts are born there."""
    return bool(getattr(_sched_thread, "inside", False))


def _leave_sched_group(group: str, parent: str) -> None:
    """(at interpreter exit, after the pool's cgroups are gone) Move the exiting thread
    back where it came from and remove the group; one that still holds a thread of this
    process is left to the next process's sweep."""
    if getattr(_sched_thread, "inside", False):
        try:
            _write(parent + "/tasks", str(threading.get_native_id()))
        except OSError:
            return
    try:
        os.rmdir(group)
    except OSError:
        pass


def _forget_sched_after_fork() -> None:
    """A forked child is a new process: its threads' flags and its group are its own."""
    global _sched, _sched_thread, _sched_guard
    inside = getattr(_sched_thread, "inside", None)
    _sched_thread = threading.local()
    _sched_guard = threading.Lock()
    if _sched not in (False, None):
        # The forking thread is still in its parent's group: fine for this process's
        # runs (they are born there); this process makes run cgroups in that group.
        _sched_thread.inside = inside


os.register_at_fork(after_in_child=_forget_sched_after_fork)


_pool: CgroupPool | None = None


def pool() -> CgroupPool | None:
    """The process-wide pool, or ``None`` when cgroups cannot be used."""
    global _pool
    if _pool is None:
        info = support()
        if info.version is None:
            return None
        with _support_lock:
            if _pool is None:
                _pool = CgroupPool(info)
    return _pool
