"""Who a sandboxed command runs as: dropping root to a dedicated uid per run.

Root inside the process sandbox could undo its own limits (write its cgroup files, trace
the host, read its environment and keys).  So when the host is root, each run gets an
unprivileged uid of its own (``dedicated_uid_base`` .. ``+ dedicated_uid_count``, gid =
uid, no supplementary groups), taken with a lock file so that no two runs on the machine
share one, and everything that uid left behind (files in ``/tmp``, ``/var/tmp``,
``/dev/shm``, ``/dev/mqueue`` and ``/run/lock``, SysV IPC objects, keyrings, processes)
is removed when the run ends (keyrings: before the uid's next run).  A uid whose run
ended and was cleaned up stays locked by this process, in a small pool, for its next run
here (taking it again costs no system call); only a uid that was cleaned up completely
goes back to the pool.  Where the host
may (``CAP_SYS_ADMIN``), each run has an IPC namespace of its own instead, so its SysV IPC
objects and POSIX message queues vanish with it; :func:`remove_sysv_ipc` is the sweep by
uid for hosts that may not.  The work directory is handed to
the run's uid for the run and given back to the host afterwards.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import itertools
import logging
import os
import pwd
import shutil
import signal
import stat
import threading
from typing import Any

import attrs

from neuroflow.errors import ConfigError, UnsupportedLimitError

try:  # the bounded walk in C (neuroflow-native), when installed
    from neuroflow_native import chown_tree as _native_chown_tree
except ImportError:
    _native_chown_tree = None

#: Where the per-uid lock files live (root only).
LOCK_DIR = "/run/neuroflow/uids"
#: World-writable places a run's uid can leave files in; cleaned after each run
#: (``/dev/mqueue``: POSIX message queues made through the file system, where it is
#: mounted; ``/run/lock``: sticky and writable by anyone on Debian-like systems, and
#: ``/var/lock`` usually links to it).  Those that exist are used, each once.
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock", "/var/lock",
                "/var/crash")
_scratch: tuple[str, ...] | None = None


def scratch_dirs() -> tuple[str, ...]:
    """The scratch directories of this machine: :data:`SCRATCH_DIRS` with their links
    resolved, each once (found once per process)."""
    global _scratch
    if _scratch is None:
        found: list[str] = []
        for directory in SCRATCH_DIRS:
            real = os.path.realpath(directory)
            if real not in found and os.path.isdir(real):
                found.append(real)
        _scratch = tuple(found)
    return _scratch
_TRIES = 512
_RELEASED = b" " * 20 + b"\n"
#: How many cleaned-up uids a process keeps locked for its next runs (per uid range).
_IDLE_MAX = 8
_log = logging.getLogger("neuroflow.sandbox")


@attrs.frozen
class Identity:
    """A uid/gid a run may execute as (``uid`` is ``None``: the host's own)."""

    uid: int
    gid: int


@attrs.frozen
class RunAsPlan:
    """What an isolator does about identities, decided once at construction.

    Attributes:
        mode: ``"dedicated"`` (a fresh uid per run), ``"fixed"`` (``identity``), or
            ``"host"`` (the host's own uid: nothing is dropped).
        identity: the fixed identity, or a representative dedicated one (for checking
            which programs a run may execute: a dedicated uid owns no files).
        reason: for ``"host"``: why nothing is dropped.
    """

    mode: str
    identity: Identity | None = None
    reason: str = ""

    @property
    def drops(self) -> bool:
        """Whether runs execute under another uid than the host's."""
        return self.mode != "host"


def plan(run_as: str, base: int, count: int) -> RunAsPlan:
    """Decide how runs are identified for ``run_as`` on this host.

    Raises:
        ConfigError: an unknown user, or a setting that needs root on a non-root host.
    """
    root = os.geteuid() == 0
    if run_as == "root":
        if not root:
            raise ConfigError("run_as: 'root' needs a host running as root")
        return RunAsPlan("host", reason="run_as='root' keeps the host's root identity")
    if run_as in ("auto", "dedicated"):
        if root:
            return RunAsPlan("dedicated", Identity(base, base))
        if run_as == "dedicated":
            raise ConfigError("run_as: 'dedicated' needs a host running as root "
                              "(an unprivileged process cannot change its uid)")
        return RunAsPlan("host", reason=f"the host runs as uid {os.geteuid()}, not root: "
                                        "it cannot switch to another uid")
    identity = named_identity(run_as)
    if identity.uid == os.geteuid():
        if root:
            return RunAsPlan("host", reason=f"run_as={run_as!r} is root")
        return RunAsPlan("host", reason=f"run_as={run_as!r} is the host's own uid")
    if not root:
        raise ConfigError(f"run_as: switching to {run_as!r} needs a host running as root")
    return RunAsPlan("fixed", identity)


def named_identity(run_as: str) -> Identity:
    """The uid and primary gid of a user name or a numeric uid.

    Raises:
        ConfigError: there is no such user (a number without a passwd entry gets gid = uid).
    """
    if run_as.isdigit():
        uid = int(run_as)
        try:
            return Identity(uid, pwd.getpwuid(uid).pw_gid)
        except KeyError:
            return Identity(uid, uid)
    try:
        entry = pwd.getpwnam(run_as)
    except KeyError:
        raise ConfigError(
            f"run_as: expected 'auto', 'dedicated', 'root', a user name or a uid; "
            f"there is no user named {run_as!r} on this machine"
        ) from None
    return Identity(entry.pw_uid, entry.pw_gid)


_lock_fd = -1
_lock_guard = threading.Lock()


def _lock_dir() -> int:
    """A descriptor of :data:`LOCK_DIR`, checked (a directory of root's, mode 0700) and
    opened once per process; lock files are opened relative to it."""
    global _lock_fd
    if _lock_fd >= 0:
        return _lock_fd
    with _lock_guard:
        if _lock_fd >= 0:
            return _lock_fd
        try:
            os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
            fd = os.open(LOCK_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise UnsupportedLimitError(
                f"run_as: cannot create the uid lock directory {LOCK_DIR}: {exc.strerror}"
            ) from None
        st = os.fstat(fd)
        if st.st_uid != 0 or st.st_mode & 0o077:
            os.close(fd)
            raise UnsupportedLimitError(
                f"run_as: {LOCK_DIR} must be a directory owned by root with mode 0700"
            )
        _lock_fd = fd
        return fd


def _forget_lock_dir() -> None:
    """The lock directory went away (someone removed /run/neuroflow): open it again."""
    global _lock_fd
    with _lock_guard:
        if _lock_fd >= 0:
            os.close(_lock_fd)
        _lock_fd = -1


_start = itertools.count(os.getpid() * 7919)


class _Hold:
    """A dedicated uid this process holds: the ``flock`` of its lock file."""

    __slots__ = ("fd", "uid")

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self.fd = fd

    def free(self, clean: bool) -> None:
        """Unlock the uid; ``clean``: everything it left was removed, so the lock file is
        blanked (a lock file that still names a holder makes the next taker clean up
        everywhere first)."""
        if clean:
            # Blank the holder's pid (a write of the same length costs a fraction of a
            # truncate on tmpfs): a lock file that names no one was released cleanly.
            os.pwrite(self.fd, _RELEASED, 0)
        os.close(self.fd)


#: (base, count) -> uids this process holds, cleaned up and free for its next run
_idle: dict[tuple[int, int], list[_Hold]] = {}
_idle_guard = threading.Lock()


def _drop_idle() -> None:
    """Unlock every idle uid, blanking its lock file (at interpreter exit)."""
    with _idle_guard:
        holds = [hold for pool in _idle.values() for hold in pool]
        _idle.clear()
    for hold in holds:
        try:
            hold.free(clean=True)
        except OSError:
            pass


def _forget_idle_after_fork() -> None:
    """In a forked child: the idle uids are its parent's (the lock is shared through the
    inherited descriptors), never the child's to run as."""
    global _idle_guard
    _idle_guard = threading.Lock()
    for pool in _idle.values():
        for hold in pool:
            try:
                os.close(hold.fd)
            except OSError:
                pass
    _idle.clear()


atexit.register(_drop_idle)
os.register_at_fork(after_in_child=_forget_idle_after_fork)


def _lock_free_uid(base: int, count: int) -> tuple[_Hold, bool]:
    """Lock a uid of ``base .. base + count - 1`` that no process holds; return it and
    whether its last holder did not release it cleanly (it died mid-run).

    Raises:
        UnsupportedLimitError: every uid of the range is in use.
    """
    directory = _lock_dir()
    first = next(_start)
    for step in range(min(count, _TRIES)):
        uid = base + (first + step) % count
        try:
            fd = os.open(str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o600, dir_fd=directory)
        except FileNotFoundError:
            if step:
                raise
            # The directory was removed under us: a lock in it would lock nothing
            # that another process could see.
            _forget_lock_dir()
            directory = _lock_dir()
            fd = os.open(str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o600, dir_fd=directory)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        stale = os.pread(fd, 32, 0)
        os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
        return _Hold(uid, fd), bool(stale.strip())
    raise UnsupportedLimitError(
        f"run_as: no free uid in {base}..{base + count - 1} (dedicated_uid_base, "
        "dedicated_uid_count): raise dedicated_uid_count"
    )


class Lease:
    """One uid held for one run (or overlapping runs in one work directory).

    Holding the lock file's ``flock`` is holding the uid: the kernel drops it when the
    process dies, so a crashed host never blocks a uid.  A lock file that still names a
    holder was not released cleanly: whatever that uid left is removed before reuse.
    """

    def __init__(self, identity: Identity, fd: int | None = None, *, scratch: bool = True,
                 hold: _Hold | None = None, pool: tuple[int, int] | None = None) -> None:
        self.identity = identity
        if hold is None and fd is not None:
            hold = _Hold(identity.uid, fd)
        self._hold = hold
        self._pool = pool
        self.users = 0
        #: set once everything the uid left was removed (:meth:`release` then keeps the
        #: uid for this process's next run; otherwise its lock file keeps naming this
        #: process, and whoever takes it next cleans up everywhere first)
        self.cleaned = False
        #: modification times of the scratch directories at (or before) the uid's taking;
        #: ``None`` when the runs cannot reach them (``scratch=False``: nothing to clean)
        self.scratch = baseline_snapshot() if scratch else None
        #: the highest directory above the work directory the uid may not search
        self.closed: str | None = None

    @classmethod
    def dedicated(cls, base: int, count: int, *, scratch: bool = True) -> Lease:
        """Take a free uid from ``base .. base + count - 1``: one this process holds
        already (cleaned up after its last run), else one no process holds.

        ``scratch=False``: the runs cannot write the host's scratch directories (a
        namespace sandbox with its own ``/tmp``), so :meth:`clean` does not search them.

        Raises:
            UnsupportedLimitError: every uid of the range is in use.
        """
        key = (base, count)
        with _idle_guard:
            pool = _idle.get(key)
            hold = pool.pop() if pool else None
        if hold is not None:
            return cls(Identity(hold.uid, hold.uid), scratch=scratch, hold=hold, pool=key)
        hold, stale = _lock_free_uid(base, count)
        lease = cls(Identity(hold.uid, hold.uid), scratch=scratch, hold=hold, pool=key)
        if stale:
            lease.clean(None, everywhere=True)  # its last holder died mid-run
        return lease

    def changed_scratch(self) -> list[str]:
        """The scratch (and shared) directories whose modification time changed since the
        uid was taken: the only places it can have left entries in (none when the runs
        cannot reach them)."""
        if self.scratch is None:
            return []
        return [directory for directory, mtime in scratch_snapshot().items()
                if self.scratch.get(directory) != mtime]

    def clean_scratch(self, changed: list[str], kill: bool = False,
                      trees: list[str] | None = None) -> None:
        """Kill the uid's processes (``kill``), then remove its entries from ``changed``
        (from :meth:`changed_scratch`); with ``trees``, its directories are added to it
        instead of removed."""
        uid = self.identity.uid
        if kill:
            kill_uid(uid)
        for directory in changed:
            # Shared directories in a scratch directory (new ones too) are in the
            # snapshot themselves: one level each is enough.
            remove_owned(directory, uid, deep=False, trees=trees)

    def clean(self, cwd: str | None, *, kill: bool = True, everywhere: bool = False,
              ipc: bool = True, scratch: bool = True) -> None:
        """Remove what the uid left: its processes (``kill``), its SysV IPC objects
        (``ipc``: the run shared the host's IPC namespace) and its scratch files.

        Only scratch directories whose modification time changed since the uid was
        taken are searched (making or removing an entry changes it), unless
        ``everywhere`` (which also sweeps IPC objects); none with ``scratch=False``.
        """
        uid = self.identity.uid
        if kill:
            kill_uid(uid)
        if ipc or everywhere:
            for left in remove_sysv_ipc(uid):
                _log.warning("uid %d: cannot remove %s", uid, left)
        if everywhere:
            for directory in scratch_dirs():
                remove_owned(directory, uid)
            return
        if scratch and self.scratch is not None:
            self.clean_scratch(self.changed_scratch())

    def release(self) -> None:
        """Give the uid back (call :meth:`clean` first, and set :attr:`cleaned` once it
        has all gone): to this process's pool of idle uids, or to the machine."""
        hold, self._hold = self._hold, None
        if hold is None:
            return
        if self.cleaned and self._pool is not None:
            with _idle_guard:
                pool = _idle.setdefault(self._pool, [])
                if len(pool) < _IDLE_MAX:
                    pool.append(hold)
                    return
        hold.free(self.cleaned)


_SYSV_KINDS = (("shm", "shmid"), ("sem", "semid"), ("msg", "msqid"))
_IPC_RMID = 0
_ipc_calls: dict[str, Any] = {}


def _ipc_ctl(kind: str) -> Any:
    """libc's ``shmctl`` / ``semctl`` / ``msgctl`` (loaded once)."""
    if not _ipc_calls:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for name in ("shmctl", "semctl", "msgctl"):
            function = getattr(libc, name)
            function.restype = ctypes.c_int
            _ipc_calls[name[:3]] = function
    return _ipc_calls[kind]


def sysv_ipc_of(uid: int) -> list[tuple[str, int]]:
    """The SysV IPC objects of this IPC namespace that ``uid`` created or owns, as
    ``(kind, id)`` with kind ``shm``, ``sem`` or ``msg`` (read from ``/proc/sysvipc``).

    The creator counts too: an owner may hand its object to another uid (``IPC_SET``),
    never its creation.
    """
    found = []
    for kind, id_column in _SYSV_KINDS:
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        if len(lines) < 2:
            continue
        header = lines[0].split()
        at_id, at_uid, at_cuid = (header.index(id_column), header.index("uid"),
                                  header.index("cuid"))
        for line in lines[1:]:
            fields = line.split()
            if uid in (int(fields[at_uid]), int(fields[at_cuid])):
                found.append((kind, int(fields[at_id])))
    return found


def remove_sysv_ipc(uid: int) -> list[str]:
    """Remove the SysV shared memory segments, semaphore sets and message queues that
    ``uid`` created or owns; return the ones that could not be removed, with why (the
    host lacks ``CAP_SYS_ADMIN`` and is neither their owner nor their creator).  A
    segment still attached goes when its last process detaches (they are dead by now)."""
    import ctypes

    failed = []
    for kind, ident in sysv_ipc_of(uid):
        ctl = _ipc_ctl(kind)
        if kind == "sem":
            done = ctl(ident, 0, _IPC_RMID)
        else:
            done = ctl(ident, _IPC_RMID, None)
        if done != 0:
            error = ctypes.get_errno()
            if error not in (errno.EINVAL, errno.EIDRM):  # already gone
                failed.append(f"SysV {kind} {ident}: {os.strerror(error)}")
    return failed


def kill_uid(uid: int) -> None:
    """SIGKILL every process running as ``uid`` (a scan of ``/proc``)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                os.kill(int(entry), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass


def _shared(mode: int) -> bool:
    """A directory anyone may create entries in (``/tmp/.X11-unix`` style)."""
    return stat.S_ISDIR(mode) and mode & 0o002 == 0o002


_shared_dirs: dict[str, tuple[int, list[str]]] = {}


_last_snapshot: dict[str, int] | None = None


def baseline_snapshot() -> dict[str, int]:
    """The scratch directories' modification times as last seen by this process (taken
    now if never): a baseline for a uid taken now.  An older baseline than "now" can only
    make :meth:`Lease.clean` search a directory that someone else changed meanwhile,
    never miss one the uid changed (that happens after the uid is taken), so the
    snapshot the previous run's clean-up took saves taking another."""
    last = _last_snapshot
    return last if last is not None else scratch_snapshot()


def scratch_snapshot() -> dict[str, int]:
    """Modification times of the scratch directories and of the shared directories
    directly in them: everywhere a run's uid can create entries.  The list of shared
    directories is cached while their parent's modification time stays the same."""
    found: dict[str, int] = {}
    for directory in scratch_dirs():
        try:
            mtime = os.stat(directory).st_mtime_ns
        except OSError:
            continue
        found[directory] = mtime
        cached = _shared_dirs.get(directory)
        if cached is None or cached[0] != mtime:
            shared = []
            try:
                for entry in os.scandir(directory):
                    try:
                        if _shared(entry.stat(follow_symlinks=False).st_mode):
                            shared.append(entry.path)
                    except OSError:
                        continue
            except OSError:
                continue
            cached = _shared_dirs[directory] = (mtime, shared)
        for path in cached[1]:
            try:
                found[path] = os.stat(path, follow_symlinks=False).st_mtime_ns
            except OSError:
                continue
    global _last_snapshot
    _last_snapshot = found
    return found


def small_tree(path: str, limit: int = 256, *, recursive: bool = True) -> bool:
    """Whether ``path`` holds at most ``limit`` entries (counting those of its
    subdirectories, one file system, with ``recursive``).  Reads no more than about that
    many entries and stats none (the directory entry's type is enough): cheap however
    large the tree is."""
    seen = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if seen > limit:
                        return False
                    if recursive and entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue  # nothing to walk there
    return True


def remove_owned(directory: str, uid: int, *, deep: bool = True,
                 trees: list[str] | None = None) -> None:
    """Remove entries of ``directory`` owned by ``uid``; with ``deep``, look one level
    into shared directories (``/tmp/.X11-unix`` style) for more.  With ``trees``, the
    directories among them are added to it instead (for :func:`remove_trees`: removing
    one may take as long as it holds files)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if st.st_uid == uid:
            if trees is not None and stat.S_ISDIR(st.st_mode):
                trees.append(entry.path)
            else:
                _remove(entry.path, st)
        elif deep and _shared(st.st_mode):
            remove_owned(entry.path, uid, deep=False, trees=trees)


def remove_trees(paths: list[str]) -> None:
    """Remove directories (from :func:`remove_owned`'s ``trees``) and all they hold."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _remove(path: str, st: os.stat_result) -> None:
    try:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def chown_small_tree(path: str, owner: int, uid: int, gid: int, *, hand_over: bool = False,
                     limit: int = 256) -> bool:
    """:func:`chown_tree` for a tree of at most ``limit`` entries, in one pass; for a
    larger one, return ``False`` having changed nothing (hand it to :func:`chown_tree`,
    off the event loop: its walk may take as long as the tree is large).

    Reads no more than about ``limit`` entries before it decides.  With
    ``neuroflow-native``, in C, every step relative to an open directory."""
    if _native_chown_tree is not None:
        return bool(_native_chown_tree(path, owner, uid, gid, hand_over, limit))
    try:
        top = os.lstat(path)
    except OSError:
        return True
    if not stat.S_ISDIR(top.st_mode):
        return True
    found: list[tuple[str, os.stat_result]] = []
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if len(found) >= limit:
                        return False
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    found.append((entry.path, st))
                    if stat.S_ISDIR(st.st_mode) and st.st_dev == top.st_dev:
                        stack.append(entry.path)
        except OSError:
            continue
    if top.st_uid == owner:
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
        except FileNotFoundError:
            return True
    for entry_path, st in found:
        if st.st_uid == owner and not (
            hand_over and st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode)
        ):
            try:
                os.chown(entry_path, uid, gid, follow_symlinks=False)
            except OSError:
                continue
    return True


def chown_tree(path: str, owner: int, uid: int, gid: int, *, hand_over: bool = False
               ) -> None:
    """Give what ``owner`` owns of ``path`` and everything under it to ``uid:gid``
    (one file system, links not followed); what others own is left as it is.

    ``hand_over``: giving the tree to a run's uid.  A file with more than one hard link
    is then left as it is: it may be a link a previous run made to a file elsewhere.
    """
    try:
        top = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISDIR(top.st_mode):
        return
    if top.st_uid == owner:
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
        except FileNotFoundError:
            return
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if st.st_uid == owner and not (
                    hand_over and st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode)
                ):
                    os.chown(entry.path, uid, gid, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and st.st_dev == top.st_dev:
                stack.append(entry.path)
