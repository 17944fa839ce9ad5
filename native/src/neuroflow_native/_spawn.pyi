from collections.abc import Sequence
from os import PathLike

_Path = str | bytes | PathLike[str] | PathLike[bytes]

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
) -> int: ...
