"""Hostile code under the process sandbox when the host runs as root (as most containers
and CI do): the sandbox must not be able to undo its own limits, reach the host process,
or run anything on the host before the checks.  Each test is an attack that worked before
the privilege drop."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from pathlib import Path

import anyio
import pytest
from sandbox_helpers import new_marker, survivors

from neuroflow.errors import CommandNotAllowedError, ConfigError, UnsupportedLimitError
from neuroflow.sandbox import SandboxConfig, SandboxIsolator, TerminationReason, cgroups
from neuroflow.sandbox.resolve import real_program, resolve_command

MiB = 1024 * 1024
ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not ROOT, reason="the host is not root here")
needs_cgroups = pytest.mark.skipif(
    not cgroups.support().usable,
    reason="this machine has no usable pids/memory cgroup (see `neuroflow doctor`)",
)


def run(config: SandboxConfig, command: str, *args: str, env: dict | None = None):
    """Run once in a fresh isolator (no gate), blocking."""
    isolator = SandboxIsolator(config, gate=False)
    try:
        return isolator.execute_sync(command, list(args), env=env)
    finally:
        anyio.run(isolator.aclose)


def attack(code: str, config: SandboxConfig | None = None, *extra: str):
    """Run ``code`` in the sandbox's ``python3`` (the name, as a tool would pass it)."""
    return run(config or SandboxConfig(wall_timeout=30), "python3", "-I", "-S", "-c", code,
               *extra)


def own_cgroup_dir(controller: str) -> str:
    """Code for the sandboxed program: its own cgroup directory of ``controller``, found
    from /proc/self/mountinfo and /proc/self/cgroup."""
    return (
        "def own(controller):\n"
        "    mount = None\n"
        "    for line in open('/proc/self/mountinfo'):\n"
        "        left, right = line.split(' - ')\n"
        "        if right.split()[0] == 'cgroup' and controller in right.split()[2].split(','):\n"
        "            mount = left.split()[4]\n"
        "    for line in open('/proc/self/cgroup'):\n"
        "        _, names, path = line.rstrip('\\n').split(':', 2)\n"
        "        if controller in names.split(','):\n"
        "            return mount + path\n"
        f"D = own({controller!r})\n"
    )


def try_write(path_expr: str, value: str) -> str:
    return (
        "try:\n"
        f"    open({path_expr}, 'w').write({value!r})\n"
        "    print('WROTE')\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno)\n"
    )


# --- 1. nothing runs before the checks; resolving executes nothing ---------------------


def _plant_shim(base: Path, marker: Path) -> None:
    (base / "shims").mkdir(parents=True)
    (base / "bin").mkdir()
    shim = base / "shims" / "python3"
    shim.write_text('#!/bin/sh\n# a pyenv shim\necho "shim ran as $(id -u)"\n')
    shim.chmod(0o755)
    pyenv = base / "bin" / "pyenv"
    pyenv.write_text(f"#!/bin/sh\necho planted > {marker}\necho /bin/true\n")
    pyenv.chmod(0o755)


def test_a_refused_planted_shim_runs_nothing_on_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pyenv-ran"
    _plant_shim(tmp_path / "ws", marker)
    sandbox = SandboxIsolator(SandboxConfig(work_dir="ws", allowed_commands=["ls"]),
                              gate=False)
    with pytest.raises(CommandNotAllowedError):
        sandbox.execute_sync("shims/python3")
    assert not marker.exists()


def test_a_planted_shim_is_run_literally_in_the_sandbox_never_resolved_on_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pyenv-ran"
    _plant_shim(tmp_path / "ws", marker)
    assert real_program(str(tmp_path / "ws" / "shims" / "python3")) == str(
        tmp_path / "ws" / "shims" / "python3")
    result = run(SandboxConfig(work_dir="ws"), "shims/python3")
    assert result.stdout.startswith(b"shim ran")
    assert not marker.exists()


def _trusted_dir() -> Path | None:
    """A fresh directory whose whole path is root-owned and writable by nobody else."""
    for parent in ("/var/cache", "/var/lib", "/opt"):
        try:
            st = os.stat(parent)
        except OSError:
            continue
        if st.st_uid == 0 and not st.st_mode & 0o022 and os.access(parent, os.W_OK):
            path = Path(tempfile.mkdtemp(prefix="nf-pyenv-", dir=parent))
            path.chmod(0o755)
            return path
    return None


@needs_root
def test_a_trusted_pyenv_shim_is_resolved_by_reading_files_not_by_running_pyenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _trusted_dir()
    if root is None:
        pytest.skip("no root-owned, non-writable directory to build a pyenv root in")
    try:
        marker = tmp_path / "pyenv-ran"
        _plant_shim(root, marker)
        real = root / "versions" / "3.99.1" / "bin" / "python3"
        real.parent.mkdir(parents=True)
        real.write_text("#!/bin/sh\necho real\n")
        real.chmod(0o755)
        (root / "version").write_text("3.99.1\n")
        monkeypatch.delenv("PYENV_VERSION", raising=False)
        shim = str(root / "shims" / "python3")
        assert real_program(shim) == str(real)
        assert resolve_command("python3", str(root / "shims")) == str(real)
        assert not marker.exists()
        # The same root made group-writable is no longer trusted: taken literally.
        (root / "versions").chmod(0o775)
        os.utime(shim)  # a new identity for the resolution cache
        assert real_program(shim, os.stat(shim)) == shim
        assert not marker.exists()
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


# --- 2. root inside the sandbox cannot undo its limits -----------------------------------


@needs_root
def test_runs_as_an_unprivileged_dedicated_uid_with_no_new_privs() -> None:
    code = (
        "import os\n"
        "print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
        "status = open('/proc/self/status').read()\n"
        "print([l.split()[1] for l in status.splitlines() if l.startswith('NoNewPrivs')][0])\n"
        "print([l.split()[1] for l in status.splitlines() if l.startswith('CapEff')][0])\n"
    )
    config = SandboxConfig()
    result = attack(code, config)
    assert result.ok, result.stderr
    ids, nnp, caps = result.stdout.decode().splitlines()
    uid, euid, gid, groups = ids.split(" ", 3)
    base = config.dedicated_uid_base
    assert base <= int(uid) < base + config.dedicated_uid_count
    assert uid == euid == gid
    assert groups in ("[]", f"[{gid}]")
    assert nnp == "1"
    assert int(caps, 16) == 0


@needs_root
@needs_cgroups
def test_the_sandbox_cannot_raise_its_own_process_limit() -> None:
    code = own_cgroup_dir("pids") + try_write("D + '/pids.max'", "max") + (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as exc:\n"
        "    print(n, exc.errno)\n"
    )
    marker = new_marker()
    result = attack(code, SandboxConfig(max_processes=8, wall_timeout=30), marker)
    refused, forked = result.stdout.decode().splitlines()
    assert refused.startswith("refused")
    children, err = forked.split()
    assert int(children) < 8 and int(err) == 11  # EAGAIN: the limit held
    assert "processes" in result.limits_hit
    assert survivors(marker) == []


@needs_root
@needs_cgroups
def test_the_sandbox_cannot_lift_its_own_memory_limit() -> None:
    if not cgroups.support().memory:
        pytest.skip("no memory cgroup here")
    code = own_cgroup_dir("memory") + try_write("D + '/memory.limit_in_bytes'", "-1") + (
        "import sys\n"
        "sys.stdout.flush()\n"
        "chunks = []\n"
        "while True:\n"
        "    chunks.append(bytearray(4 * 1024 * 1024))\n"
    )
    result = attack(code, SandboxConfig(memory_limit=64 * MiB, wall_timeout=30))
    assert result.stdout.startswith(b"refused")
    assert result.reason is TerminationReason.MEMORY_LIMIT
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes <= 64 * MiB


@needs_root
@needs_cgroups
def test_the_sandbox_cannot_move_itself_out_of_its_cgroups() -> None:
    code = (
        "import os\n"
        "mounts = {}\n"
        "for line in open('/proc/self/mountinfo'):\n"
        "    left, right = line.split(' - ')\n"
        "    if right.split()[0] == 'cgroup':\n"
        "        for c in right.split()[2].split(','):\n"
        "            mounts[c] = left.split()[4]\n"
        "for c in ('pids', 'memory'):\n"
        "    if c in mounts:\n"
        "        try:\n"
        "            open(mounts[c] + '/cgroup.procs', 'w').write(str(os.getpid()))\n"
        "            print(c, 'MOVED')\n"
        "        except OSError as exc:\n"
        "            print(c, 'refused', exc.errno)\n"
        "print(open('/proc/self/cgroup').read())\n"
    )
    result = attack(code)
    out = result.stdout.decode()
    assert "MOVED" not in out
    assert "refused" in out
    groups = [line for line in out.splitlines() if ":pids:" in line or ":memory:" in line]
    assert groups and all("neuroflow-" in line for line in groups)


@needs_root
def test_the_sandbox_cannot_read_the_hosts_environment_or_memory_or_trace_it() -> None:
    os.environ["NF_HOST_SECRET"] = "host-secret-value"
    try:
        code = (
            "import ctypes, os\n"
            "ppid = os.getppid()\n"
            "for name in ('environ', 'mem', 'maps', 'cmdline'):\n"
            "    try:\n"
            "        data = open(f'/proc/{ppid}/{name}', 'rb').read(4096)\n"
            "        print(name, 'READ', b'host-secret-value' in data)\n"
            "    except OSError as exc:\n"
            "        print(name, 'refused', exc.errno)\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            # PTRACE_SEIZE: attaches without stopping the host (were it allowed).
            "print('ptrace', libc.ptrace(0x4206, ppid, 0, 0), ctypes.get_errno())\n"
        )
        result = attack(code)
    finally:
        del os.environ["NF_HOST_SECRET"]
    assert b"host-secret-value" not in result.stdout
    lines = dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())
    assert lines["environ"].startswith("refused")
    assert lines["mem"].startswith("refused")
    assert lines["maps"].startswith("refused")
    assert lines["ptrace"] == "-1 1"  # EPERM


@needs_root
def test_the_sandbox_cannot_signal_the_host_or_another_run() -> None:
    import subprocess

    other = subprocess.Popen(["sleep", "30"])  # stands in for another run's process
    try:
        code = (
            "import os, sys\n"
            "for label, pid in (('host', os.getppid()), ('other', int(sys.argv[1]))):\n"
            "    try:\n"
            # Signal 0: the kernel's permission check, without stopping anything.
            "        os.kill(pid, 0); print(label, 'MAY SIGNAL')\n"
            "    except OSError as exc:\n"
            "        print(label, 'refused', exc.errno)\n"
        )
        result = attack(code, None, str(other.pid))
        assert result.stdout == b"host refused 1\nother refused 1\n"
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@needs_root
def test_the_sandbox_cannot_reach_the_hosts_key_or_rewrite_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host's directory is an ordinary one: searchable by all, the config readable.
    host = tmp_path / "project"
    host.mkdir()
    host.chmod(0o755)
    tmp_path.chmod(0o755)
    key = host / "audit.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    config = host / "neuroflow.toml"
    config.write_text("[security]\nguards = ['allowlist']\n")
    config.chmod(0o644)
    monkeypatch.chdir(host)
    code = (
        "import os, sys\n"
        "host = sys.argv[1]\n"
        "for label, path in (('cwd-key', f'/proc/{os.getppid()}/cwd/audit.key'),\n"
        "                    ('key', host + '/audit.key')):\n"
        "    try:\n"
        "        open(path, 'rb').read(); print(label, 'READ')\n"
        "    except OSError as exc:\n"
        "        print(label, 'refused', exc.errno)\n"
        "for label, path in (('cwd-config', f'/proc/{os.getppid()}/cwd/neuroflow.toml'),\n"
        "                    ('config', host + '/neuroflow.toml')):\n"
        "    try:\n"
        "        open(path, 'w').write('[security]\\nguards = []\\n'); print(label, 'WROTE')\n"
        "    except OSError as exc:\n"
        "        print(label, 'refused', exc.errno)\n"
        "try:\n"
        "    os.replace('x', host + '/neuroflow.toml'); print('replace', 'WROTE')\n"
        "except OSError as exc:\n"
        "    print('replace', 'refused', exc.errno)\n"
    )
    result = attack(code, SandboxConfig(wall_timeout=30), str(host))
    lines = dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())
    assert set(lines) == {"cwd-key", "key", "cwd-config", "config", "replace"}, result
    assert all(value.startswith("refused") for value in lines.values()), lines
    assert config.read_text() == "[security]\nguards = ['allowlist']\n"


@needs_root
def test_the_work_dir_is_the_runs_for_the_run_and_the_hosts_afterwards(tmp_path: Path) -> None:
    work = tmp_path / "ws"
    work.mkdir()
    (work / "input.txt").write_text("data")
    result = run(SandboxConfig(work_dir=str(work)), "/bin/sh", "-c",
                 "cat input.txt > copy.txt && echo more >> input.txt && mkdir sub && "
                 "touch sub/f && id -u")
    assert result.ok, result.stderr
    assert int(result.stdout) != 0
    assert (work / "copy.txt").read_text() == "data"
    for path in (work, work / "input.txt", work / "copy.txt", work / "sub", work / "sub/f"):
        assert path.stat().st_uid == 0, path


@needs_root
def test_python3_resolves_to_an_interpreter_the_dropped_uid_may_execute() -> None:
    sandbox = SandboxIsolator(SandboxConfig(), gate=False)
    result = sandbox.execute_sync("python3", ["-I", "-S", "-c",
                                              "import sys; print(sys.version_info[0])"])
    assert result.ok, result.stderr
    assert result.stdout == b"3\n"


@needs_root
def test_an_interpreter_the_run_cannot_execute_is_named_in_the_error() -> None:
    home = Path(tempfile.mkdtemp(prefix="nf-private-"))
    try:
        home.chmod(0o700)
        program = home / "tool"
        program.write_text("#!/bin/sh\necho hi\n")
        program.chmod(0o755)
        from neuroflow.errors import SandboxError

        with pytest.raises(SandboxError, match="may not execute"):
            run(SandboxConfig(), str(program))
    finally:
        import shutil

        shutil.rmtree(home, ignore_errors=True)


@needs_root
def test_strict_refuses_to_run_as_root_and_root_needs_weaker_isolation() -> None:
    with pytest.raises(UnsupportedLimitError, match="strict"):
        SandboxIsolator(SandboxConfig(security_level="strict", run_as="root",
                                      allow_weaker_isolation=True), gate=False)
    with pytest.raises(UnsupportedLimitError, match="run_as='root'"):
        SandboxIsolator(SandboxConfig(run_as="root"), gate=False)
    weaker = SandboxIsolator(SandboxConfig(run_as="root", allow_weaker_isolation=True),
                             gate=False)
    result = weaker.execute_sync("id", ["-u"])
    assert result.stdout == b"0\n"
    assert any("run_as='root'" in w for w in result.warnings)


@needs_root
def test_run_as_a_named_user_uses_its_uid_and_group_only() -> None:
    result = run(SandboxConfig(run_as="nobody"), "/bin/sh", "-c", "id -un; id -G")
    assert result.ok, result.stderr
    name, groups = result.stdout.decode().split()[0], result.stdout.decode().split()[1:]
    import pwd

    assert name == "nobody"
    assert groups == [str(pwd.getpwnam("nobody").pw_gid)]


def test_run_as_is_checked() -> None:
    with pytest.raises(ConfigError, match="run_as"):
        SandboxIsolator(SandboxConfig(run_as="no-such-user-here"), gate=False)
    with pytest.raises(ConfigError, match="run_as"):
        SandboxConfig(run_as="")
    with pytest.raises(ConfigError, match="dedicated_uid_count"):
        SandboxConfig(dedicated_uid_count=0)
    assert SandboxConfig(run_as=65534).run_as == "65534"


# --- 3. only the child ever enters the run's cgroups -------------------------------------


@needs_root
@needs_cgroups
def test_no_host_thread_ever_enters_a_run_cgroup() -> None:
    """A watcher thread samples the cgroups of every host thread while runs start.

    A run cgroup is ``neuroflow-<pid>-<n>`` in any hierarchy.  Where runs need a
    scheduling group (``cgroups.support().sched``), the thread that starts them sits in
    ``neuroflow-<pid>-cpu`` of the cpu hierarchy, which has no limits and no controller
    but cpu: it is the parent of the runs' cpu cgroups, never one of them."""
    import re

    run_cgroup = re.compile(rf"/neuroflow-{os.getpid()}-\d+$")
    seen: list[str] = []
    sched: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for tid in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{tid}/cgroup") as fh:
                        text = fh.read()
                except OSError:
                    continue
                for line in text.splitlines():
                    _, names, path = line.split(":", 2)
                    if run_cgroup.search(path):
                        seen.append(line)
                    elif "neuroflow-" in path:
                        sched.add(f"{names}:{path}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        async def many() -> None:
            async with SandboxIsolator(SandboxConfig(), gate=False) as sandbox:
                for _ in range(150):
                    await sandbox.execute("/bin/true")

        anyio.run(many)
    finally:
        stop.set()
        watcher.join()
    assert seen == []
    # The scheduling group, if any: only in the cpu hierarchy (no memory or pids limit
    # there could ever count or kill a host thread).
    for entry in sched:
        names, path = entry.split(":", 1)
        assert cgroups.support().sched
        assert "cpu" in names.split(",") and not {"memory", "pids"} & set(names.split(","))
        assert path.endswith(f"/neuroflow-{os.getpid()}-cpu")


@needs_root
@needs_cgroups
def test_a_limit_too_small_to_start_in_kills_only_the_child() -> None:
    if not cgroups.support().memory:
        pytest.skip("no memory cgroup here")
    for _ in range(10):
        result = run(SandboxConfig(memory_limit=128 * 1024), "/bin/sh", "-c", "echo started")
        assert result.reason is TerminationReason.MEMORY_LIMIT
        assert result.signal == signal.SIGKILL
    # (this process is alive to assert it)


# --- 4. a reused cgroup starts every run with its own limits ----------------------------


@needs_cgroups
def test_a_limit_raised_between_runs_does_not_carry_into_the_next_run() -> None:
    code = own_cgroup_dir("pids") + "print(D)\nprint(open(D + '/pids.max').read().strip())\n"

    async def two_runs() -> tuple[str, str, str, str]:
        async with SandboxIsolator(SandboxConfig(max_processes=9), gate=False) as sandbox:
            first = await sandbox.execute("python3", ["-I", "-S", "-c", code])
            where, limit = first.stdout.decode().split()
            # Someone raises the limit of the (now idle, pooled) cgroup between runs.
            with open(where + "/pids.max", "w") as fh:
                fh.write("max")
            second = await sandbox.execute("python3", ["-I", "-S", "-c", code])
            where2, limit2 = second.stdout.decode().split()
            return where, limit, where2, limit2

    where, limit, where2, limit2 = anyio.run(two_runs)
    assert limit == "9"
    assert where2 == where  # the cgroup was reused ...
    assert limit2 == "9"  # ... with the run's own limit


@needs_cgroups
def test_a_memory_limit_raised_between_runs_does_not_carry_into_the_next_run() -> None:
    if not cgroups.support().memory:
        pytest.skip("no memory cgroup here")
    code = (own_cgroup_dir("memory")
            + "print(D)\nprint(open(D + '/memory.limit_in_bytes').read().strip())\n")

    async def two_runs() -> list[str]:
        async with SandboxIsolator(SandboxConfig(memory_limit=96 * MiB), gate=False) as box:
            first = await box.execute("python3", ["-I", "-S", "-c", code])
            where, _ = first.stdout.decode().split()
            for name in ("memory.memsw.limit_in_bytes", "memory.limit_in_bytes"):
                if os.path.exists(f"{where}/{name}"):  # memsw first: it must stay >=
                    with open(f"{where}/{name}", "w") as fh:
                        fh.write("-1")
            second = await box.execute("python3", ["-I", "-S", "-c", code])
            return first.stdout.decode().split() + second.stdout.decode().split()

    where, limit, where2, limit2 = anyio.run(two_runs)
    assert where2 == where
    assert int(limit) == int(limit2) == 96 * MiB


# --- 5. what a run leaves behind ------------------------------------------------------


@needs_root
def test_files_a_run_leaves_in_tmp_and_dev_shm_are_removed() -> None:
    marker = new_marker()
    paths = [f"/tmp/{marker}", f"/dev/shm/{marker}", f"/var/tmp/{marker}",
             f"/tmp/{marker}-dir"]
    code = (
        "import os, sys\n"
        "m = sys.argv[1]\n"
        "for p in ('/tmp/' + m, '/dev/shm/' + m, '/var/tmp/' + m):\n"
        "    open(p, 'w').write('left')\n"
        "os.makedirs('/tmp/' + m + '-dir/deeper')\n"
        "open('/tmp/' + m + '-dir/deeper/f', 'w').write('x')\n"
        "print('ok')\n"
    )
    try:
        result = attack(code, None, marker)
        assert result.stdout == b"ok\n", result.stderr
        assert [p for p in paths if os.path.lexists(p)] == []
    finally:
        for p in paths:
            if os.path.isdir(p):
                import shutil

                shutil.rmtree(p, ignore_errors=True)
            elif os.path.lexists(p):
                os.unlink(p)


@needs_root
def test_files_a_run_leaves_in_a_shared_directory_in_tmp_are_removed() -> None:
    marker = new_marker()
    shared = Path(f"/tmp/{marker}-shared")
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp/.X11-unix: anyone may create entries
    (shared / "someone-elses").write_text("keep")
    try:
        code = "import sys\nopen(sys.argv[1] + '/left', 'w').write('x')\nprint('ok')\n"
        result = attack(code, None, str(shared))
        assert result.stdout == b"ok\n", result.stderr
        assert sorted(p.name for p in shared.iterdir()) == ["someone-elses"]
    finally:
        import shutil

        shutil.rmtree(shared, ignore_errors=True)


@needs_root
def test_a_process_a_run_left_without_a_cgroup_is_gone_too() -> None:
    marker = new_marker()
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.execv('/bin/sleep', ['/bin/sleep', '300', sys.argv[1]])\n"
        "    os._exit(0)\n"
        "print('forked')\n"
    )
    result = attack(code, SandboxConfig(wall_timeout=30), marker)
    assert result.stdout == b"forked\n"
    assert survivors(marker, settle=1.0) == []


def test_a_work_dir_size_cap_is_refused_where_it_cannot_be_enforced() -> None:
    with pytest.raises(UnsupportedLimitError, match="work_dir_max_bytes"):
        SandboxIsolator(SandboxConfig(work_dir_max_bytes=10 * MiB), gate=False)
    with pytest.raises(UnsupportedLimitError, match="work_dir_max_files"):
        SandboxIsolator(SandboxConfig(work_dir_max_files=100), gate=False)
    weaker = SandboxIsolator(SandboxConfig(work_dir_max_files=100,
                                           allow_weaker_isolation=True), gate=False)
    result = weaker.execute_sync("/bin/true")
    assert any("work_dir_max_files" in w for w in result.warnings)


# --- 6. dangerous environment variables ------------------------------------------------


STRICT = dict(security_level="strict", allow_weaker_isolation=True)


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH",
                                  "PYTHONSTARTUP", "BASH_ENV", "NODE_OPTIONS",
                                  "GLIBC_TUNABLES", "PERL5OPT"])
def test_strict_refuses_loader_and_interpreter_variables(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    sandbox = SandboxIsolator(SandboxConfig(allowed_commands=["sh"], **STRICT), gate=False)
    with pytest.raises(CommandNotAllowedError, match=name):
        sandbox.execute_sync("sh", ["-c", f"touch {marker}"], env={name: "/tmp/x"})
    assert not marker.exists()


def test_strict_allows_a_dangerous_variable_listed_by_name() -> None:
    config = SandboxConfig(allowed_dangerous_env=["PYTHONPATH"], **STRICT)
    result = run(config, "sh", "-c", "echo $PYTHONPATH", env={"PYTHONPATH": "/opt/lib"})
    assert result.stdout == b"/opt/lib\n"
    with pytest.raises(CommandNotAllowedError, match="LD_PRELOAD"):
        run(config, "sh", "-c", "true", env={"LD_PRELOAD": "x.so"})


def test_the_standard_level_still_passes_the_callers_variables() -> None:
    result = run(SandboxConfig(), "sh", "-c", "echo $PYTHONPATH",
                 env={"PYTHONPATH": "/opt/lib"})
    assert result.stdout == b"/opt/lib\n"


def _audit_records(cwd: Path) -> list[dict]:
    from neuroflow.security import verify_audit_log

    log = cwd / ".neuroflow" / "audit.log"
    assert verify_audit_log(log).ok
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.anyio
async def test_the_environment_given_is_in_the_audit_record_with_values_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with SandboxIsolator(SandboxConfig(allow_weaker_isolation=True)) as sandbox:
        await sandbox.execute("/bin/true", env={"API_TOKEN": "tok-123456789",
                                                "MODE": "fast-and-loose"})
    async with SandboxIsolator(SandboxConfig(**STRICT)) as sandbox:
        with pytest.raises(CommandNotAllowedError):
            await sandbox.execute("/bin/true", env={"LD_PRELOAD": "/tmp/evil-lib.so"})
    records = _audit_records(tmp_path)
    text = json.dumps(records)
    assert "tok-123456789" not in text
    assert "fast-and-loose" not in text
    assert "evil-lib" not in text
    outcome = next(r for r in records if r.get("outcome") == "success")
    assert set(outcome["details"]["env"]) == {"API_TOKEN", "MODE"}
    denied = next(r for r in records if r.get("outcome") == "denied")
    assert denied["details"]["rule"] == "sandbox.dangerous_env"
    assert set(denied["details"]["env"]) == {"LD_PRELOAD"}
    decision = next(r for r in records if r.get("decision") == "allow")
    assert decision["details"]["resources"]["env"] == ["API_TOKEN", "MODE"]


# --- doctor ---------------------------------------------------------------------------


def test_doctor_says_whether_privileges_can_be_dropped_and_which_python_runs() -> None:
    from neuroflow.sandbox import doctor

    checks = {c.name: c for c in doctor.all_checks()}
    drop = checks["process sandbox: privilege drop"]
    assert drop.ok is ROOT
    assert ("dedicated uid" in drop.detail) if ROOT else ("cannot" in drop.detail)
    python = checks["python3 for sandboxed runs"]
    if ROOT:
        found = resolve_command("python3", who=(600000, 600000))
        assert found is not None and found in python.detail
    caps = checks["work_dir size/file caps"]
    assert caps.ok is False and "namespace" in caps.detail



@needs_root
def test_a_work_dir_under_a_closed_directory_keeps_its_path_and_hides_its_neighbours(
    tmp_path: Path,
) -> None:
    # tmp_path sits under pytest's 0700 directory: the run's uid may not search it.
    work = tmp_path / "project" / "ws"
    work.mkdir(parents=True)
    (tmp_path / "project" / "secret.key").write_text("neighbour")
    (work / "script.py").write_text(
        "import os, sys\n"
        "print(os.getcwd())\n"
        "print(sorted(os.listdir(os.path.dirname(os.getcwd()))))\n"
        "print(os.getuid())\n"
    )
    result = run(SandboxConfig(work_dir=str(work)), "python3", "script.py")
    assert result.ok, result.stderr
    cwd, neighbours, uid = result.stdout.decode().splitlines()
    assert cwd == str(work)
    assert neighbours == "['ws']"  # secret.key is out of sight
    assert int(uid) != 0
    assert (tmp_path / "project" / "secret.key").read_text() == "neighbour"


# --- the host's session keyring -----------------------------------------------------------

KEYCTL_NR = {"x86_64": 250, "aarch64": 219}
ADD_KEY_NR = {"x86_64": 248, "aarch64": 217}

READ_SESSION_KEY = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long
keyctl = int(sys.argv[1])
key = libc.syscall(keyctl, 10, ctypes.c_long(-3), b"user", sys.argv[2].encode(), 0)  # SEARCH
buf = ctypes.create_string_buffer(256)
n = libc.syscall(keyctl, 11, ctypes.c_long(key), buf, 256)  # READ
print(buf.raw[:n].decode() if n > 0 else f"refused {ctypes.get_errno()}")
"""


def host_session_key() -> tuple[str, str, str]:
    """A fresh session keyring for this test process holding a ``user`` key with a secret;
    (keyctl's number, the key's name, the secret).  The test process keeps the keyring
    (it is dropped with the process)."""
    import ctypes
    import platform

    machine = platform.machine()
    if machine not in KEYCTL_NR:
        pytest.skip(f"no keyctl number for {machine} here")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    name, secret = new_marker(), new_marker()
    if libc.syscall(KEYCTL_NR[machine], 1, name.encode()) < 0:  # JOIN_SESSION_KEYRING
        pytest.skip(f"this kernel has no key rings (errno {ctypes.get_errno()})")
    key = libc.syscall(ADD_KEY_NR[machine], b"user", name.encode(), secret.encode(),
                       len(secret), ctypes.c_long(-3))
    assert key > 0, ctypes.get_errno()
    return str(KEYCTL_NR[machine]), name, secret


@needs_root
@pytest.mark.parametrize("native", [True, False], ids=["native-spawn", "fork"])
def test_the_sandbox_cannot_read_the_hosts_session_keyring(
        native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session keyring is inherited across fork and exec, and whoever has it as its
    session keyring "possesses" its keys, whatever its uid: the run's uid read the host's
    keys (kerberos tickets, file-system keys...) with keyctl."""
    from neuroflow.sandbox import process

    if not native:
        monkeypatch.setattr(process, "_native_spawn", None)
    keyctl, name, secret = host_session_key()
    result = attack(READ_SESSION_KEY, None, keyctl, name)
    assert result.ok, result
    assert secret.encode() not in result.stdout, "the host's key was read"
    assert result.stdout.startswith(b"refused"), result.stdout


# --- the host's configuration inside the work directory ------------------------------------


def test_a_work_dir_holding_the_hosts_config_file_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``work_dir = "."`` in a project folder: the run was handed the host's
    ``neuroflow.toml`` with the rest of the folder and rewrote it (guards gone at the next
    start).  A work directory holding a configuration file the host read is refused; a
    subfolder of it is fine."""
    from neuroflow.config import reload_config
    from neuroflow.errors import SandboxError

    project = tmp_path / "project"
    project.mkdir()
    config = project / "neuroflow.toml"
    config.write_text("[security]\nguards = ['allowlist']\n")
    monkeypatch.chdir(project)
    monkeypatch.delenv("NEUROFLOW_CONFIG", raising=False)
    reload_config()
    try:
        script = "printf '[security]\\nguards = []\\n' > neuroflow.toml && echo rewrote"
        with pytest.raises(SandboxError) as info:
            run(SandboxConfig(work_dir=str(project), wall_timeout=30), "/bin/sh", "-c", script)
        assert "neuroflow.toml" in str(info.value) and "work_dir" in str(info.value)
        assert config.read_text() == "[security]\nguards = ['allowlist']\n"
        result = run(SandboxConfig(work_dir=str(project / "runs"), wall_timeout=30),
                     "/bin/sh", "-c", "echo ok > f && cat f")
        assert result.ok and result.stdout == b"ok\n", result
    finally:
        monkeypatch.undo()
        reload_config()
