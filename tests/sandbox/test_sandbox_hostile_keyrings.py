"""Kernel keyrings, as a run's uid sees them.  A run must not read the keys of the host's
session keyring (a process possesses its session keyring, whatever its uid: the uid drop
alone does not shut it out), and what one run stashes in its uid's keyrings (user,
user-session, persistent -- they outlive every process of the uid) must not be there for
the next run that gets the same uid."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import anyio
import pytest
from sandbox_helpers import new_marker

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, cgroups, process

_SYSCALLS = {"x86_64": (248, 249, 250), "aarch64": (217, 218, 219)}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the host is not root here: runs keep its uid"),
    pytest.mark.skipif(platform.machine() not in _SYSCALLS,
                       reason=f"keyring system call numbers not listed for {platform.machine()}"),
    pytest.mark.skipif(not cgroups.support().usable,
                       reason="this machine has no usable pids/memory cgroup"),
]

ADD_KEY, REQUEST_KEY, KEYCTL = _SYSCALLS.get(platform.machine(), (0, 0, 0))

# For the sandboxed python3 (and the host helper): put / find a "user" key.
KEYS = textwrap.dedent(f"""
    import ctypes, json, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ADD_KEY, REQUEST_KEY, KEYCTL = {ADD_KEY}, {REQUEST_KEY}, {KEYCTL}
    USER, USER_SESSION = -4, -5

    def put(name, where):
        data = b"stashed by " + str(os.getuid()).encode()
        return libc.syscall(ADD_KEY, b"user", name.encode(), data, len(data), where)

    def persistent():
        # KEYCTL_GET_PERSISTENT, linked into the session keyring (so it is possessed)
        return libc.syscall(KEYCTL, 22, -1, -3)

    def find(name):
        key = libc.syscall(REQUEST_KEY, b"user", name.encode(), None, 0)
        if key < 0:
            return None
        buf = ctypes.create_string_buffer(256)
        size = libc.syscall(KEYCTL, 11, key, buf, 256)  # KEYCTL_READ
        return buf.raw[:size].decode() if size >= 0 else "unreadable"

    def find_in(ring, name):
        found = libc.syscall(KEYCTL, 10, ring, b"user", name.encode(), 0)  # KEYCTL_SEARCH
        return found >= 0
""")

STASH = KEYS + textwrap.dedent("""
    name = sys.argv[1]
    made = {"user": put(name + "-u", USER), "user_session": put(name + "-us", USER_SESSION)}
    ring = persistent()
    made["persistent"] = put(name + "-p", ring) if ring >= 0 else "unsupported"
    print(json.dumps({"uid": os.getuid(), "made": made}))
""")

LOOK = KEYS + textwrap.dedent("""
    name = sys.argv[1]
    ring = persistent()
    print(json.dumps({"uid": os.getuid(), "user": find(name + "-u"),
                      "user_session": find(name + "-us"),
                      "persistent": find_in(ring, name + "-p") if ring >= 0 else None}))
""")


def _box(config: SandboxConfig, code: str, *args: str) -> dict:
    async def go() -> bytes:
        async with SandboxIsolator(config, gate=False) as isolator:
            result = await isolator.execute("python3", ["-I", "-S", "-c", code, *args])
            assert result.exit_code == 0, result.stderr
            return result.stdout

    return json.loads(anyio.run(go))


@pytest.fixture(params=["native", "fork"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "native" and process.spawn_path() != "native":
        pytest.skip("neuroflow-native is not installed here")
    if request.param == "fork":
        monkeypatch.setattr(process, "_native_spawn", None)
    return request.param


def test_what_a_run_stashes_in_its_uids_keyrings_is_gone_for_the_next_run(
    spawn_path: str,
) -> None:
    # One uid in the range: the next run gets the same uid, as any run eventually does.
    base = 640000 + os.getpid() % 5000
    config = SandboxConfig(wall_timeout=30, dedicated_uid_base=base, dedicated_uid_count=1)
    name = new_marker()
    stashed = _box(config, STASH, name)
    assert stashed["uid"] == base
    # The user and user-session keyrings are read-only to the run (-1: refused); the
    # persistent one takes the key (it is emptied before the next run).
    assert stashed["made"]["persistent"] == "unsupported" or stashed["made"]["persistent"] >= 0
    seen = _box(config, LOOK, name)
    assert seen["uid"] == base
    assert seen["user"] is None, seen
    assert seen["user_session"] is None, seen
    assert not seen["persistent"], seen


# Stashes like STASH, then tries to take write and setattr away from everyone on the
# keyrings (so that nothing of its uid could empty them), to revoke and to invalidate them.
STASH_AND_LOCK = STASH + textwrap.dedent("""
    VIEW_READ_SEARCH = 0x01 | 0x02 | 0x08
    locked = {}
    for label, ring in (("user", USER), ("user_session", USER_SESSION), ("persistent", ring)):
        if isinstance(ring, int) and ring != -1:
            perm = (VIEW_READ_SEARCH << 24) | (VIEW_READ_SEARCH << 16)  # possessor, user
            locked[label] = [libc.syscall(KEYCTL, 5, ring, perm) == 0,  # KEYCTL_SETPERM
                             libc.syscall(KEYCTL, 3, ring) == 0,  # KEYCTL_REVOKE
                             libc.syscall(KEYCTL, 21, ring) == 0]  # KEYCTL_INVALIDATE
    print(json.dumps(locked))
""")


def test_a_run_cannot_lock_revoke_or_invalidate_its_uids_keyrings_to_keep_them(
    spawn_path: str,
) -> None:
    base = 645000 + os.getpid() % 5000
    config = SandboxConfig(wall_timeout=30, dedicated_uid_base=base, dedicated_uid_count=1)
    name = new_marker()

    async def go() -> tuple[str, dict]:
        async with SandboxIsolator(config, gate=False) as isolator:
            first = await isolator.execute("python3", ["-I", "-S", "-c", STASH_AND_LOCK, name])
            second = await isolator.execute("python3", ["-I", "-S", "-c", LOOK, name])
            assert second.exit_code == 0, second.stderr
            return first.stdout.decode(), json.loads(second.stdout)

    first, seen = anyio.run(go)
    assert seen["uid"] == base
    assert (seen["user"], seen["user_session"], seen["persistent"]) == (None, None, False), (
        first, seen)


HOST = KEYS + textwrap.dedent("""
    import shutil, subprocess
    import anyio
    from neuroflow.sandbox import SandboxConfig, SandboxIsolator
    from neuroflow.sandbox import process
    if sys.argv[2] == "fork":
        process._native_spawn = None
    # A session keyring of the host's own, holding a secret.
    assert libc.syscall(KEYCTL, 1, b"host-session-" + sys.argv[1].encode()) >= 0
    assert put(sys.argv[1], -3) >= 0            # KEY_SPEC_SESSION_KEYRING
    look = "\\n".join([sys.argv[3], "print(json.dumps(find(sys.argv[1])))"])
    # The control: a child that only changes its uid still possesses the keyring.
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    direct = subprocess.run([python, "-I", "-S", "-c", look, sys.argv[1]],
                            user=612399, group=612399, extra_groups=[],
                            capture_output=True, check=True).stdout

    async def sandboxed():
        async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:
            result = await box.execute("python3", ["-I", "-S", "-c", look, sys.argv[1]])
            return result.stdout

    print(json.dumps({"direct": json.loads(direct),
                      "sandboxed": json.loads(anyio.run(sandboxed))}))
""")


def test_a_run_cannot_read_the_hosts_session_keyring(spawn_path: str) -> None:
    name = new_marker()
    host = subprocess.run([sys.executable, "-c", HOST, name, spawn_path, KEYS],
                          capture_output=True, timeout=120, check=False)
    assert host.returncode == 0, host.stderr.decode()
    report = json.loads(host.stdout)
    assert report["direct"] == "stashed by 0", report
    assert report["sandboxed"] is None, report
