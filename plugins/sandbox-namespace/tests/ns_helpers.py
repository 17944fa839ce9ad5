"""Run a command in a fresh namespace sandbox; find processes a run left behind."""

from __future__ import annotations

import os
import uuid
from typing import Any

import anyio

from neuroflow import create_backend
from neuroflow.sandbox import SandboxResult
from neuroflow_sandbox_namespace.config import NamespaceConfig

#: A python3 the run's uid may execute (the system one: /root is closed to it).
PYTHON = "python3"


def new_marker() -> str:
    """A unique word to put in a command line and look for afterwards."""
    return f"nf-ns-{uuid.uuid4().hex}"


def survivors(marker: str) -> list[int]:
    """Pids of live processes whose command line holds ``marker``."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if needle in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def run(argv: list[str] | tuple[str, ...], timeout: float | None = None,
        stdin: bytes | None = None, **settings: Any) -> SandboxResult:
    """Run ``argv`` once in a new ``namespace`` sandbox built by name (network off and
    seccomp on unless ``settings`` say otherwise), blocking; the sandbox is closed after."""
    settings.setdefault("enable_network", False)
    settings.setdefault("enable_seccomp", True)
    settings.setdefault("wall_timeout", 30)

    async def once() -> SandboxResult:
        async with create_backend("isolation", "namespace", NamespaceConfig(**settings),
                                  gate=False) as sandbox:
            return await sandbox.execute(argv[0], list(argv[1:]), timeout=timeout,
                                         stdin=stdin)

    return anyio.run(once)


def py(code: str, marker: str = "") -> tuple[str, ...]:
    """argv running ``code`` in the sandbox's python3 (``sys.argv[1]`` is ``marker``)."""
    return (PYTHON, "-I", "-S", "-c", code, marker or new_marker())


# What a run probes PID 1 with; seccomp off (the standard level), so that ptrace and a
# nested user namespace are the kernel's to refuse, not the filter's.
PID1_PROBE = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


def probe(tag):
    out = []
    r = libc.ptrace(16, 1, None, None)  # PTRACE_ATTACH
    out.append(f"attach {r} {ctypes.get_errno()}")
    for name in ("mem", "maps", "environ", "auxv"):
        try:
            with open(f"/proc/1/{name}", "rb") as fh:
                fh.read(1)
            out.append(f"{name} read")
        except OSError as exc:
            out.append(f"{name} {exc.errno}")
    try:
        os.readlink("/proc/1/exe")
        out.append("exe read")
    except OSError as exc:
        out.append(f"exe {exc.errno}")
    print(tag, " ".join(out))


probe("run")
print("nested", libc.unshare(0x10000000))  # CLONE_NEWUSER: 0, it worked
probe("nested")
"""

PID1_REFUSED = "attach -1 1 mem 13 maps 13 environ 13 auxv 13 exe 13"
