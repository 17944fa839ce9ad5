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
