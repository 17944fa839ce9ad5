"""What a run leaves behind besides files: SysV IPC objects (shared memory, semaphore sets,
message queues) and POSIX message queues.  None may outlive the run -- including one the
run handed to another owner (``IPC_SET``) to hide it -- and a run must not reach the host's
own SysV objects.  Each check is made in the host's IPC namespace, by the run's uid."""

from __future__ import annotations

import ctypes
import json
import os
import textwrap
from collections.abc import Iterator

import anyio
import pytest
from sandbox_helpers import new_marker

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, cgroups, process, runas

ROOT = os.geteuid() == 0

pytestmark = [
    pytest.mark.skipif(not ROOT, reason="the host is not root here: runs keep its uid"),
    pytest.mark.skipif(not cgroups.support().usable,
                       reason="this machine has no usable pids/memory cgroup"),
]

IPC_CREAT, IPC_RMID = 0o1000, 0
O_RDONLY, O_RDWR, O_CREAT = os.O_RDONLY, os.O_RDWR, os.O_CREAT

# Run by the sandbox's python3 under the run's uid: makes one object of each kind, hands
# a second segment to root to hide it, and reports the uid and what worked.
LEAVE = textwrap.dedent("""
    import ctypes, json, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mq_open.restype = ctypes.c_int
    made = {}
    made["shm"] = libc.shmget(0, 4096, 0o1000 | 0o600)
    made["sem"] = libc.semget(0, 1, 0o1000 | 0o600)
    made["msg"] = libc.msgget(0, 0o1000 | 0o600)
    hidden = libc.shmget(0, 4096, 0o1000 | 0o600)
    buf = ctypes.create_string_buffer(512)
    made["hidden"] = hidden
    if hidden >= 0 and libc.shmctl(hidden, 2, buf) == 0:      # IPC_STAT
        buf[4:8] = (0).to_bytes(4, sys.byteorder)              # ipc_perm.uid := root
        made["handed_to_root"] = libc.shmctl(hidden, 1, buf) == 0   # IPC_SET
    made["mq"] = libc.mq_open(sys.argv[1].encode(), os.O_CREAT | os.O_RDWR, 0o600, None)
    attach = libc.shmat(made["shm"], None, 0)
    print(json.dumps({"uid": os.getuid(), "made": made}))
""")

# Tries to reach a SysV segment the host made (mode 0666, a known key).
REACH = textwrap.dedent("""
    import ctypes, sys
    libc = ctypes.CDLL(None, use_errno=True)
    print("reached" if libc.shmget(int(sys.argv[1]), 0, 0) >= 0 else "not found")
""")


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mq_open.restype = ctypes.c_int
    return libc


def _run(code: str, *args: str, shared_ipc: bool = False):
    """Run ``code`` in the sandbox's python3 in a fresh isolator; ``shared_ipc``: as on a
    host that cannot give runs an IPC namespace of their own (the sweep by uid)."""
    isolator = SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False)
    if shared_ipc:
        isolator._new_ipc = False
    try:
        return isolator.execute_sync("python3", ["-I", "-S", "-c", code, *args])
    finally:
        anyio.run(isolator.aclose)


def _mq_exists(name: str) -> bool:
    libc = _libc()
    mqd = libc.mq_open(name.encode(), O_RDONLY, 0, None)
    if mqd >= 0:
        libc.mq_close(mqd)
        return True
    return False


@pytest.fixture(params=["native", "fork"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with the C spawn (when installed) and with the fork fallback."""
    if request.param == "native" and process.spawn_path() != "native":
        pytest.skip("neuroflow-native is not installed here")
    if request.param == "fork":
        monkeypatch.setattr(process, "_native_spawn", None)
    return request.param


@pytest.fixture
def queue_name() -> Iterator[str]:
    name = "/" + new_marker()
    yield name
    _libc().mq_unlink(name.encode())


def _remove_all_of(uid: int) -> None:
    for kind, ident in runas.sysv_ipc_of(uid):
        libc = _libc()
        if kind == "sem":
            libc.semctl(ident, 0, IPC_RMID)
        else:
            getattr(libc, f"{kind}ctl")(ident, IPC_RMID, None)


def test_no_ipc_object_of_a_run_outlives_it(queue_name: str, spawn_path: str) -> None:
    result = _run(LEAVE, queue_name)
    report = json.loads(result.stdout)
    uid, made = report["uid"], report["made"]
    try:
        # The program did make every kind (the check below is not vacuous).
        assert uid != 0
        assert all(made[kind] >= 0 for kind in ("shm", "sem", "msg", "hidden", "mq")), made
        assert made["handed_to_root"] is True
        assert runas.sysv_ipc_of(uid) == []
        assert not _mq_exists(queue_name)
    finally:
        _remove_all_of(uid)


def test_without_an_ipc_namespace_the_sweep_by_uid_removes_sysv_objects(
    queue_name: str, spawn_path: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The control: without the sweep, the objects stay behind in the host's namespace.
    real_sweep = runas.remove_sysv_ipc
    monkeypatch.setattr(runas, "remove_sysv_ipc", lambda uid: [])
    report = json.loads(_run(LEAVE, queue_name, shared_ipc=True).stdout)
    try:
        left = {kind for kind, _ in runas.sysv_ipc_of(report["uid"])}
        assert left == {"shm", "sem", "msg"}, report
    finally:
        _remove_all_of(report["uid"])
    monkeypatch.setattr(runas, "remove_sysv_ipc", real_sweep)
    report = json.loads(_run(LEAVE, queue_name, shared_ipc=True).stdout)
    try:
        assert report["made"]["handed_to_root"] is True
        # Found by creator too: the segment handed to root is gone as well.
        assert runas.sysv_ipc_of(report["uid"]) == []
    finally:
        _remove_all_of(report["uid"])


def test_a_run_cannot_reach_the_hosts_sysv_objects(spawn_path: str) -> None:
    libc = _libc()
    key = 0x4E460000 + os.getpid() % 0xFFFF
    shm = libc.shmget(key, 4096, IPC_CREAT | 0o666)
    assert shm >= 0, os.strerror(ctypes.get_errno())
    try:
        # The control: sharing the host's IPC namespace, the run finds it.
        assert _run(REACH, str(key), shared_ipc=True).stdout == b"reached\n"
        assert _run(REACH, str(key)).stdout == b"not found\n"
    finally:
        libc.shmctl(shm, IPC_RMID, None)
