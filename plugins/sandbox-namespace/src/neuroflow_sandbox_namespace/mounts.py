"""``MountPlan``: the file system a namespace run sees, as the launcher's mount list.

In order: the system directories read-only (or the same symlink, where ``/bin`` links to
``usr/bin``), the ``/etc`` entries read-only, ``/dev`` (a small tmpfs holding binds of
``null``, ``zero``, ``full``, ``random``, ``urandom`` and the ``fd``/``stdin``/``stdout``/
``stderr`` links, then made read-only) with a size-capped ``/dev/shm``, a fresh ``/proc``,
a size-capped ``/tmp``, the work directory read-write at its own path, then ``binds``
(shallowest target first).  The launcher makes the root itself read-only last.
"""

from __future__ import annotations

import os

from neuroflow_sandbox_namespace.config import NamespaceConfig

try:
    from neuroflow_native import _namespace as _kinds
except ImportError:  # pragma: no cover - neuroflow-native is a dependency
    _kinds = None

_DEVICES = ("null", "zero", "full", "random", "urandom")
_DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
              ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"))

Mount = tuple[int, str | None, str, str | None]


class MountPlan:
    """The mounts of every run of one sandbox (the work directory is added per run)."""

    def __init__(self, config: NamespaceConfig) -> None:
        assert _kinds is not None
        k = _kinds
        self._before: list[Mount] = []
        self._roots: list[str] = []
        for path in config.system_dirs:
            if os.path.islink(path):
                self._before.append((k.SYMLINK, os.readlink(path), path, None))
            elif os.path.isdir(path):
                self._before.append((k.RO_BIND, path, path, None))
                self._roots.append(path)
        for name in config.etc:
            path = "/etc/" + name
            if os.path.islink(path):
                self._before.append((k.SYMLINK, os.readlink(path), path, None))
            elif os.path.exists(path):
                self._before.append((k.RO_BIND, path, path, None))
        self._before.append((k.TMPFS, None, "/dev", "size=64k,nr_inodes=64,mode=0755"))
        for name in _DEVICES:
            if os.path.exists("/dev/" + name):
                self._before.append((k.DEV_BIND, "/dev/" + name, "/dev/" + name, None))
        for target, name in _DEV_LINKS:
            self._before.append((k.SYMLINK, target, "/dev/" + name, None))
        self._before.append((k.DIR, None, "/dev/shm", None))
        self._before.append((k.REMOUNT_RO, None, "/dev", None))
        self._before.append((k.TMPFS, None, "/dev/shm",
                             f"size={config.shm_size},mode=1777"))
        self._before.append((k.PROC, None, "/proc", None))
        self._before.append((k.TMPFS, None, "/tmp", f"size={config.tmp_size},mode=1777"))
        self._after: list[Mount] = []
        for bind in sorted(config.binds, key=lambda b: b.target.count("/")):
            kind = k.RW_BIND if bind.writable else k.RO_BIND
            self._after.append((kind, bind.source, bind.target, None))
            self._roots.append(bind.target)

    def mounts(self, cwd: str) -> list[Mount]:
        """The launcher's mount list for a run in ``cwd`` (bound read-write)."""
        return [*self._before, (_kinds.RW_BIND, cwd, cwd, None), *self._after]

    def visible_roots(self, cwd: str) -> list[str]:
        """The bound directories a program may be started from."""
        return [*self._roots, cwd]

    def visible(self, path: str, cwd: str) -> bool:
        """Whether ``path`` (a host path) is inside a bound directory, as the same path."""
        real = os.path.realpath(path)
        for root in self.visible_roots(cwd):
            for candidate in (path, real):
                if candidate == root or candidate.startswith(root.rstrip("/") + "/"):
                    return True
        return False
