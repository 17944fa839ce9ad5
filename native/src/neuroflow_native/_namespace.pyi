from collections.abc import Sequence
from os import PathLike

_Path = str | bytes | PathLike[str] | PathLike[bytes]

RO_BIND: int
RW_BIND: int
TMPFS: int
PROC: int
DEV_BIND: int
SYMLINK: int
DIR: int
REMOUNT_RO: int
AUDIT_ARCH: int

def launch(
    executable: _Path,
    argv: Sequence[_Path],
    envp: Sequence[_Path],
    cwd: _Path,
    fds: tuple[int, int, int],
    mounts: Sequence[tuple[int, _Path | None, _Path, _Path | None]],
    ids: tuple[int, int, int, int, bool],
    cgroup_files: Sequence[_Path] = (),
    rlimits: Sequence[tuple[int, int, int]] = (),
    seccomp: bool = True,
    network: bool = False,
    hostname: _Path | None = None,
    init_program: bool = True,
) -> tuple[int, int]: ...
def seccomp_filter() -> bytes: ...
def init_program_usable() -> bool: ...
def _set_init_program(fd: int | None) -> None: ...
def _set_binds_by_fds(on: bool) -> None: ...
