"""The scheduling group: where a run's new session would otherwise be a new top-level
scheduling group (the host in the root cpu cgroup, the kernel's autogroup on), the thread
that starts runs sits in a cpu cgroup of this process and each run is born there and goes
into a cpu cgroup of its own inside it.  The run still leads its own session; it cannot
write or leave its cpu cgroup; a thread that has a cpu cgroup of its own is left alone;
the group goes with its process."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import threading

import anyio
import pytest

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, cgroups

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the host is not root here"),
    pytest.mark.skipif(not cgroups.support().usable, reason="no usable pids/memory cgroup"),
    pytest.mark.skipif(not cgroups.support().sched,
                       reason=f"no scheduling group here: {cgroups.support().sched_note}"),
]

#: The run reports its cpu cgroup (as /proc/self/cgroup names it), whether it leads its
#: own session, and what came of writing its cpu cgroup's files and of leaving it.
REPORT = textwrap.dedent("""
    import json, os, sys
    cpu = next(line.split(":", 2)[2] for line in open("/proc/self/cgroup").read().splitlines()
               if "cpu" in line.split(":", 2)[1].split(","))
    mount = sys.argv[1]
    tries = {}
    for label, path, value in (
            ("own shares", f"{mount}{cpu}/cpu.shares", "262144"),
            ("group shares", f"{mount}{os.path.dirname(cpu)}/cpu.shares", "262144"),
            ("join the group", f"{mount}{os.path.dirname(cpu)}/tasks", str(os.getpid())),
            ("join the root", f"{mount}/tasks", str(os.getpid()))):
        try:
            with open(path, "w") as fh:
                fh.write(value)
            tries[label] = "WROTE"
        except OSError as exc:
            tries[label] = exc.errno
    print(json.dumps({"cpu": cpu, "leader": os.getsid(0) == os.getpid(), "tries": tries}))
""")


def _thread_cpu_cgroup() -> str:
    with open("/proc/thread-self/cgroup") as fh:
        for line in fh.read().splitlines():
            _, names, path = line.split(":", 2)
            if "cpu" in names.split(","):
                return path
    raise AssertionError("no cpu line in /proc/thread-self/cgroup")


def test_runs_are_born_in_the_group_each_in_a_cpu_cgroup_of_its_own() -> None:
    mount = cgroups.support().sched
    group = f"/neuroflow-{os.getpid()}-cpu"

    async def two_at_once() -> list[dict]:
        reports: list[dict] = []
        async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:

            async def one() -> None:
                result = await box.execute("python3", ["-I", "-S", "-c", REPORT, mount])
                assert result.exit_code == 0, result.stderr
                reports.append(json.loads(result.stdout))

            async with anyio.create_task_group() as tg:
                tg.start_soon(one)
                tg.start_soon(one)
        return reports

    reports = anyio.run(two_at_once)
    # The thread that started them is in the group ...
    assert _thread_cpu_cgroup() == group
    cpus = [report["cpu"] for report in reports]
    # ... each run in a cpu cgroup of its own inside it, and the two are not the same.
    for cpu in cpus:
        assert os.path.dirname(cpu) == group
        assert os.path.basename(cpu).startswith(f"neuroflow-{os.getpid()}-")
    assert len(set(cpus)) == 2
    for report in reports:
        assert report["leader"] is True  # still a session of its own
        # Neither its weight nor the group's may it change, nor may it leave: refused
        # for want of permission (the files are there, root's).
        assert set(report["tries"].values()) <= {errno.EACCES, errno.EPERM}, report


def test_a_thread_that_has_a_cpu_cgroup_of_its_own_stays_there() -> None:
    mount = cgroups.support().sched
    mine = os.path.join(mount, f"nf-test-{os.getpid()}")
    os.mkdir(mine)
    seen: dict[str, object] = {}

    def elsewhere() -> None:
        with open(os.path.join(mine, "tasks"), "w") as fh:
            fh.write(str(threading.get_native_id()))
        seen["entered"] = cgroups.enter_sched_group()
        seen["thread"] = _thread_cpu_cgroup()

        async def go() -> str:
            async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:
                result = await box.execute("python3", ["-I", "-S", "-c", REPORT, mount])
                return json.loads(result.stdout)["cpu"]

        seen["run"] = anyio.run(go)
        with open(os.path.join(mount, "tasks"), "w") as fh:
            fh.write(str(threading.get_native_id()))

    try:
        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
    finally:
        os.rmdir(mine)
    assert seen["entered"] is False
    assert seen["thread"] == f"/nf-test-{os.getpid()}"
    # Born in that thread's cgroup, the run stays in it (moving it elsewhere would cost
    # the very wait the group is there to avoid).
    assert seen["run"] == f"/nf-test-{os.getpid()}"


ONE_RUN_THEN = textwrap.dedent("""
    import os, sys, anyio
    from neuroflow.sandbox import SandboxConfig, SandboxIsolator, cgroups

    async def go():
        async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:
            assert (await box.execute("/bin/true")).ok
    anyio.run(go)
    print(cgroups.sched_group(), flush=True)
    if sys.argv[1] == "crash":
        os._exit(0)  # no clean-up at exit: the next process's sweep removes what is left
""")


def _to_the_root_cpu_cgroup() -> None:
    """(pre-exec) A process started from a thread in this process's group is in that
    group -- a cpu cgroup of its own, which needs no group: start it where we started."""
    with open(os.path.join(cgroups.support().sched, "tasks"), "w") as fh:
        fh.write(str(os.getpid()))


@pytest.mark.parametrize("how", ["exit", "crash"])
def test_the_group_goes_with_its_process(how: str) -> None:
    done = subprocess.run([sys.executable, "-c", ONE_RUN_THEN, how], capture_output=True,
                          text=True, timeout=120, check=False,
                          preexec_fn=_to_the_root_cpu_cgroup)
    assert done.returncode == 0, done.stderr
    group = done.stdout.strip()
    assert os.path.basename(group).endswith("-cpu")
    if how == "exit":
        assert not os.path.exists(group)
        return
    assert os.path.isdir(group)  # its run cgroup is still inside
    cgroups._sweep(cgroups.support().sched)
    assert not os.path.exists(group)


def test_a_backend_that_starts_its_children_its_own_way_gets_the_same_placement() -> None:
    # What a backend writes its children into (the namespace backend writes its PID 1 into
    # procs_files()): from a thread in the group, the run's cpu cgroup comes too, last.
    pool = cgroups.pool()
    assert pool is not None
    group = pool.acquire(None, None)
    seen: dict[str, list[str]] = {}

    def outside() -> None:  # a fresh thread: not (yet) in the group
        seen["outside"] = group.procs_files()

    try:
        worker = threading.Thread(target=outside)
        worker.start()
        worker.join()
        assert cgroups.enter_sched_group()
        seen["inside"] = group.procs_files()
    finally:
        pool.release(group)
    assert group.sched_dir is not None
    assert not any(path.startswith(group.sched_dir) for path in seen["outside"])
    assert seen["inside"] == [*seen["outside"], group.sched_dir + "/cgroup.procs"]
