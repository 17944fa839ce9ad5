"""neuroflow_native._namespace.launch on its own: real namespaces, checked from outside."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
from neuroflow_native import _namespace as ns

SH = shutil.which("sh", path="/usr/bin:/bin") or "/bin/sh"
UID = os.geteuid() if os.geteuid() != 0 else 61_986  # as root: an unprivileged id inside


def base_mounts(work: str) -> list[tuple[int, str | None, str, str | None]]:
    mounts: list[tuple[int, str | None, str, str | None]] = []
    for path in ("/usr", "/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(path):
            mounts.append((ns.SYMLINK, os.readlink(path), path, None))
        elif os.path.isdir(path):
            mounts.append((ns.RO_BIND, path, path, None))
    mounts += [(ns.RO_BIND, "/etc/ld.so.cache", "/etc/ld.so.cache", None),
               (ns.TMPFS, None, "/dev", "size=64k,mode=0755"),
               (ns.DEV_BIND, "/dev/null", "/dev/null", None),
               (ns.REMOUNT_RO, None, "/dev", None),
               (ns.PROC, None, "/proc", None),
               (ns.TMPFS, None, "/tmp", "size=1m,mode=1777"),
               (ns.RW_BIND, work, work, None)]
    return mounts


@pytest.fixture
def work() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="nf-native-ns-")
    os.chmod(folder, 0o755)
    if os.geteuid() == 0:
        os.chown(folder, UID, UID)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def launch(work: str, argv: list[str], **kwargs: object) -> tuple[int, int, bytes, int]:
    """Run ``argv``; return (PID 1's exit code, the command's wait status, stdout, pid)."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid, status_fd = ns.launch(argv[0], argv, ["PATH=/usr/bin:/bin"], work,
                                   (0, out_w, out_w), kwargs.pop("mounts", base_mounts(work)),
                                   (UID, UID, UID, UID, os.geteuid() == 0), **kwargs)
    finally:
        os.close(out_w)
    try:
        chunks = []
        while chunk := os.read(out_r, 65536):
            chunks.append(chunk)
        _, pid1 = os.waitpid(pid, 0)
        data = os.read(status_fd, 4)
    finally:
        os.close(out_r)
    os.close(status_fd)
    command = struct.unpack("i", data)[0] if len(data) == 4 else -1
    return os.waitstatus_to_exitcode(pid1), command, b"".join(chunks), pid


# PID 1 is made two ways: by default it sets the sandbox up sharing this process's memory
# and then executes the embedded init program; where that program cannot be executed, it
# is a copy of this process (init_program=False forces that).  Both must behave the same.
MODES = pytest.mark.parametrize("init_program", [True, False], ids=["init", "copy"])


@MODES
def test_a_command_runs_as_pid_2_of_its_own_namespace_with_the_run_s_uid(
        work: str, init_program: bool) -> None:
    code, status, out, _ = launch(work, [SH, "-c", "echo $$; id -u; hostname; pwd"],
                                  hostname="box", init_program=init_program)
    assert (code, os.waitstatus_to_exitcode(status)) == (0, 0)
    assert out.decode().split() == ["2", str(UID), "box", work]


@MODES
def test_the_command_holds_no_capability_in_any_set(work: str, init_program: bool) -> None:
    # Every set, the bounding one included: a capability left there could come back
    # through a file capability or an exec.
    code, status, out, _ = launch(
        work, [SH, "-c", "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' "
               "/proc/self/status"], init_program=init_program)
    assert (code, os.waitstatus_to_exitcode(status)) == (0, 0)
    fields = dict(line.split(":") for line in out.decode().splitlines())
    assert {name: int(value, 16) for name, value in fields.items()} == {
        "CapAmb": 0, "CapBnd": 0, "CapEff": 0, "CapInh": 0, "CapPrm": 0,
        "NoNewPrivs": 1, "Seccomp": 2}


@MODES
def test_the_command_s_signal_is_reported_on_the_status_pipe(
        work: str, init_program: bool) -> None:
    code, status, _, _ = launch(work, [SH, "-c", "kill -TERM $$"], init_program=init_program)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    assert code == 128 + signal.SIGTERM  # PID 1 cannot die by a signal from inside


@MODES
def test_exit_codes_pass_through(work: str, init_program: bool) -> None:
    code, status, _, _ = launch(work, [SH, "-c", "exit 7"], init_program=init_program)
    assert code == 7 and os.waitstatus_to_exitcode(status) == 7


@MODES
def test_a_missing_program_is_an_error_naming_it(work: str, init_program: bool) -> None:
    with pytest.raises(FileNotFoundError, match=r"exec: .*nf-no-such-program"):
        launch(work, ["/usr/bin/nf-no-such-program"], init_program=init_program)


@MODES
def test_a_bad_mount_names_it(work: str, init_program: bool) -> None:
    mounts = [*base_mounts(work), (ns.RO_BIND, "/nf-no-such-dir", "/data", None)]
    with pytest.raises(OSError, match=r"mount: .*\(/nf-no-such-dir -> /data\)"):
        launch(work, [SH, "-c", "true"], mounts=mounts, init_program=init_program)


@MODES
def test_a_failed_start_leaves_no_child_behind(work: str, init_program: bool) -> None:
    """Every way a start fails reaps PID 1."""
    before = _children()
    mounts = [*base_mounts(work), (ns.RO_BIND, "/nf-no-such-dir", "/data", None)]
    for _ in range(3):
        with pytest.raises(OSError):
            launch(work, [SH, "-c", "true"], mounts=mounts, init_program=init_program)
        with pytest.raises(FileNotFoundError):
            launch(work, ["/usr/bin/nf-no-such-program"], init_program=init_program)
    assert _children() == before


def _children() -> set[int]:
    """Pids of this process's children, zombies included."""
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                found.add(int(entry))
    return found


def _mapped_paths(maps: str) -> set[str]:
    """The whole path of every file mapping in a ``/proc/PID/maps`` text (the sixth field
    to the end of the line: a path may hold spaces, and a removed file ends in
    `` (deleted)``)."""
    paths = set()
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and "/" in fields[5]:
            paths.add(fields[5])
    return paths


def test_pid_1_keeps_none_of_the_caller_s_memory(work: str) -> None:
    """PID 1 sets the sandbox up sharing this process's memory, then executes the init
    program: while the command runs it maps nothing of the caller (not its interpreter,
    not its heap) and holds a few pages."""
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid, status_fd = ns.launch(SH, [SH, "-c", "read line"], [], work, (in_r, 2, 2),
                                   base_mounts(work), (UID, UID, UID, UID, os.geteuid() == 0))
    finally:
        os.close(in_r)
    try:
        with open(f"/proc/{pid}/maps") as fh:
            maps = fh.read()
        with open(f"/proc/{pid}/status") as fh:
            status = dict(line.split(":", 1) for line in fh)
        with open("/proc/self/maps") as fh:
            ours = _mapped_paths(fh.read())
    finally:
        os.close(in_w)  # the command reads end of file and ends
        os.waitpid(pid, 0)
        os.close(status_fd)
    mapped = _mapped_paths(maps)
    assert mapped.isdisjoint(ours), mapped & ours
    assert os.path.realpath(sys.executable) not in maps
    assert int(status["VmRSS"].split()[0]) < 1024, status["VmRSS"]  # KiB
    assert int(status["VmSize"].split()[0]) < 4096, status["VmSize"]


def test_the_caller_stays_dumpable(work: str) -> None:
    """PID 1 takes the run's ids while it shares our memory; for a root caller that marks
    the memory undumpable -- ours, which the launcher puts back."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    before = prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
    assert before in (0, 1)
    for dumpable in (1, 0, 1):
        assert prctl(4, dumpable, 0, 0, 0) == 0  # PR_SET_DUMPABLE
        code, _, _, _ = launch(work, [SH, "-c", "true"])
        assert code == 0
        assert prctl(3, 0, 0, 0, 0) == dumpable
    prctl(4, before, 0, 0, 0)


def test_launches_from_several_threads_at_once(work: str) -> None:
    """Each launch has its own PID 1 stack and pipes, and PID 1 shares the launching
    thread's thread-local storage only: threads do not get in each other's way."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> tuple[int, int, bytes]:
        code, status, out, _ = launch(work, [SH, "-c", f"echo {i}; exit {i % 5}"])
        return code, os.waitstatus_to_exitcode(status), out

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(24)))
    assert results == [(i % 5, i % 5, f"{i}\n".encode()) for i in range(24)]


NET_PROBE = ("readlink /proc/self/ns/net; cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '; "
             "(exec 3<>/dev/tcp/127.0.0.1/1) 2>&1 | grep -o -e refused -e unreachable | sort -u")
BASH = shutil.which("bash", path="/usr/bin:/bin")


def _net(work: str, **kwargs: object) -> list[str]:
    code, status, out, _ = launch(work, [BASH or SH, "-c", NET_PROBE], **kwargs)
    assert (code, os.waitstatus_to_exitcode(status)) == (0, 0), out
    return out.decode().split()


def _start_live(work: str, count: int, **kwargs: object) -> tuple[list[str], list[tuple]]:
    """Start ``count`` runs that stay alive; return their network namespaces and handles
    for :func:`_stop` (namespace numbers are reused once a namespace is gone, so only
    live ones can be told apart)."""
    started: list[tuple] = []
    try:
        for _ in range(count):
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            try:
                pid, status_fd = ns.launch(
                    SH, [SH, "-c", "readlink /proc/self/ns/net; read line"], [], work,
                    (in_r, out_w, out_w), base_mounts(work),
                    (UID, UID, UID, UID, os.geteuid() == 0), **kwargs)
            except BaseException:
                for fd in (in_w, out_r):
                    os.close(fd)
                raise
            finally:
                os.close(in_r)
                os.close(out_w)
            started.append((pid, status_fd, in_w, out_r))
        return [os.read(h[3], 100).decode().strip() for h in started], started
    except BaseException:
        _stop(started)
        raise


def _stop(started: list[tuple]) -> None:
    for pid, status_fd, in_w, out_r in started:
        os.close(in_w)  # the run reads end of file and ends
        os.waitpid(pid, 0)
        os.close(status_fd)
        os.close(out_r)


@pytest.mark.skipif(BASH is None, reason="the probe uses bash's /dev/tcp")
@MODES
def test_every_run_has_a_network_namespace_of_its_own(work: str, init_program: bool) -> None:
    """Network off: each run is in a fresh network namespace (some are made ahead, each
    for one run), never the host's nor another run's, with only a loopback, which is up
    (a refused connection, not an unreachable network)."""
    host = os.readlink("/proc/thread-self/ns/net")
    for _ in range(3):
        probe = _net(work, init_program=init_program)
        assert probe[0] != host and probe[1:] == ["lo", "refused"], probe
    spaces, started = _start_live(work, 6, init_program=init_program)
    _stop(started)
    assert len(set(spaces)) == 6 and host not in spaces, (host, spaces)
    assert all(space.startswith("net:[") for space in spaces), spaces
    assert os.readlink("/proc/thread-self/ns/net") == host  # this thread went back


@pytest.mark.slow
def test_the_maker_of_network_namespaces_ends_when_idle(work: str) -> None:
    """The thread that makes network namespaces ahead goes after a few idle seconds, and
    the next start brings it back."""
    if os.geteuid() != 0:
        pytest.skip("only a root host makes network namespaces ahead")

    def makers() -> int:
        found = 0
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/comm") as fh:
                    found += fh.read().strip() == "nf-netns"
            except OSError:
                pass
        return found

    def wait_for(count: int, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while makers() != count and time.monotonic() < deadline:
            time.sleep(0.05)
        return makers()

    _stop(_start_live(work, 1)[1])
    assert wait_for(1, 2) == 1  # one maker, however many starts came before
    assert wait_for(0, 10) == 0  # gone after 5 idle seconds
    _stop(_start_live(work, 1)[1])
    assert wait_for(1, 2) == 1


def test_a_forked_child_uses_none_of_its_parent_s_network_namespaces(work: str) -> None:
    """Namespaces made ahead are the parent's to give out: a child of fork() closes its
    copies, and its runs never share a namespace with the parent's."""
    _stop(_start_live(work, 1)[1])  # the parent's maker runs
    time.sleep(0.2)  # and has made a few
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(go_w)
            os.close(report_r)
            held = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    held.append(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    pass
            spaces, started = _start_live(work, 3)
            os.write(report_w, " ".join(
                [*[h for h in held if h.startswith("net:")], "|", *spaces]).encode())
            os.read(go_r, 1)
            _stop(started)
        finally:
            os._exit(0)
    os.close(report_w)
    os.close(go_r)
    words = os.read(report_r, 4096).decode().split()  # the child's runs are alive
    try:
        spaces, started = _start_live(work, 3)
        _stop(started)
    finally:
        os.close(go_w)
        os.close(report_r)
        os.waitpid(child, 0)
    held, theirs = words[:words.index("|")], words[words.index("|") + 1:]
    assert held == [], held
    assert len(theirs) == 3 and not set(theirs) & set(spaces), (theirs, spaces)


def _mount_table(text: str) -> dict[str, tuple[set[str], str]]:
    """/proc/self/mountinfo as {mount point: (its per-mount options, file system type)}
    (the last mount on a point wins)."""
    table = {}
    for line in text.splitlines():
        fields = line.split()
        dash = fields.index("-")
        table[fields[4]] = (set(fields[5].split(",")), fields[dash + 1])
    return table


@pytest.fixture
def submounts(work: str) -> Iterator[tuple[str, str]]:
    """A host folder with a tmpfs mounted inside (a marker file in it), and the same below
    the work directory."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs on the host needs root")
    outer = tempfile.mkdtemp(prefix="nf-native-sub-")
    os.chmod(outer, 0o755)
    points = [os.path.join(outer, "sub"), os.path.join(work, "sub")]
    mounted = []
    try:
        for point in points:
            os.mkdir(point)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0777", "nf-sub",
                            point], check=True)
            mounted.append(point)
            with open(os.path.join(point, "marker"), "w") as fh:
                fh.write("below\n")
        yield outer, points[1]
    finally:
        for point in mounted:
            subprocess.run(["umount", point], check=False)
        shutil.rmtree(outer, ignore_errors=True)


@MODES
@pytest.mark.parametrize("by_fds", [True, False], ids=["open_tree", "mount"])
def test_every_mount_has_the_flags_it_should(work: str, submounts: tuple[str, str],
                                             init_program: bool, by_fds: bool) -> None:
    """Read inside from /proc/self/mountinfo: read-only binds ro,nosuid,nodev (and not
    recursive: one with a mount below its source is refused); the work dir rw,nosuid,nodev
    and recursive (a mount below it comes along); devices nosuid,noexec but usable; /proc
    nosuid,nodev,noexec; tmpfs nosuid,nodev; /dev and the root read-only.  Both ways of
    making a bind (the fd-based calls, and mount(2) where they are missing)."""
    outer, inner = submounts
    plain = tempfile.mkdtemp(prefix="nf-native-plain-")
    os.chmod(plain, 0o755)
    mounts = base_mounts(work)
    at = mounts.index((ns.DEV_BIND, "/dev/null", "/dev/null", None)) + 1
    mounts[at:at] = [(ns.DEV_BIND, "/dev/zero", "/dev/zero", None)]  # before /dev goes ro
    mounts.append((ns.RO_BIND, plain, "/data", None))
    ns._set_binds_by_fds(by_fds)
    try:
        code, status, out, _ = launch(
            work, [SH, "-c", "cat /proc/self/mountinfo; echo ==; touch /data/x 2>&1; "
                   f"echo ==; cat {inner}/marker; head -c 3 /dev/zero | wc -c"],
            mounts=mounts, init_program=init_program)
        # A read-only bind is not recursive, and the kernel refuses one that would leave
        # a mount of the host below it behind (showing what that mount hides): refused.
        with pytest.raises(OSError, match=r"mount: Invalid argument \(.*nf-native-sub-.*"
                           r"the kernel refuses one whose source has other mounts below"):
            launch(work, [SH, "-c", "true"], init_program=init_program,
                   mounts=[*base_mounts(work), (ns.RO_BIND, outer, "/data", None)])
    finally:
        ns._set_binds_by_fds(True)
        shutil.rmtree(plain, ignore_errors=True)
    assert (code, os.waitstatus_to_exitcode(status)) == (0, 0), out
    info, listing, rest = out.decode().split("==\n")
    table = _mount_table(info)
    for point in ("/usr", "/etc/ld.so.cache", "/data"):
        assert {"ro", "nosuid", "nodev"} <= table[point][0], (point, table[point])
    assert {"rw", "nosuid", "nodev"} <= table[work][0], table[work]
    for point in ("/dev/null", "/dev/zero"):
        opts = table[point][0]
        assert {"nosuid", "noexec"} <= opts and "nodev" not in opts, (point, opts)
    assert {"nosuid", "nodev", "noexec"} <= table["/proc"][0], table["/proc"]
    for point in ("/tmp", "/dev"):
        assert table[point][1] == "tmpfs" and {"nosuid", "nodev"} <= table[point][0]
    assert "ro" in table["/dev"][0] and {"ro", "nosuid", "nodev"} <= table["/"][0]
    assert "Read-only file system" in listing, listing
    # The work dir's bind is recursive: the mount below it comes along.
    assert inner in table and rest.split() == ["below", "3"], rest


def test_where_the_init_program_is_refused_pid_1_is_a_copy(work: str) -> None:
    """A security module or a mount may refuse to execute the init program (here: a
    character device stands in for it, which execveat refuses): the start is made again
    with PID 1 a copy of this process (its command line wiped), and so are the next ones;
    the command runs the same."""
    assert ns.init_program_usable()
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    ns._set_init_program(null)
    try:
        for _ in range(2):
            code, status, out, _ = launch(
                work, [SH, "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; id -u"])
            assert (code, os.waitstatus_to_exitcode(status)) == (0, 0), out
            cmdline, uid = out.decode().split("\n")[:2]
            assert cmdline.strip() == "" and uid == str(UID), out  # a copy, wiped
            assert not ns.init_program_usable()
    finally:
        ns._set_init_program(None)
        os.close(null)
    assert ns.init_program_usable()
    code, _, out, _ = launch(work, [SH, "-c", "tr '\\0' ' ' < /proc/1/cmdline"])
    assert code == 0 and out.split() == [b"neuroflow-init"], out


def test_launches_under_a_storm_of_signals(work: str) -> None:
    """Signals aimed at the launching thread while PID 1 shares its memory (and its errno)
    wait until PID 1 is done with it: every launch succeeds, and every signal arrives."""
    import threading

    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: seen.append(1))
    target = threading.get_ident()
    stop = threading.Event()
    sent = [0]

    def storm() -> None:
        while not stop.is_set():
            signal.pthread_kill(target, signal.SIGUSR1)
            sent[0] += 1
            time.sleep(0.0002)

    thread = threading.Thread(target=storm)
    thread.start()
    try:
        results = [launch(work, [SH, "-c", f"exit {i % 3}"])[:2] for i in range(40)]
    finally:
        stop.set()
        thread.join()
        signal.signal(signal.SIGUSR1, previous)
    assert [(code, os.waitstatus_to_exitcode(status)) for code, status in results] == [
        (i % 3, i % 3) for i in range(40)]
    assert sent[0] > 0 and seen  # the handler ran (pending signals merge, so not all)


@MODES
def test_the_root_is_read_only_and_the_work_dir_writable(work: str, init_program: bool) -> None:
    code, _, out, _ = launch(work, [SH, "-c", "touch /x 2>/dev/null || echo ro; "
                                    "touch made && echo rw; ls /"], init_program=init_program)
    assert code == 0
    lines = out.decode().split()
    assert lines[:2] == ["ro", "rw"]
    assert set(lines[2:]) <= {"usr", "bin", "lib", "lib64", "sbin", "etc", "dev", "proc",
                              "tmp"}
    assert os.path.exists(os.path.join(work, "made"))


def _alive(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


@MODES
def test_everything_left_in_the_namespace_dies_with_the_command(
        work: str, init_program: bool) -> None:
    marker = f"nf-native-{uuid.uuid4().hex}"
    code, _, _, _ = launch(work, [SH, "-c", f"(setsid sleep 100 {marker} &) ; "
                                  "sleep 0.2; exit 0"], init_program=init_program)
    assert code == 0
    time.sleep(0.2)
    assert _alive(marker) == []


def test_pid_1_dies_with_the_process_that_launched_it(work: str) -> None:
    marker = f"nf-native-{uuid.uuid4().hex}"
    code = (
        "import os, sys\n"
        "from neuroflow_native import _namespace as ns\n"
        f"sys.path[:0] = {sys.path!r}\n"
        f"mounts = {base_mounts(work)!r}\n"
        f"pid, fd = ns.launch({SH!r}, [{SH!r}, '-c', 'sleep 100; : {marker}'], [], {work!r},"
        f" (0, 1, 2), mounts, ({UID}, {UID}, {UID}, {UID}, {os.geteuid() == 0}))\n"
        "print(pid, flush=True)\n"
        "os._exit(0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 5
    while _alive(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(marker) == []


def test_the_seccomp_filter_checks_the_architecture_first() -> None:
    program = ns.seccomp_filter()
    assert len(program) % 8 == 0 and len(program) // 8 > 40
    code, _, _, k = struct.unpack("HBBI", program[:8])
    assert (code, k) == (0x20, 4)  # BPF_LD|BPF_W|BPF_ABS of seccomp_data.arch
    code, _, _, k = struct.unpack("HBBI", program[8:16])
    assert k == ns.AUDIT_ARCH
