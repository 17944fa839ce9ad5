"""Python programs with host tools in process-based sandboxes (process, namespace).

:func:`run_python` puts a private folder into the run's work directory holding the guest
``host`` module, a small runner and a listening Unix socket, and runs ``python3 -I
<folder>/runner.py`` through the sandbox's own ``execute`` (so the allow-list, the gate, the
run's uid, its cgroups and namespaces all apply).  The runner reads a one-time token and the
program from its standard input, connects to the socket, presents the token, and then runs
the program with the connection as its channel to the host
(:mod:`neuroflow.sandbox.host_channel`).  The host accepts one connection that presents the
token, removes the socket file, and serves the program's calls until the run ends.  The
folder is removed afterwards.

The work directory is bound at the same path inside a namespace sandbox, and a Unix socket
reached through the file system needs no network, so the same code serves both backends.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs

from neuroflow.sandbox.guest import FOLDER as GUEST_FOLDER
from neuroflow.sandbox.host_channel import serve
from neuroflow.sandbox.host_tools import HostCallRecord, HostTools

#: How long a connection has to present its token (the runner does so first thing).
CONNECT_SECONDS = 30.0
#: Connections read at once while waiting for the token.
_PENDING = 16

_RUNNER = '''\
"""Connects to the host, then runs the program read from stdin (after its token line)."""
import os as _os, socket as _socket, sys as _sys
_here = _os.path.dirname(__file__)
_token, _, _code = _sys.stdin.buffer.read().partition(b"\\n")
_sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
_sock.connect(_os.path.join(_here, "s"))
_sock.sendall(len(_token).to_bytes(4, "big") + _token)
_fd = _sock.detach()  # not inherited by the program's own children (PEP 446)
_os.environ["NEUROFLOW_HOST_FDS"] = f"{_fd},{_fd}"
_sys.stdin = open(_os.devnull)
_sys.path.insert(0, _here)
_program = compile(_code.decode("utf-8", "replace"), "<program>", "exec")
del _token, _code, _sock
exec(_program, {"__name__": "__main__", "__builtins__": __builtins__})
'''

Execute = Callable[..., Awaitable[Any]]


def _prepare(work_dir: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=".neuroflow-code-", dir=work_dir))
    folder.chmod(0o755)
    (folder / "runner.py").write_text(_RUNNER)
    shutil.copyfile(GUEST_FOLDER / "host.py", folder / "host.py")
    for name in ("runner.py", "host.py"):
        (folder / name).chmod(0o644)
    return folder


async def _accept(listener: anyio.abc.SocketListener, token: bytes, path: Path,
                  host_tools: HostTools, records: list[HostCallRecord]) -> None:
    """Serve the first connection that presents ``token``; drop every other one.

    Each connection is read in a task of its own, so one that connects and stays silent
    cannot hold the program's connection up; at most ``_PENDING`` wait at once.
    """
    served = anyio.Event()
    pending = anyio.Semaphore(_PENDING)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                with anyio.move_on_after(CONNECT_SECONDS):
                    presented = await _read_token(stream)
            finally:
                pending.release()
            if presented != token or served.is_set():
                return
            served.set()
            path.unlink(missing_ok=True)
            await serve(stream, stream, host_tools, records)

    async with anyio.create_task_group() as group:
        while not served.is_set():
            await pending.acquire()
            stream = await listener.accept()
            group.start_soon(handle, stream)


async def _read_exactly(stream: anyio.abc.ByteStream, size: int) -> bytes | None:
    """Exactly ``size`` bytes (never more: what follows is the program's first frame)."""
    data = b""
    while len(data) < size:
        try:
            data += await stream.receive(size - len(data))
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
    return data


async def _read_token(stream: anyio.abc.ByteStream) -> bytes | None:
    head = await _read_exactly(stream, 4)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    return await _read_exactly(stream, size) if size <= 256 else None


async def run_python(execute: Execute, work_dir: str, code: str, host_tools: HostTools, *,
                     python: str = "python3", env: Mapping[str, str] | None = None,
                     timeout: float | None = None) -> Any:
    """Run ``code`` with ``host_tools`` through ``execute`` (a sandbox's ``execute``) in
    ``work_dir``; return its result with ``host_calls`` filled in."""
    folder = await anyio.to_thread.run_sync(_prepare, work_dir)
    socket_path = folder / "s"
    token = secrets.token_hex(16).encode()
    records: list[HostCallRecord] = []
    relative = os.path.relpath(folder, work_dir)
    try:
        listener = await anyio.create_unix_listener(socket_path, mode=0o777)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(_accept, listener, token, socket_path, host_tools, records)
            try:
                result = await execute(python, ["-I", f"{relative}/runner.py"],
                                       stdin=token + b"\n" + code.encode(), env=env,
                                       timeout=timeout)
            finally:
                group.cancel_scope.cancel()
    finally:
        await anyio.to_thread.run_sync(shutil.rmtree, folder, True)
    return attrs.evolve(result, host_calls=tuple(records))
