"""neuroflow_native.spawn on its own: real children, checked through /proc."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import shutil
import signal
import tempfile
import termios
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from neuroflow_native import spawn

ENV = ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"]
SH = shutil.which("sh", path="/usr/bin:/bin") or "/bin/sh"
SLEEP = shutil.which("sleep", path="/usr/bin:/bin") or "/bin/sleep"
UNUSED_UID = 61987  # no user on this machine has it (checked below)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (this runs unprivileged)")


def wait(pid: int) -> int:
    """The exit code of child ``pid`` (negative: killed by that signal)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def run(argv: list[str], stdin: int | None = None, **kwargs: object
        ) -> tuple[int, bytes, bytes]:
    """Spawn ``argv`` with stdout/stderr on pipes; return (exit code, stdout, stderr).

    ``stdin``: the fd for the child's fd 0 (default: /dev/null; -1: closed).
    """
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        kwargs.setdefault("fd_map", [null if stdin is None else stdin, out_w, err_w])
        pid = spawn(argv[0], argv, kwargs.pop("envp", ENV), **kwargs)  # type: ignore[arg-type]
    finally:
        for fd in (out_w, err_w, null):
            os.close(fd)
    with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
        stdout, stderr = out.read(), err.read()
    return wait(pid), stdout, stderr


@pytest.fixture
def sleeper() -> Iterator[list[int]]:
    """Pids to kill and reap at the end of the test."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def status_of(pid: int | str, task: str = "") -> dict[str, str]:
    path = f"/proc/{pid}/task/{task}/status" if task else f"/proc/{pid}/status"
    with open(path) as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


def wait_for_exec(pid: int, program: str) -> None:
    """Wait until /proc shows the new program: spawn() returns once the exec has released
    the parent's memory, a moment before the kernel finishes the exec."""
    for _ in range(500):
        with open(f"/proc/{pid}/comm") as fh:
            if fh.read().strip() == os.path.basename(program):
                return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} did not exec {program} within 5 s")


# --- exit codes, fds, cwd, environment -------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_the_exit_code_is_the_programs(code: int) -> None:
    assert run([SH, "-c", f"exit {code}"])[0] == code


def test_stdout_and_stderr_go_where_the_fd_map_says() -> None:
    code, out, err = run([SH, "-c", "echo out; echo err >&2"])
    assert (code, out, err) == (0, b"out\n", b"err\n")


def test_fd_map_sources_inside_the_target_range_are_not_clobbered() -> None:
    # Child fd 1 comes from parent fd 2's pipe and child fd 2 from fd 1's: a swap.
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    saved = [os.dup(0), os.dup(1), os.dup(2)]
    try:
        os.dup2(out_w, 1, inheritable=False)
        os.dup2(err_w, 2, inheritable=False)
        pid = spawn(SH, [SH, "-c", "echo one; echo two >&2"], ENV, fd_map=[0, 2, 1])
    finally:
        for fd, old in enumerate(saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(out_w)
        os.close(err_w)
    assert wait(pid) == 0
    with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
        assert (out.read(), err.read()) == (b"two\n", b"one\n")


def test_every_fd_outside_the_map_is_closed_even_inheritable_ones() -> None:
    leaked = os.open(os.devnull, os.O_RDONLY)
    high = os.dup2(leaked, 77)
    os.set_inheritable(leaked, True)
    os.set_inheritable(high, True)
    try:
        code, out, _ = run(["/bin/ls", "/proc/self/fd"])
    finally:
        os.close(leaked)
        os.close(high)
    # ls itself holds one fd open to read the directory (3).
    assert code == 0
    assert sorted(int(fd) for fd in out.split()) == [0, 1, 2, 3]


def test_fd_map_minus_one_closes_that_fd() -> None:
    code, out, _ = run(["/bin/ls", "/proc/self/fd"], stdin=-1)
    # ls's directory fd takes the lowest free number: the closed 0.
    assert code == 0
    assert sorted(int(fd) for fd in out.split()) == [0, 1, 2]


def test_cwd_is_the_childs_directory(tmp_path: os.PathLike[str]) -> None:
    code, out, _ = run(["/bin/pwd"], cwd=str(tmp_path))
    assert (code, out) == (0, f"{tmp_path}\n".encode())


def test_the_environment_is_exactly_envp() -> None:
    env = ["A=1", "B=two words", "PATH=/usr/bin:/bin"]
    code, out, _ = run(["/usr/bin/env"], envp=env)
    assert code == 0
    assert out.decode().splitlines() == env


def test_new_session_makes_the_child_a_session_leader(sleeper: list[int]) -> None:
    pid = spawn(SLEEP, [SLEEP, "30"], ENV, new_session=True)
    sleeper.append(pid)
    assert os.getsid(pid) == pid
    assert os.getsid(0) != pid
    other = spawn(SLEEP, [SLEEP, "30"], ENV)
    sleeper.append(other)
    assert os.getsid(other) == os.getsid(0)


def _tty_probe_in_a_terminal_session(**kwargs: object) -> str:
    """In a forked helper that leads a session whose controlling terminal is a fresh pty,
    spawn a shell that tries to open /dev/tty; return what it printed."""
    master, slave = os.openpty()
    out_r, out_w = os.pipe()
    helper = os.fork()
    if helper == 0:  # the helper: only async-signal-safe work until it exits
        try:
            os.close(master)
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            null = os.open(os.devnull, os.O_RDONLY)
            pid = spawn(SH, [SH, "-c", "if ( : </dev/tty ) 2>/dev/null; then echo tty; "
                                       "else echo none; fi"],
                        ENV, fd_map=[null, out_w, out_w], **kwargs)
            os.waitpid(pid, 0)
            os._exit(0)
        finally:
            os._exit(70)  # reached only when a step above raised
    os.close(slave)
    os.close(out_w)
    try:
        with os.fdopen(out_r, "rb") as out:
            printed = out.read().decode().strip()
        assert wait(helper) == 0
    finally:
        os.close(master)
    return printed


def test_new_session_gives_up_the_controlling_terminal() -> None:
    # Without it the child can reach its parent's terminal (and push input into it).
    assert _tty_probe_in_a_terminal_session() == "tty"
    assert _tty_probe_in_a_terminal_session(new_session=True) == "none"


def test_signal_dispositions_and_mask_start_clean(sleeper: list[int]) -> None:
    # Python ignores SIGPIPE; the child must get the default back (as subprocess does).
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        pid = spawn(SLEEP, [SLEEP, "30"], ENV)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    sleeper.append(pid)
    wait_for_exec(pid, SLEEP)
    status = status_of(pid)
    assert int(status["SigIgn"], 16) & (1 << (signal.SIGPIPE - 1)) == 0
    assert int(status["SigBlk"], 16) == 0


# --- failures: errno and step ----------------------------------------------------------------


def test_a_missing_cwd_is_reported_as_the_chdir_step(tmp_path: os.PathLike[str]) -> None:
    missing = os.path.join(tmp_path, "missing")
    with pytest.raises(FileNotFoundError) as info:
        spawn("/bin/true", ["true"], ENV, cwd=missing)
    assert info.value.errno == errno.ENOENT
    assert info.value.strerror.startswith("chdir: ")
    assert info.value.filename == missing


def test_a_missing_program_is_reported_as_the_exec_step(tmp_path: os.PathLike[str]) -> None:
    missing = os.path.join(tmp_path, "nope")
    with pytest.raises(FileNotFoundError) as info:
        spawn(missing, [missing], ENV)
    assert info.value.errno == errno.ENOENT
    assert info.value.strerror.startswith("exec: ")
    assert info.value.filename == missing


def test_a_file_that_is_not_executable_is_refused_by_exec(tmp_path: os.PathLike[str]) -> None:
    script = os.path.join(tmp_path, "script")
    with open(script, "w") as fh:
        fh.write("#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o644)
    with pytest.raises(PermissionError) as info:
        spawn(script, [script], ENV)
    assert info.value.strerror.startswith("exec: ")


def test_a_failed_child_is_reaped(tmp_path: os.PathLike[str]) -> None:
    before = set(os.listdir("/proc"))
    for _ in range(5):
        with pytest.raises(FileNotFoundError):
            spawn("/bin/true", ["true"], ENV, cwd=os.path.join(tmp_path, "missing"))
    mine = str(os.getpid())
    zombies = []
    for entry in set(os.listdir("/proc")) - before:
        try:
            status = status_of(entry)
        except OSError:
            continue
        if status.get("PPid") == mine and status.get("State", "").startswith("Z"):
            zombies.append(entry)
    assert zombies == []


def test_pidfd_gives_a_pidfd_of_the_child_that_turns_readable_at_its_exit() -> None:
    import select

    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # The child waits for a byte on its stdin, so it is alive until we write.
        pid, pidfd = spawn(SH, [SH, "-c", "read x; exit 7"], ENV,
                           fd_map=[read_end, null, null], pidfd=True)
    finally:
        os.close(read_end)
        os.close(null)
    try:
        assert fcntl.fcntl(pidfd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        # It names the child: a pidfd signal reaches that process and no other.
        assert os.readlink(f"/proc/self/fd/{pidfd}") == "anon_inode:[pidfd]"
        with open(f"/proc/self/fdinfo/{pidfd}") as fh:
            assert f"Pid:\t{pid}\n" in fh.read()
        assert select.select([pidfd], [], [], 0.2)[0] == []  # still running
        os.write(write_end, b"\n")
        assert select.select([pidfd], [], [], 10)[0] == [pidfd]
        assert wait(pid) == 7
    finally:
        os.close(write_end)
        os.close(pidfd)


def test_a_failed_spawn_with_pidfd_leaves_no_fd_and_no_zombie(
    tmp_path: os.PathLike[str],
) -> None:
    before = set(os.listdir("/proc/self/fd"))
    processes = set(os.listdir("/proc"))
    for _ in range(5):
        with pytest.raises(FileNotFoundError):
            spawn("/bin/true", ["true"], ENV, cwd=os.path.join(tmp_path, "missing"),
                  pidfd=True)
    assert set(os.listdir("/proc/self/fd")) == before
    mine = str(os.getpid())
    zombies = []
    for entry in set(os.listdir("/proc")) - processes:
        try:
            status = status_of(entry)
        except OSError:
            continue
        if status.get("PPid") == mine and status.get("State", "").startswith("Z"):
            zombies.append(entry)
    assert zombies == []


def test_spawns_from_many_threads_at_once_each_run_their_own_child() -> None:
    # Each spawn needs a child stack of its own while its child runs on it; the one kept
    # for the next spawn must never be handed to two at once.
    results: dict[int, tuple[int, bytes]] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                code, out, _ = run([SH, "-c", f"echo {n}-{i}; exit {(n + i) % 7}"])
                assert (code, out) == ((n + i) % 7, f"{n}-{i}\n".encode())
            results[n] = (code, out)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == list(range(6))


def test_a_refused_rlimit_is_reported_as_the_setrlimit_step() -> None:
    # No one, root included, may raise RLIMIT_NOFILE above fs.nr_open.
    with open("/proc/sys/fs/nr_open") as fh:
        too_many = int(fh.read()) + 1
    with pytest.raises(PermissionError) as info:
        spawn("/bin/true", ["true"], ENV, rlimits=[
            (resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_NOFILE, 64, too_many)])
    assert info.value.errno == errno.EPERM
    assert info.value.strerror.startswith(f"setrlimit(resource {resource.RLIMIT_NOFILE}): ")


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"argv": "true"}, TypeError, "argv"),
        ({"argv": []}, ValueError, "argv"),
        ({"argv": ["a\0b"]}, TypeError, "argv[0]"),
        ({"envp": ["NOEQUALS"]}, ValueError, "envp[0]"),
        ({"fd_map": [0, 999]}, ValueError, "fd_map[1]"),
        ({"uid": -5}, ValueError, "uid"),
        ({"gid": "0"}, TypeError, "gid"),
        ({"groups": [-1]}, ValueError, "groups[0]"),
        ({"rlimits": [(resource.RLIMIT_CORE, 0)]}, TypeError, "rlimits[0]"),
        ({"rlimits": [(999, 0, 0)]}, ValueError, "rlimits[0]: resource"),
        ({"rlimits": [(resource.RLIMIT_CORE, 2, 1)]}, ValueError, "rlimits[0]"),
        ({"cgroup_procs": "/x"}, TypeError, "cgroup_procs"),
        ({"view": ("/tmp", [])}, ValueError, "view"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, exc: type, words: str) -> None:
    call = {"argv": ["/bin/true"], "envp": ENV, **kwargs}
    with pytest.raises(exc, match=words.replace("[", r"\[").replace("]", r"\]")):
        spawn("/bin/true", call.pop("argv"), call.pop("envp"), **call)


# --- set-up steps checked through /proc -------------------------------------------------------


def test_rlimits_are_set_before_the_exec(sleeper: list[int]) -> None:
    pid = spawn(SLEEP, [SLEEP, "30"], ENV, rlimits=[
        (resource.RLIMIT_NOFILE, 64, 64), (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_CPU, 5, 6), (resource.RLIMIT_FSIZE, 4096, resource.RLIM_INFINITY),
    ])
    sleeper.append(pid)
    with open(f"/proc/{pid}/limits") as fh:
        rows = {line[:26].strip(): line[26:].split()[:2] for line in fh}
    assert rows["Max open files"] == ["64", "64"]
    assert rows["Max core file size"] == ["0", "0"]
    assert rows["Max cpu time"] == ["5", "6"]
    assert rows["Max file size"] == ["4096", "unlimited"]
    assert resource.getrlimit(resource.RLIMIT_NOFILE) != (64, 64)  # ours are untouched


def test_no_new_privs_is_set_in_the_child_only(sleeper: list[int]) -> None:
    pid = spawn(SLEEP, [SLEEP, "30"], ENV, no_new_privs=True)
    sleeper.append(pid)
    assert status_of(pid)["NoNewPrivs"] == "1"
    assert status_of("self")["NoNewPrivs"] == "0"
    other = spawn(SLEEP, [SLEEP, "30"], ENV)
    sleeper.append(other)
    assert status_of(other)["NoNewPrivs"] == "0"


def _pids_cgroup_root() -> str | None:
    with open("/proc/self/mounts") as fh:
        for line in fh:
            _, where, kind, options = line.split()[:4]
            if kind == "cgroup" and "pids" in options.split(","):
                return where
            if kind == "cgroup2" and os.path.exists(os.path.join(where, "cgroup.procs")):
                return where
    return None


@root_only
@pytest.mark.parametrize("given", ["path", "open fd"])
def test_the_child_joins_the_cgroups_itself(sleeper: list[int], given: str) -> None:
    top = _pids_cgroup_root()
    if top is None or not os.access(top, os.W_OK):
        pytest.skip("this machine has no writable pids (or v2) cgroup hierarchy")
    name = f"neuroflow-native-test-{uuid.uuid4().hex[:8]}"
    group = os.path.join(top, name)
    os.mkdir(group)
    opened = -1
    try:
        procs: list[str | int] = [group + "/cgroup.procs"]
        if given == "open fd":
            opened = os.open(group + "/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
            assert opened >= 3
            procs = [opened]
        pid = spawn(SLEEP, [SLEEP, "30"], ENV, cgroup_procs=procs)
        sleeper.append(pid)
        if opened >= 0:
            # Ours stays open; the child's copy was closed with the rest before its exec.
            assert fcntl.fcntl(opened, fcntl.F_GETFD) >= 0
            assert str(opened) not in os.listdir(f"/proc/{pid}/fd")
        with open(f"/proc/{pid}/cgroup") as fh:
            assert any(line.rstrip("\n").endswith("/" + name) for line in fh)
        with open(group + "/cgroup.procs") as fh:
            assert fh.read().split() == [str(pid)]  # the child, never the parent
        with open("/proc/self/cgroup") as fh:
            assert name not in fh.read()
    finally:
        for pid in sleeper:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        sleeper.clear()
        if opened >= 0:
            os.close(opened)
        for _ in range(50):
            try:
                os.rmdir(group)
                break
            except OSError:
                time.sleep(0.02)


def test_a_cgroup_fd_must_be_open_and_above_the_fd_map() -> None:
    spare = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    os.close(spare)  # a closed fd
    for bad in (1, spare):
        with pytest.raises(ValueError, match=r"cgroup_procs\[0\]: expected a path or an open fd"):
            spawn("/bin/true", ["true"], ENV, cgroup_procs=[bad])


def test_a_missing_cgroup_file_is_reported_with_its_path(tmp_path: os.PathLike[str]) -> None:
    missing = os.path.join(tmp_path, "nope", "cgroup.procs")
    with pytest.raises(FileNotFoundError) as info:
        spawn("/bin/true", ["true"], ENV, cgroup_procs=[missing])
    assert info.value.strerror.startswith("cgroup: ")
    assert info.value.filename == missing


@root_only
def test_privileges_are_dropped_in_the_child_and_nowhere_else(sleeper: list[int]) -> None:
    import pwd

    with pytest.raises(KeyError):
        pwd.getpwuid(UNUSED_UID)
    # Another thread of the parent: glibc's setuid() would change its credentials too.
    parked = threading.Event()
    release = threading.Event()
    tid: list[int] = []

    def park() -> None:
        tid.append(threading.get_native_id())
        parked.set()
        release.wait(30)

    thread = threading.Thread(target=park)
    thread.start()
    try:
        parked.wait(10)
        before = (os.getresuid(), os.getresgid(), os.getgroups())
        pid = spawn(SLEEP, [SLEEP, "30"], ENV, uid=UNUSED_UID, gid=UNUSED_UID, groups=[],
                    no_new_privs=True)
        sleeper.append(pid)
        child = status_of(pid)
        assert child["Uid"].split() == [str(UNUSED_UID)] * 4
        assert child["Gid"].split() == [str(UNUSED_UID)] * 4
        assert child["Groups"].split() == []
        # The parent, its main thread and the parked thread are still root.
        assert (os.getresuid(), os.getresgid(), os.getgroups()) == before
        for task in (str(threading.get_native_id()), str(tid[0])):
            status = status_of("self", task)
            assert status["Uid"].split() == ["0"] * 4, task
            assert status["Gid"].split() == ["0"] * 4, task
        # And spawning still works with root's rights afterwards.
        assert run(["/usr/bin/id", "-u"])[1] == b"0\n"
    finally:
        release.set()
        thread.join()


@root_only
def test_a_dropped_child_runs_the_program_as_that_uid() -> None:
    code, out, _ = run(["/bin/cat", "/proc/self/status"], uid=UNUSED_UID,
                       gid=UNUSED_UID + 1, groups=[4242])
    assert code == 0
    status = dict(line.split(":\t", 1) for line in out.decode().splitlines() if ":\t" in line)
    assert status["Uid"].split() == [str(UNUSED_UID)] * 4
    assert status["Gid"].split() == [str(UNUSED_UID + 1)] * 4
    assert status["Groups"].split() == ["4242"]


def _has_cap_sys_admin() -> bool:
    return bool(int(status_of("self")["CapEff"], 16) & (1 << 21))


@root_only
def test_view_hides_a_closed_directory_above_the_work_dir() -> None:
    if not _has_cap_sys_admin():
        pytest.skip("no CAP_SYS_ADMIN here: mount namespaces cannot be made")
    closed = tempfile.mkdtemp(prefix="neuroflow-native-view-", dir="/tmp")  # mode 0700
    try:
        _check_view(closed)
    finally:
        shutil.rmtree(closed)


def _check_view(closed: str) -> None:
    work = os.path.join(closed, "a", "work")
    os.makedirs(work)
    os.makedirs(os.path.join(closed, "secret"))
    os.chmod(closed, 0o700)
    os.chown(work, UNUSED_UID, UNUSED_UID)
    with open(os.path.join(work, "hello"), "w") as fh:
        fh.write("hi")
    os.chown(os.path.join(work, "hello"), UNUSED_UID, UNUSED_UID)
    view = (closed, [os.path.join(closed, "a"), work])
    code, out, err = run([SH, "-c", f"cat {work}/hello; ls {closed}"], cwd=work, view=view,
                         uid=UNUSED_UID, gid=UNUSED_UID, groups=[])
    assert (code, out, err) == (0, b"hia\n", b"")
    # The host's mount namespace is unchanged.
    assert sorted(os.listdir(closed)) == ["a", "secret"]


def _own_memory_cgroup() -> str | None:
    """This process's own memory cgroup directory (v1), if there is one we may write."""
    mount = None
    with open("/proc/self/mounts") as fh:
        for line in fh:
            _, where, kind, options = line.split()[:4]
            if kind == "cgroup" and "memory" in options.split(","):
                mount = where
    if mount is None:
        return None
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, names, path = line.rstrip("\n").split(":", 2)
            if "memory" in names.split(","):
                where = mount + path.rstrip("/")
                return where if os.access(where, os.W_OK) else None
    return None


@root_only
def test_no_memory_to_start_in_is_enomem_or_a_kill() -> None:
    parent = _own_memory_cgroup()
    if parent is None:
        pytest.skip("this machine has no writable v1 memory cgroup for this process")
    group = os.path.join(parent, f"neuroflow-native-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(group)
    try:
        with open(group + "/memory.limit_in_bytes", "w") as fh:
            fh.write(str(128 * 1024))
        seen = set()
        for nomem_kill in (False, True) * 5:
            try:
                pid = spawn(SH, [SH, "-c", "echo started"], ENV, fd_map=[-1, -1, -1],
                            cgroup_procs=[group + "/cgroup.procs"], nomem_kill=nomem_kill)
            except OSError as exc:
                # Never the kernel's misleading E2BIG for arguments this small; the
                # report arrives even when the full cgroup refuses the pipe a page.
                assert exc.errno == errno.ENOMEM, exc
                assert exc.strerror.startswith(("exec: ", "cgroup: ")), exc
                seen.add("enomem")
                continue
            # Or the exec got through: the program ran, was killed for its memory, or
            # its loader could not map a library (127).
            assert wait(pid) in (0, 127, -signal.SIGKILL)
            seen.add("ran")
        assert seen
    finally:
        for _ in range(100):
            try:
                os.rmdir(group)
                break
            except OSError:
                time.sleep(0.02)


UNPRIVILEGED_CHECK = r"""
import errno, json, os, resource, sys
sys.path.insert(0, sys.argv[1])
from neuroflow_native import spawn
out = {"uid": os.getuid()}
pid = spawn("/bin/true", ["true"], ["PATH=/usr/bin:/bin"], fd_map=[-1, -1, -1])
out["true"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
for name, kwargs in (("setresuid", {"uid": 0}), ("setgroups", {"groups": [0]}),
                     ("setrlimit", {"rlimits": [(resource.RLIMIT_NOFILE, 1, 1 << 20)]})):
    try:
        spawn("/bin/true", ["true"], [], **kwargs)
        out[name] = "ran"
    except OSError as exc:
        out[name] = [errno.errorcode[exc.errno], exc.strerror.split(":")[0]]
print(json.dumps(out))
"""


@root_only
def test_an_unprivileged_caller_gets_each_refused_step_named(tmp_path: os.PathLike[str]
                                                              ) -> None:
    import json
    import sysconfig

    import neuroflow_native

    system = "/usr/bin/python3"
    if not os.access(system, os.X_OK):
        pytest.skip("no system /usr/bin/python3 to run the extension as another user")
    probe = run([system, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"])
    if probe[1].decode().strip() != sysconfig.get_config_var("EXT_SUFFIX"):
        pytest.skip("the system python3 cannot load this build of the extension (ABI)")
    # A copy of the installed package that the unprivileged user may read.
    where = tempfile.mkdtemp(prefix="neuroflow-native-copy-", dir="/tmp")
    try:
        os.chmod(where, 0o755)
        shutil.copytree(os.path.dirname(neuroflow_native.__file__),
                        os.path.join(where, "neuroflow_native"))
        for root, dirs, files in os.walk(where):
            for name in dirs + files:
                os.chmod(os.path.join(root, name), 0o755)
        code, out, err = run([system, "-I", "-S", "-c", UNPRIVILEGED_CHECK, where],
                             cwd=where, uid=UNUSED_UID, gid=UNUSED_UID, groups=[],
                             no_new_privs=True)
    finally:
        shutil.rmtree(where)
    assert code == 0, err
    seen = json.loads(out)
    assert seen["uid"] == UNUSED_UID
    assert seen["true"] == 0
    assert seen["setresuid"] == ["EPERM", "setresuid"]
    assert seen["setgroups"] == ["EPERM", "setgroups"]
    assert seen["setrlimit"][1].startswith("setrlimit(resource")
    assert seen["setrlimit"][0] == "EPERM"


@root_only
def test_chown_tree_gives_what_the_owner_owns_and_nothing_else(tmp_path: os.PathLike[str]
                                                                ) -> None:
    from neuroflow_native import chown_tree

    top = os.path.join(tmp_path, "work")
    os.makedirs(os.path.join(top, "sub", "deeper"))
    for name in ("a", "sub/b", "sub/deeper/c", "theirs", "linked"):
        with open(os.path.join(top, name), "w") as fh:
            fh.write(name)
    os.chown(os.path.join(top, "theirs"), UNUSED_UID + 1, UNUSED_UID + 1)
    os.link(os.path.join(top, "linked"), os.path.join(tmp_path, "elsewhere"))
    outside = os.path.join(tmp_path, "outside")
    with open(outside, "w") as fh:
        fh.write("not in the tree")
    os.symlink(outside, os.path.join(top, "link"))

    assert chown_tree(top, 0, UNUSED_UID, UNUSED_UID, hand_over=True) is True
    owners = {name: os.lstat(os.path.join(top, name)).st_uid
              for name in (".", "a", "sub", "sub/b", "sub/deeper", "sub/deeper/c",
                           "theirs", "linked", "link")}
    assert owners == {".": UNUSED_UID, "a": UNUSED_UID, "sub": UNUSED_UID,
                      "sub/b": UNUSED_UID, "sub/deeper": UNUSED_UID,
                      "sub/deeper/c": UNUSED_UID, "theirs": UNUSED_UID + 1,
                      "linked": 0,  # a hard link: maybe a file elsewhere (hand-over only)
                      "link": UNUSED_UID}  # the link itself, never what it points to
    assert os.stat(outside).st_uid == 0
    # ... and back: everything of that uid, the hard-linked file included.
    os.chown(os.path.join(top, "linked"), UNUSED_UID, UNUSED_UID)
    assert chown_tree(top, UNUSED_UID, 0, 0) is True
    assert {os.lstat(os.path.join(top, name)).st_uid
            for name in (".", "a", "sub/deeper/c", "linked", "link")} == {0}
    assert os.lstat(os.path.join(top, "theirs")).st_uid == UNUSED_UID + 1


@root_only
def test_chown_tree_leaves_a_tree_larger_than_its_limit_unchanged(
    tmp_path: os.PathLike[str],
) -> None:
    from neuroflow_native import chown_tree

    top = os.path.join(tmp_path, "work")
    os.mkdir(top)
    for i in range(40):
        open(os.path.join(top, str(i)), "w").close()
    assert chown_tree(top, 0, UNUSED_UID, UNUSED_UID, limit=39) is False
    assert {os.lstat(os.path.join(top, name)).st_uid
            for name in [".", *os.listdir(top)]} == {0}
    assert chown_tree(top, 0, UNUSED_UID, UNUSED_UID, limit=40) is True
    assert {os.lstat(os.path.join(top, name)).st_uid
            for name in [".", *os.listdir(top)]} == {UNUSED_UID}


def test_chown_tree_of_a_link_or_a_file_or_nothing_changes_nothing(
    tmp_path: os.PathLike[str],
) -> None:
    from neuroflow_native import chown_tree

    real = os.path.join(tmp_path, "real")
    os.mkdir(real)
    os.symlink(real, os.path.join(tmp_path, "link"))
    open(os.path.join(tmp_path, "file"), "w").close()
    me = os.geteuid()
    for name in ("link", "file", "missing"):
        assert chown_tree(os.path.join(tmp_path, name), me, UNUSED_UID, UNUSED_UID) is True
    assert os.stat(real).st_uid == me
    assert os.stat(os.path.join(tmp_path, "file")).st_uid == me
    with pytest.raises(ValueError, match="owner, uid, gid"):
        chown_tree(real, -1, 0, 0)
