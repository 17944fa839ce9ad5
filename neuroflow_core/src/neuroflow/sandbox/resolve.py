"""Finding the real program behind a command name.

A ``python3`` on ``PATH`` may be a shell shim (pyenv, asdf) that execs the real
interpreter after a few process spawns of its own: about ten times slower to start, and
it needs the host's environment to work.  Sandboxes run the real binary instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def _is_pyenv_shim(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return head.startswith(b"#!") and b"pyenv" in head and os.sep + "shims" + os.sep in path


def _unshim_pyenv(path: str) -> str:
    shims_dir = os.path.dirname(path)
    root = os.path.dirname(shims_dir)
    pyenv = next(
        (p for p in (os.path.join(root, "bin", "pyenv"), os.path.join(root, "libexec", "pyenv"))
         if os.access(p, os.X_OK)),
        None,
    )
    if pyenv is None:
        return path
    env = dict(os.environ, PYENV_ROOT=root)
    try:
        out = subprocess.run(
            [pyenv, "which", os.path.basename(path)],
            capture_output=True, env=env, timeout=30, check=True,
        ).stdout.decode().strip()
    except (OSError, subprocess.SubprocessError):
        return path
    return out if out and os.access(out, os.X_OK) else path


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
def _lookup(command: str, search_path: str) -> str | None:
    found = shutil.which(command, path=search_path)
    if found is None:
        return None
    return real_program(os.path.abspath(found))


def resolve_command(command: str, search_path: str | None = None, cwd: str | None = None) -> (
    str | None
):
    """Return the absolute path of the program ``command`` names, shims resolved.

    A name without ``/`` is looked up on ``search_path`` (default: the host's ``PATH``);
    a relative path is taken relative to ``cwd``.  Returns ``None`` if there is no
    such executable.  Name lookups are cached; a cached answer is re-checked.
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
    found = _lookup(command, search_path)
    if found is not None and not os.access(found, os.X_OK):
        _lookup.cache_clear()
        found = _lookup(command, search_path)
    return found
