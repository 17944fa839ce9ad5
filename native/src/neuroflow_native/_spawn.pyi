from collections.abc import Sequence
from os import PathLike
from typing import Literal, overload

_Path = str | bytes | PathLike[str] | PathLike[bytes]

@overload
def spawn(
    executable: _Path,
    argv: Sequence[_Path],
    envp: Sequence[_Path],
    cwd: _Path | None = None,
    fd_map: Sequence[int] = (0, 1, 2),
    cgroup_procs: Sequence[_Path] = (),
    uid: int = -1,
    gid: int = -1,
    groups: Sequence[int] | None = None,
    rlimits: Sequence[tuple[int, int, int]] = (),
    no_new_privs: bool = False,
    new_session: bool = False,
    *,
    view: tuple[_Path, Sequence[_Path]] | None = None,
    nomem_kill: bool = False,
    new_ipc: bool = False,
    keyrings: int = 0,
    pidfd: Literal[False] = False,
) -> int: ...
@overload
def spawn(
    executable: _Path,
    argv: Sequence[_Path],
    envp: Sequence[_Path],
    cwd: _Path | None = None,
    fd_map: Sequence[int] = (0, 1, 2),
    cgroup_procs: Sequence[_Path] = (),
    uid: int = -1,
    gid: int = -1,
    groups: Sequence[int] | None = None,
    rlimits: Sequence[tuple[int, int, int]] = (),
    no_new_privs: bool = False,
    new_session: bool = False,
    *,
    view: tuple[_Path, Sequence[_Path]] | None = None,
    nomem_kill: bool = False,
    new_ipc: bool = False,
    keyrings: int = 0,
    pidfd: Literal[True],
) -> tuple[int, int]: ...
def deadline_fd(seconds: float) -> int: ...
def chown_tree(
    path: _Path, owner: int, uid: int, gid: int, hand_over: bool = False, limit: int = 256,
) -> bool: ...
