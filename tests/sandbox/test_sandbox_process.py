"""The process backend's behaviour beyond the conformance suite: allow-list, gate,
working directory, environment, refusals where this machine cannot enforce a limit."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from sandbox_helpers import new_marker, reachable_directory, survivors

from neuroflow.errors import (
    CommandNotAllowedError,
    ConfigError,
    SandboxError,
    SecurityError,
    UnsupportedLimitError,
)
from neuroflow.sandbox import (
    SandboxConfig,
    SandboxIsolator,
    SandboxSecurityLevel,
    TerminationReason,
    cgroups,
)
from neuroflow.security.model import Action, ActionContext, Verdict


@attrs.define
class RecordingGate:
    """A real ActionGate: allows or denies by command, and keeps what it was told."""

    deny: set[str] = attrs.Factory(set)
    authorized: list[tuple[Action, ActionContext]] = attrs.Factory(list)
    outcomes: list[tuple[str, str, Mapping[str, Any]]] = attrs.Factory(list)

    async def authorize(self, action: Action, context: ActionContext) -> Verdict:
        self.authorized.append((action, context))
        if action.target in self.deny:
            raise SecurityError(f"denied {action.target}")
        return Verdict.allow("test")

    async def record_outcome(
        self, action: Action, context: ActionContext, outcome: str, details: Mapping[str, Any]
    ) -> None:
        self.outcomes.append((action.target, outcome, details))


@pytest.mark.anyio
async def test_command_outside_allow_list_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    marker_file = tmp_path / "ran"
    config = SandboxConfig(allowed_commands=["echo"], work_dir=str(tmp_path))
    async with SandboxIsolator(config) as isolator:
        with pytest.raises(CommandNotAllowedError) as info:
            await isolator.execute("/bin/sh", ["-c", f"touch {marker_file}"])
        assert "'/bin/sh' is not in allowed_commands (echo)" in str(info.value)
        assert not marker_file.exists()
        # A bare name on the list allows that program by path too.
        echoed = await isolator.execute("echo", ["named"])
        by_path = await isolator.execute(echoed_path("echo"), ["by path"])
    assert echoed.stdout == b"named\n"
    assert by_path.stdout == b"by path\n"


def echoed_path(name: str) -> str:
    import shutil

    found = shutil.which(name)
    assert found is not None
    return found


@pytest.mark.anyio
async def test_a_lookalike_path_is_not_allowed_by_a_bare_name(tmp_path: Path) -> None:
    fake = tmp_path / "echo"
    fake.write_text("#!/bin/sh\ntouch ran\n")
    fake.chmod(0o755)
    async with SandboxIsolator(SandboxConfig(allowed_commands=["echo"])) as isolator:
        with pytest.raises(CommandNotAllowedError):
            await isolator.execute(str(fake))
    assert not (tmp_path / "ran").exists()


@pytest.mark.anyio
async def test_gate_is_asked_first_and_told_the_outcome(tmp_path: Path) -> None:
    gate = RecordingGate(deny={"/bin/touch"})
    async with SandboxIsolator(SandboxConfig(work_dir=str(tmp_path)), gate=gate,
                               actor="agent-7") as isolator:
        ok = await isolator.execute("/bin/echo", ["hi"])
        failed = await isolator.execute("/bin/sh", ["-c", "exit 2"])
        slow = await isolator.execute("/bin/sleep", ["10"], timeout=0.2)
        with pytest.raises(SecurityError):
            await isolator.execute("/bin/touch", ["denied-marker"])
    assert ok.ok and failed.exit_code == 2 and slow.reason is TerminationReason.TIMED_OUT
    assert not (tmp_path / "denied-marker").exists()
    first_action, first_context = gate.authorized[0]
    assert first_action.kind.value == "command"
    assert first_action.target == "/bin/echo"
    assert first_action.actor == "agent-7"
    assert first_action.arguments == ["hi"]
    assert first_context.component == "sandbox.process"
    assert [(t, o) for t, o, _ in gate.outcomes] == [
        ("/bin/echo", "success"), ("/bin/sh", "error"), ("/bin/sleep", "timed_out"),
    ]
    assert gate.outcomes[1][2]["exit_code"] == 2


@pytest.mark.anyio
async def test_work_dir_is_created_and_used(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b"
    async with SandboxIsolator(SandboxConfig(work_dir=str(work))) as isolator:
        result = await isolator.execute("/bin/sh", ["-c", "pwd; echo data > f; echo $HOME"])
    assert result.stdout.decode().split() == [str(work), str(work)]
    assert (work / "f").read_text() == "data\n"


@pytest.mark.anyio
async def test_default_work_dir_is_private_and_removed_on_close() -> None:
    isolator = SandboxIsolator()
    result = await isolator.execute("/bin/pwd")
    work = Path(result.stdout.decode().strip())
    assert work.is_dir() and work.name.startswith("neuroflow-sandbox-")
    await isolator.aclose()
    assert not work.exists()
    with pytest.raises(SandboxError, match="closed"):
        await isolator.execute("/bin/true")


@pytest.mark.anyio
async def test_environment_is_only_defaults_config_and_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("NF_PASS_ME", "passed")
    config = SandboxConfig(env={"FROM_CONFIG": "c"}, inherit_env=["NF_PASS_ME"])
    async with SandboxIsolator(config) as isolator:
        result = await isolator.execute("/usr/bin/env", env={"FROM_CALL": "x"})
    env = dict(line.split("=", 1) for line in result.stdout.decode().splitlines())
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["NF_PASS_ME"] == "passed"
    assert env["FROM_CONFIG"] == "c" and env["FROM_CALL"] == "x"
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "NF_PASS_ME",
                        "FROM_CONFIG", "FROM_CALL", "PWD", "_",
                        "TRACEPARENT", "TRACESTATE"}  # the run's span, when spans are on


@pytest.mark.anyio
async def test_no_host_fd_leaks_into_the_sandbox(tmp_path: Path) -> None:
    leaked = os.open(tmp_path / "host-file", os.O_CREAT | os.O_WRONLY)
    os.set_inheritable(leaked, True)
    try:
        async with SandboxIsolator() as isolator:
            result = await isolator.execute("/bin/ls", ["/proc/self/fd"])
    finally:
        os.close(leaked)
    fds = sorted(int(x) for x in result.stdout.split())
    assert leaked not in fds
    assert len(fds) <= 4  # 0, 1, 2 and ls's own directory handle


@pytest.mark.anyio
async def test_missing_command_is_a_clear_error() -> None:
    async with SandboxIsolator() as isolator:
        with pytest.raises(SandboxError, match="'no-such-program-xyz' not found"):
            await isolator.execute("no-such-program-xyz")


@pytest.mark.anyio
async def test_stdin_larger_than_a_pipe_buffer_is_fed_concurrently() -> None:
    data = os.urandom(1024 * 1024)
    async with SandboxIsolator() as isolator:
        result = await isolator.execute("/bin/cat", stdin=data)
    assert result.stdout == data


@pytest.mark.anyio
async def test_child_runs_inside_the_run_cgroups() -> None:
    info = cgroups.support()
    if not info.usable:
        pytest.skip("no usable cgroup on this machine")
    async with SandboxIsolator() as isolator:
        result = await isolator.execute("/bin/cat", ["/proc/self/cgroup"])
    lines = result.stdout.decode().splitlines()
    for controller in info.parents:
        line = next(ln for ln in lines if controller in ln.split(":")[1].split(","))
        assert "/neuroflow-" in line


def test_cancelling_a_run_kills_its_tree() -> None:
    marker = new_marker()

    async def main() -> None:
        async with SandboxIsolator() as isolator:
            with anyio.move_on_after(0.5):
                await isolator.execute("python3", ["-c", "import time; time.sleep(100)",
                                                   marker])

    anyio.run(main)
    assert survivors(marker) == []


def test_execute_sync_matches_the_spec_example(reachable_dir: Path) -> None:
    # (A work directory the run's uid can reach by its absolute path: Python opens
    # `script.py` by the absolute path it makes of it.)
    script = reachable_dir / "script.py"
    script.write_text("print('from script')\n")
    config = SandboxConfig(work_dir=str(reachable_dir), cpu_time_limit=30,
                           memory_limit=256 * 1024 * 1024)
    result = SandboxIsolator(config).execute_sync("python3", ["script.py"])
    assert result.exit_code == 0
    assert result.stdout == b"from script\n"


def test_mapping_config_is_checked() -> None:
    assert SandboxIsolator({"cpu_time_limit": 3}).config.cpu_time_limit == 3.0
    with pytest.raises(ConfigError, match=r"sandbox\.process\.cpu_time_limit"):
        SandboxIsolator({"cpu_time_limit": "x"})


# --- refusals: what this backend cannot enforce ----------------------------------------------


def test_network_off_and_seccomp_are_refused_unless_weaker_is_allowed() -> None:
    with pytest.raises(UnsupportedLimitError) as info:
        SandboxIsolator(SandboxConfig(enable_network=False))
    assert "enable_network=False" in str(info.value)
    assert "allow_weaker_isolation=True" in str(info.value)
    assert "neuroflow[namespace]" in str(info.value)
    with pytest.raises(UnsupportedLimitError, match="enable_seccomp=True"):
        SandboxIsolator(SandboxConfig(enable_seccomp=True))
    with pytest.raises(UnsupportedLimitError, match="strict"):
        SandboxIsolator(SandboxConfig(security_level=SandboxSecurityLevel.STRICT))
    weaker = SandboxIsolator(SandboxConfig(enable_network=False, allow_weaker_isolation=True))
    result = weaker.execute_sync("/bin/true")
    assert result.ok
    assert any("enable_network=False" in w for w in result.warnings)


def test_strict_with_weaker_allowed_uses_the_race_free_launcher() -> None:
    config = SandboxConfig(security_level="strict", allow_weaker_isolation=True,
                           max_open_files=32)
    isolator = SandboxIsolator(config)
    result = isolator.execute_sync("/bin/sh", ["-c", "ulimit -n; cat /proc/self/cgroup"])
    assert result.stdout.split()[0] == b"32"
    if cgroups.support().usable:
        assert b"/neuroflow-" in result.stdout


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory a dropped uid can reach by its absolute path."""
    with reachable_directory() as path:
        yield path


@pytest.fixture
def no_cgroups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this machine has no usable cgroup (a non-root user, a container)."""
    monkeypatch.setattr(cgroups, "_support",
                        cgroups.CgroupSupport(None, problem="no cgroup (test)"))
    monkeypatch.setattr(cgroups, "_pool", None)


@pytest.mark.usefixtures("no_cgroups")
def test_without_cgroups_the_process_limit_and_tree_kill_are_refused() -> None:
    with pytest.raises(UnsupportedLimitError) as info:
        SandboxIsolator(SandboxConfig())
    text = str(info.value)
    assert "needs a pids or memory cgroup" in text
    assert "allow_weaker_isolation=True" in text


@pytest.mark.usefixtures("no_cgroups")
def test_without_cgroups_weaker_mode_uses_rlimits_and_process_group_kill() -> None:
    marker = new_marker()
    config = SandboxConfig(allow_weaker_isolation=True, memory_limit=64 * 1024 * 1024)
    isolator = SandboxIsolator(config)
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(100)',\n"
        "                  sys.argv[1]])\n"
        "time.sleep(100)\n"
    )
    result = isolator.execute_sync("python3", ["-c", code, marker], timeout=0.5)
    assert result.reason is TerminationReason.TIMED_OUT
    assert any("max_processes" in w for w in result.warnings)
    assert survivors(marker) == []  # same process group: killed with it
    # `read` waits for stdin, which is written only after the limits are applied.
    limits = isolator.execute_sync("/bin/sh", ["-c", "read x; ulimit -v"], stdin=b"go\n")
    assert int(limits.stdout) == 64 * 1024  # RLIMIT_AS in KiB stands in for the cgroup


@pytest.mark.usefixtures("no_cgroups")
def test_permissive_level_skips_what_it_cannot_enforce() -> None:
    result = SandboxIsolator(SandboxConfig(security_level="permissive")).execute_sync(
        "/bin/echo", ["ok"]
    )
    assert result.stdout == b"ok\n"
    assert result.warnings


@pytest.mark.anyio
async def test_rlimits_apply_to_the_program() -> None:
    config = SandboxConfig(max_open_files=33, max_file_size=1024 * 1024, cpu_time_limit=7)
    async with SandboxIsolator(config) as isolator:
        # `read` returns once stdin arrives, and stdin is written after the limits are set.
        fast = await isolator.execute(
            "/bin/sh", ["-c", "read x; ulimit -n; ulimit -f; ulimit -t; ulimit -c"],
            stdin=b"go\n",
        )
    async with SandboxIsolator(attrs.evolve(config, exact_rlimits=True)) as isolator:
        exact = await isolator.execute("/bin/sh", ["-c", "ulimit -n; ulimit -f; ulimit -t"])
    assert fast.stdout.split() == [b"33", b"2048", b"7", b"0"]  # -f counts 512-byte blocks
    assert exact.stdout.split() == [b"33", b"2048", b"7"]


@pytest.mark.anyio
async def test_execute_sync_inside_an_event_loop_says_what_to_do() -> None:
    with pytest.raises(SandboxError, match=r"use `await isolator\.execute"):
        SandboxIsolator().execute_sync("/bin/true")


@pytest.mark.anyio
async def test_concurrent_runs_are_kept_apart() -> None:
    results: dict[int, Any] = {}

    async def one(i: int) -> None:
        results[i] = await isolator.execute(
            "/bin/sh", ["-c", f"cat /proc/self/cgroup; sleep 0.2; echo done-{i}"]
        )

    async with SandboxIsolator() as isolator:
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
    assert all(results[i].stdout.endswith(f"done-{i}\n".encode()) for i in range(8))
    if cgroups.support().usable:
        own = [
            next(ln for ln in r.stdout.decode().splitlines() if "/neuroflow-" in ln)
            for r in results.values()
        ]
        assert len(set(own)) == 8  # every run had its own cgroup


@pytest.mark.anyio
async def test_allowing_one_name_of_a_multi_call_binary_does_not_allow_another(
    reachable_dir: Path,
) -> None:
    # Like busybox: `ls` and `rm` are links to the same program.  (In a directory the
    # run's uid may search: a name is looked up among the programs the run may execute.)
    bin_dir = reachable_dir / "bin"
    bin_dir.mkdir()
    (bin_dir / "ls").symlink_to("/bin/echo")
    (bin_dir / "rm").symlink_to("/bin/echo")
    config = SandboxConfig(allowed_commands=["ls"], env={"PATH": str(bin_dir)})
    async with SandboxIsolator(config) as isolator:
        allowed = await isolator.execute("ls", ["listed"])
        by_path = await isolator.execute(str(bin_dir / "ls"), ["by path"])
        with pytest.raises(CommandNotAllowedError):
            await isolator.execute("rm", ["-rf", "x"])
        with pytest.raises(CommandNotAllowedError):
            await isolator.execute(str(bin_dir / "rm"))
    assert allowed.stdout == b"listed\n"
    assert by_path.stdout == b"by path\n"


@pytest.mark.anyio
async def test_a_relative_path_is_checked_where_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``usr/bin/ls`` from ``/`` is the real ls, but the run resolves it in ``work_dir``."""
    ls = echoed_path("ls")
    work = tmp_path / "work"
    planted = work / ls.lstrip("/")
    planted.parent.mkdir(parents=True)
    planted.write_text(f"#!/bin/sh\ntouch {tmp_path}/planted-ran\n")
    planted.chmod(0o755)
    monkeypatch.chdir("/")
    config = SandboxConfig(allowed_commands=["ls"], work_dir=str(work))
    async with SandboxIsolator(config) as isolator:
        with pytest.raises(CommandNotAllowedError):
            await isolator.execute(ls.lstrip("/"))
        # The same relative path is fine where it does name the allowed program.
        (work / "ls-link").symlink_to(ls)
        real = await isolator.execute(ls)
        with pytest.raises(CommandNotAllowedError):
            await isolator.execute("./ls-link")  # another name of the same binary
    assert not (tmp_path / "planted-ran").exists()
    assert real.exit_code == 0


@pytest.mark.anyio
async def test_a_relative_path_to_an_allowed_program_runs(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "hello").write_text("#!/bin/sh\necho hello from bin\n")
    (bin_dir / "hello").chmod(0o755)
    config = SandboxConfig(allowed_commands=[str(bin_dir / "hello")], work_dir=str(tmp_path))
    async with SandboxIsolator(config) as isolator:
        result = await isolator.execute("bin/hello")
        again = await isolator.execute("./bin/../bin/hello")
    assert result.stdout == b"hello from bin\n"
    assert again.stdout == b"hello from bin\n"
