"""Who a sandboxed command runs as: dropping root to a dedicated uid per run.

Root inside the process sandbox could undo its own limits (write its cgroup files, trace
the host, read its environment and keys).  So when the host is root, each run gets an
unprivileged uid of its own (``dedicated_uid_base`` .. ``+ dedicated_uid_count``, gid =
uid, no supplementary groups), taken with a lock file so that no two runs on the machine
share one, and everything that uid left behind (files in ``/tmp``, ``/var/tmp`` and
``/dev/shm``, processes) is removed when the run ends.  The work directory is handed to
the run's uid for the run and given back to the host afterwards.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import pwd
import shutil
import signal
import stat

import attrs

from neuroflow.errors import ConfigError, UnsupportedLimitError

#: Where the per-uid lock files live (root only).
LOCK_DIR = "/run/neuroflow/uids"
#: World-writable places a run's uid can leave files in; cleaned after each run.
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
_TRIES = 512


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


def _lock_dir() -> str:
    try:
        os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        st = os.lstat(LOCK_DIR)
    except OSError as exc:
        raise UnsupportedLimitError(
            f"run_as: cannot create the uid lock directory {LOCK_DIR}: {exc.strerror}"
        ) from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
        raise UnsupportedLimitError(
            f"run_as: {LOCK_DIR} must be a directory owned by root with mode 0700"
        )
    return LOCK_DIR


_start = itertools.count(os.getpid() * 7919)


class Lease:
    """One uid held for one run (or overlapping runs in one work directory).

    Holding the lock file's ``flock`` is holding the uid: the kernel drops it when the
    process dies, so a crashed host never blocks a uid.  A lock file that still names a
    holder was not released cleanly: whatever that uid left is removed before reuse.
    """

    def __init__(self, identity: Identity, fd: int | None, *, scratch: bool = True) -> None:
        self.identity = identity
        self._fd = fd
        self.users = 0
        #: modification times of the scratch directories when the uid was taken; ``None``
        #: when the runs cannot reach them (``scratch=False``: nothing to clean there)
        self.scratch = scratch_snapshot() if scratch else None
        #: the highest directory above the work directory the uid may not search
        self.closed: str | None = None

    @classmethod
    def dedicated(cls, base: int, count: int, *, scratch: bool = True) -> Lease:
        """Take a free uid from ``base .. base + count - 1``.

        ``scratch=False``: the runs cannot write the host's scratch directories (a
        namespace sandbox with its own ``/tmp``), so :meth:`clean` does not search them.

        Raises:
            UnsupportedLimitError: every uid of the range is in use.
        """
        directory = _lock_dir()
        first = next(_start)
        for step in range(min(count, _TRIES)):
            uid = base + (first + step) % count
            fd = os.open(f"{directory}/{uid}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            stale = os.pread(fd, 32, 0)
            os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
            lease = cls(Identity(uid, uid), fd, scratch=scratch)
            if stale.strip():
                lease.clean(None, everywhere=True)  # its last holder died mid-run
            return lease
        raise UnsupportedLimitError(
            f"run_as: no free uid in {base}..{base + count - 1} (dedicated_uid_base, "
            "dedicated_uid_count): raise dedicated_uid_count"
        )

    def clean(self, cwd: str | None, *, kill: bool = True, everywhere: bool = False) -> None:
        """Remove what the uid left: its processes (``kill``) and its scratch files.

        Only scratch directories whose modification time changed since the uid was
        taken are searched (making or removing an entry changes it), unless
        ``everywhere``.
        """
        uid = self.identity.uid
        if kill:
            kill_uid(uid)
        if everywhere:
            for directory in SCRATCH_DIRS:
                remove_owned(directory, uid)
            return
        if self.scratch is None:
            return
        for directory, mtime in scratch_snapshot().items():
            if self.scratch.get(directory) != mtime:
                # A changed top directory may hold a new shared directory: look inside.
                remove_owned(directory, uid, deep=directory in SCRATCH_DIRS)

    def release(self) -> None:
        """Give the uid back (call :meth:`clean` first)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


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


def scratch_snapshot() -> dict[str, int]:
    """Modification times of the scratch directories and of the shared directories
    directly in them: everywhere a run's uid can create entries.  The list of shared
    directories is cached while their parent's modification time stays the same."""
    found: dict[str, int] = {}
    for directory in SCRATCH_DIRS:
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
    return found


def remove_owned(directory: str, uid: int, *, deep: bool = True) -> None:
    """Remove entries of ``directory`` owned by ``uid``; with ``deep``, look one level
    into shared directories (``/tmp/.X11-unix`` style) for more."""
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
            _remove(entry.path, st)
        elif deep and _shared(st.st_mode):
            remove_owned(entry.path, uid, deep=False)


def _remove(path: str, st: os.stat_result) -> None:
    try:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


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
