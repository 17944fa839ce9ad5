"""Finding the real program behind a command name, without running anything.

A ``python3`` on ``PATH`` may be a shell shim (pyenv) that execs the real interpreter
after a few process spawns of its own: about ten times slower to start, and it needs the
host's environment to work.  Sandboxes run the real binary instead.

Resolving never executes anything.  A pyenv shim is followed by reading pyenv's own
files (``PYENV_VERSION`` of the host, else ``<root>/version``), and only when the shim,
the version file and the interpreter found all sit on a path whose every directory is
owned by root (or the host's own uid) and writable by nobody else: a ``shims/`` folder
in a work directory is just a file, taken literally.  Local ``.python-version`` files
are not read (the sandbox's work directory would choose the interpreter).
"""

from __future__ import annotations

import functools
import os
import stat

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def trusted_path(path: str) -> bool:
    """Whether ``path`` and every directory above it (links resolved) belong to root or
    the host's uid and are writable by nobody else."""
    owners = {0, os.geteuid()}
    real = os.path.realpath(path)
    current = real
    while True:
        try:
            st = os.stat(current)
        except OSError:
            return False
        if st.st_uid not in owners or st.st_mode & 0o022:
            return False
        parent = os.path.dirname(current)
        if parent == current:
            return True
        current = parent


def runnable_by(path: str, uid: int, gid: int, *, search_only: bool = False) -> bool:
    """Whether a process with ``uid``/``gid`` (no other groups) may execute ``path``:
    search permission on every directory up to it, read and execute on the file.
    ``search_only``: whether it may reach ``path`` (a directory) by its absolute path."""
    if uid == 0:
        return os.access(path, os.X_OK)
    current = os.path.realpath(path)
    need = 0o1 if search_only else 0o5  # the file: read (scripts) and execute
    while True:
        try:
            st = os.stat(current)
        except OSError:
            return False
        if st.st_uid == uid:
            bits = st.st_mode >> 6
        elif st.st_gid == gid:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        if bits & need != need:
            return False
        parent = os.path.dirname(current)
        if parent == current:
            return True
        current, need = parent, 0o1


def _is_pyenv_shim(path: str) -> bool:
    if os.sep + "shims" + os.sep not in path:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return head.startswith(b"#!") and b"pyenv" in head


def _read_version_file(path: str) -> list[str]:
    if not trusted_path(path):
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(4096)
    except OSError:
        return []
    return [word for word in text.split() if not word.startswith("#")]


def _unshim_pyenv(path: str) -> str:
    """The interpreter a pyenv shim selects, found by reading pyenv's files only."""
    if not trusted_path(path):
        return path
    root = os.path.dirname(os.path.dirname(path))
    selected = os.environ.get("PYENV_VERSION")
    versions = selected.split(":") if selected else _read_version_file(
        os.path.join(root, "version"))
    name = os.path.basename(path)
    for version in versions:
        if not version or version == "system" or "/" in version or version.startswith("."):
            continue
        candidate = os.path.join(root, "versions", version, "bin", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and trusted_path(
            candidate
        ):
            return candidate
    return path


_real: dict[tuple[str, int, int, int], str] = {}


def real_program(path: str, st: os.stat_result | None = None) -> str:
    """Return the binary a shim at ``path`` would run (``path`` itself if it is no shim).

    Answers are cached by the file's identity (device, inode, modification time).
    """
    if st is None:
        try:
            st = os.stat(path)
        except OSError:
            return path
    key = (path, st.st_dev, st.st_ino, st.st_mtime_ns)
    found = _real.get(key)
    if found is None:
        found = _unshim_pyenv(path) if _is_pyenv_shim(path) else path
        if len(_real) > 1024:
            _real.clear()
        _real[key] = found
    return found


@functools.lru_cache(maxsize=512)
def _lookup(command: str, search_path: str, who: tuple[int, int] | None) -> str | None:
    for directory in search_path.split(os.pathsep):
        if not directory:
            continue
        candidate = os.path.abspath(os.path.join(directory, command))
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or not os.access(candidate, os.X_OK):
            continue
        found = real_program(candidate, st)
        if who is None or runnable_by(found, *who):
            return found
    return None


def resolve_command(
    command: str, search_path: str | None = None, cwd: str | None = None,
    who: tuple[int, int] | None = None,
) -> str | None:
    """Return the absolute path of the program ``command`` names, shims resolved.

    A name without ``/`` is looked up on ``search_path`` (default: the host's ``PATH``);
    a relative path is taken relative to ``cwd``.  Returns ``None`` if there is no
    such executable.  ``who``: ``(uid, gid)`` the program will run as; a name is then
    looked up among the programs that identity may execute (a ``python3`` under a
    ``0700`` home directory is skipped for the next one on the path).  Name lookups are
    cached; a cached answer is re-checked.  Nothing is executed.
    """
    if "/" in command:
        path = command if os.path.isabs(command) else os.path.join(cwd or os.getcwd(), command)
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            return None
        return real_program(os.path.normpath(path), st)
    if search_path is None:
        search_path = os.environ.get("PATH", DEFAULT_PATH)
    found = _lookup(command, search_path, who)
    if found is not None and not os.access(found, os.X_OK):
        _lookup.cache_clear()
        found = _lookup(command, search_path, who)
    return found
