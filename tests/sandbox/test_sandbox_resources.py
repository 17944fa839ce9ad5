"""An isolator nobody closes (SPEC's ``await SandboxIsolator(config).execute(...)``)
leaves no file descriptor behind."""

from __future__ import annotations

import gc
import os

import pytest

from neuroflow.sandbox import SandboxConfig, SandboxIsolator


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.anyio
async def test_unclosed_isolators_do_not_leak_descriptors() -> None:
    # One run first: anything opened once per process (the cgroup pool) is opened now.
    await SandboxIsolator(SandboxConfig()).execute("/bin/true")
    gc.collect()
    before = _open_fds()
    for _ in range(50):
        result = await SandboxIsolator(SandboxConfig()).execute("/bin/true")
        assert result.exit_code == 0
    gc.collect()
    assert _open_fds() - before < 5
