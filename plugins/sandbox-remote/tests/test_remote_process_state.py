"""Joining a cluster leaves the calling process's fault handlers alone (Ray's crash
reporter would otherwise replace them, and a wasmtime trap would kill the process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

_SCRIPT = textwrap.dedent("""
    import ctypes, faulthandler, signal, sys
    import anyio
    from neuroflow import create_backend

    libc = ctypes.CDLL(None, use_errno=True)

    def handlers():
        out = []
        for sig in (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE):
            buf = ctypes.create_string_buffer(512)
            assert libc.sigaction(int(sig), None, buf) == 0
            out.append(ctypes.c_void_p.from_buffer(buf).value)
        return out

    faulthandler.enable()  # native handlers on all four, as wasmtime installs its own
    before = handlers()

    async def main():
        options = {"address": sys.argv[1], "auth_token_file": sys.argv[2]}
        async with create_backend("isolation", "remote", options, gate=False) as sandbox:
            print("ran:", (await sandbox.execute("/bin/echo", ["hi"])).stdout)

    anyio.run(main)
    print("handlers kept:", handlers() == before, before != [None] * 4)
""")


def test_joining_keeps_the_processs_fault_handlers(ray_cluster: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, ray_cluster.address, str(ray_cluster.token_file)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ran: b'hi\\n'" in done.stdout
    assert "handlers kept: True True" in done.stdout
