"""The process sandbox on the native spawn (``neuroflow-native``): every run goes through
it, the child sets itself up exactly as the fork path does (run cgroups, rlimits,
``no_new_privs``, the dropped uid), the host's threads keep their credentials, a failing
step is reported, and the fork path is still there when the extension is missing."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import anyio
import pytest
from sandbox_helpers import reachable_directory

from neuroflow.errors import SandboxError
from neuroflow.sandbox import SandboxConfig, SandboxIsolator, cgroups, doctor, process

try:
    import neuroflow_native
except ImportError:  # pragma: no cover - depends on what is installed
    neuroflow_native = None

ROOT = os.geteuid() == 0
MiB = 1024 * 1024

needs_native = pytest.mark.skipif(
    neuroflow_native is None,
    reason="neuroflow-native is not installed here (pip install ./native)",
)
needs_root = pytest.mark.skipif(not ROOT, reason="the host is not root here")
needs_cgroups = pytest.mark.skipif(
    not cgroups.support().usable,
    reason="this machine has no usable pids/memory cgroup (see `neuroflow doctor`)",
)

# What the sandboxed program reports about itself, as JSON.
REPORT = (
    "import json\n"
    "status = dict(l.rstrip('\\n').split(':\\t', 1) for l in open('/proc/self/status')"
    " if ':\\t' in l)\n"
    "limits = {l[:26].strip(): l[26:].split()[:2] for l in open('/proc/self/limits')}\n"
    "print(json.dumps({'uid': status['Uid'].split(), 'gid': status['Gid'].split(),\n"
    "    'groups': status['Groups'].split(), 'nnp': status['NoNewPrivs'], 'limits': limits,\n"
    "    'cgroup': open('/proc/self/cgroup').read().splitlines()}))\n"
)


def run(config: SandboxConfig, command: str, *args: str):
    """Run once in a fresh isolator (no gate), blocking."""
    isolator = SandboxIsolator(config, gate=False)
    try:
        return isolator.execute_sync(command, list(args))
    finally:
        anyio.run(isolator.aclose)


@pytest.fixture(params=["native", "fork"])
def spawn_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on the native spawn and on the fork fallback."""
    if request.param == "native":
        if neuroflow_native is None:
            pytest.skip("neuroflow-native is not installed here (pip install ./native)")
    else:
        monkeypatch.setattr(process, "_native_spawn", None)
    assert process.spawn_path() == request.param
    return request.param


@needs_native
def test_the_native_spawn_is_active_and_doctor_says_so() -> None:
    assert process.spawn_path() == "native"
    check = {c.name: c for c in doctor.all_checks()}["process sandbox: spawn"]
    assert check.ok
    assert check.detail.startswith("native (neuroflow-native ")


def test_doctor_names_the_fork_path_when_the_extension_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(process, "_native_spawn", None)
    check = {c.name: c for c in doctor.all_checks()}["process sandbox: spawn"]
    assert not check.ok
    assert not check.required
    assert check.detail.startswith("fork: ")
    assert "pip install 'neuroflow[native]'" in check.detail


@needs_native
def test_every_run_goes_through_the_native_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = neuroflow_native.spawn

    def counting(executable, *args, **kwargs):  # the real spawn, counted
        calls.append(os.fsdecode(executable))
        return real(executable, *args, **kwargs)

    monkeypatch.setattr(process, "_native_spawn", counting)
    result = run(SandboxConfig(wall_timeout=30), "/bin/sh", "-c", "echo hi; exit 3")
    assert (result.exit_code, result.stdout) == (3, b"hi\n")
    assert calls == ["/bin/sh"]


def test_output_stdin_and_exit_code_on_both_paths(spawn_path: str) -> None:
    isolator = SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False)
    try:
        result = isolator.execute_sync("/bin/sh", ["-c", "cat; echo err >&2; exit 5"],
                                       stdin=b"in\n")
    finally:
        anyio.run(isolator.aclose)
    assert (result.exit_code, result.stdout, result.stderr) == (5, b"in\n", b"err\n")


@needs_root
@needs_cgroups
def test_the_child_is_set_up_the_same_on_both_paths(spawn_path: str) -> None:
    config = SandboxConfig(wall_timeout=30, max_open_files=123, cpu_time_limit=7,
                           max_processes=32, memory_limit=256 * MiB)
    result = run(config, "python3", "-I", "-S", "-c", REPORT)
    assert result.exit_code == 0, result.stderr
    seen = json.loads(result.stdout)
    uid = int(seen["uid"][0])
    assert uid >= config.dedicated_uid_base
    assert seen["uid"] == [str(uid)] * 4
    assert seen["gid"] == [str(uid)] * 4
    assert seen["groups"] == []
    assert seen["nnp"] == "1"
    assert seen["limits"]["Max open files"] == ["123", "123"]
    assert seen["limits"]["Max cpu time"] == ["7", "8"]
    assert seen["limits"]["Max core file size"] == ["0", "0"]
    # In the run's own cgroups, which the host process never joins.
    with open("/proc/self/cgroup") as fh:
        host = fh.read().splitlines()
    info = cgroups.support()
    for controller in info.parents:
        theirs = next(line for line in seen["cgroup"]
                      if controller in line.split(":")[1].split(","))
        ours = next(line for line in host if controller in line.split(":")[1].split(","))
        assert theirs != ours, controller
        assert theirs.startswith(ours.rstrip("/") + "/") or ours.endswith(":/"), controller


@needs_root
def test_the_hosts_threads_keep_their_credentials(spawn_path: str) -> None:
    parked = threading.Event()
    release = threading.Event()
    tids: list[int] = []

    def park() -> None:
        tids.append(threading.get_native_id())
        parked.set()
        release.wait(60)

    thread = threading.Thread(target=park)
    thread.start()
    try:
        assert parked.wait(10)
        for _ in range(3):
            result = run(SandboxConfig(wall_timeout=30), "/usr/bin/id", "-u")
            assert result.exit_code == 0
            assert int(result.stdout) >= SandboxConfig().dedicated_uid_base
        for tid in (threading.get_native_id(), tids[0]):
            with open(f"/proc/self/task/{tid}/status") as fh:
                lines = dict(line.split(":\t", 1) for line in fh if ":\t" in line)
            assert lines["Uid"].split() == ["0"] * 4, tid
            assert lines["Gid"].split() == ["0"] * 4, tid
            assert lines["NoNewPrivs"].strip() == "0", tid
        assert os.getresuid() == (0, 0, 0)
    finally:
        release.set()
        thread.join()


@needs_root
def test_an_exec_the_runs_uid_may_not_do_is_reported(spawn_path: str) -> None:
    with reachable_directory() as where:
        program = Path(where) / "root-only"
        program.write_text("#!/bin/sh\necho ran\n")
        program.chmod(0o700)  # root's: the run's uid may not execute it
        with pytest.raises(SandboxError) as info:
            run(SandboxConfig(wall_timeout=30), str(program))
    message = str(info.value)
    assert "Permission denied" in message
    assert "the run's uid" in message
    if spawn_path == "native":
        assert "exec: Permission denied" in message


@needs_root
def test_a_work_dir_under_a_closed_directory_gets_its_own_view(spawn_path: str) -> None:
    if process._mount_calls() is None:
        pytest.skip("no CAP_SYS_ADMIN here: mount namespaces cannot be made")
    with reachable_directory() as where:
        closed = Path(where) / "closed"
        work = closed / "deep" / "ws"
        work.mkdir(parents=True)
        (closed / "secret").mkdir()
        closed.chmod(0o700)
        config = SandboxConfig(wall_timeout=30, work_dir=str(work))
        result = run(config, "/bin/sh", "-c", f"echo hi > {work}/f; cat {work}/f; ls {closed}")
        assert (result.exit_code, result.stdout, result.stderr) == (0, b"hi\ndeep\n", b"")
        assert sorted(os.listdir(closed)) == ["deep", "secret"]
        assert (work / "f").stat().st_uid == 0  # handed back to the host afterwards
