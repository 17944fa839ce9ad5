"""How a run is waited for: a run like the last one, which ended at once, is waited for a
moment on its pidfd alone, without a trip through the event loop; any other run (and one
that was not done by then) through the loop, with its deadline as a timerfd in the run's
epoll set (or a cancel scope where there is no native timer).  Either way the deadline
holds and all the output is read."""

from __future__ import annotations

import anyio
import pytest
from sandbox_helpers import new_marker, survivors

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, TerminationReason, process

pytestmark = pytest.mark.anyio

BIG = "import sys\nsys.stdout.write('o' * 300_000)\nsys.stderr.write('e' * 300_000)\n"


@pytest.fixture(params=["timerfd", "cancel scope"])
def timer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "timerfd" and process._deadline_fd is None:
        pytest.skip("this neuroflow-native build has no deadline_fd")
    if request.param == "cancel scope":
        monkeypatch.setattr(process, "_deadline_fd", None)
    return request.param


async def test_after_quick_runs_a_slow_one_still_ends_at_its_deadline(timer: str) -> None:
    marker = new_marker()
    async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:
        for _ in range(3):
            assert (await box.execute("/bin/true")).ok
        # As after runs that ended within _QUICK_RUN (how long /bin/true takes depends on
        # the machine's load): the next run is waited for a moment before the loop.
        box._quick = True
        with anyio.fail_after(10):
            slow = await box.execute("/bin/sh", ["-c", f"sleep 5 # {marker}"], timeout=0.5)
        assert slow.reason is TerminationReason.TIMED_OUT
        assert "wall_time" in slow.limits_hit
        assert 500 <= slow.wall_time_ms < 5000
        # A run that was not quick is not waited for so: the next one goes by the loop.
        assert not box._quick
        again = await box.execute("/bin/true")
        assert again.ok and again.reason is TerminationReason.EXITED
    assert survivors(marker) == []


@pytest.mark.parametrize("quick", [True, False])
async def test_all_output_written_just_before_the_exit_is_read(timer: str, quick: bool
                                                              ) -> None:
    async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:
        for program in (BIG, "print('x' * 1000)"):
            # quick: waited for on its pidfd first; 300 KB fill the pipes, so the program
            # is still writing when that wait ends and the loop reads the rest.
            box._quick = quick
            result = await box.execute("python3", ["-I", "-S", "-c", program])
            assert result.exit_code == 0, result.stderr[-500:]
            if program is BIG:
                assert result.stdout == b"o" * 300_000
                assert result.stderr == b"e" * 300_000
            else:
                assert (result.stdout, result.stderr) == (b"x" * 1000 + b"\n", b"")


@pytest.mark.parametrize("quick", [True, False])
async def test_a_pipe_kept_by_an_escaped_process_ends_with_the_tree(timer: str, quick: bool
                                                                   ) -> None:
    marker = new_marker()
    async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:
        box._quick = quick
        with anyio.fail_after(10):
            # The main process exits at once; a child of it keeps stdout open.
            result = await box.execute("/bin/sh", ["-c", f"sleep 30 & echo hi # {marker}"])
    assert result.reason is TerminationReason.EXITED
    assert result.stdout == b"hi\n"
    assert survivors(marker) == []


class _SelectRecorder:
    """Stands in for the ``select`` module inside ``process``: records each blocking
    ``select.select`` on one pidfd for longer than the exit spin (the quick-run wait)."""

    def __init__(self) -> None:
        import select as real

        self._real = real
        self.quick_waits: list[float] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def select(self, r: object, w: object, x: object, timeout: float | None = None) -> object:
        if timeout is not None and timeout > process._EXIT_SPIN:
            self.quick_waits.append(timeout)
        return self._real.select(r, w, x, timeout)


async def test_a_run_beside_another_never_holds_the_loop(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    recorder = _SelectRecorder()
    monkeypatch.setattr(process, "select", recorder)
    async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:
        # Alone, a run after a quick one is waited for on its pidfd (the loop held).
        box._quick = True
        assert (await box.execute("/bin/true")).ok
        assert len(recorder.quick_waits) == 1
        recorder.quick_waits.clear()
        # Beside a run in flight, never: the other run's task must keep being served.
        # (The sleeping run, alone when it starts, is not waited for so either.)
        box._quick = False
        async with anyio.create_task_group() as group:
            group.start_soon(box.execute, "/bin/sh", ["-c", "sleep 0.5"])
            await anyio.sleep(0.1)
            for _ in range(5):
                box._quick = True
                assert (await box.execute("/bin/true")).ok
        assert recorder.quick_waits == []
