"""A dedicated uid that was cleaned up after its run stays locked by this process for its
next run here; what a run leaves is still gone before the uid runs again; a uid whose
clean-up failed is not reused before a full clean-up; no other process -- a forked child
included -- gets a uid this process holds; at exit the held uids are released cleanly."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
import textwrap

import anyio
import pytest
from sandbox_helpers import new_marker

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, runas

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the host is not root here")

#: Prints the run's uid and whether /tmp/<argv[1]> exists, then leaves that file there.
LEAVE = textwrap.dedent("""
    import json, os, sys
    path = "/tmp/" + sys.argv[1]
    seen = os.path.exists(path)
    open(path, "w").close()
    print(json.dumps({"uid": os.getuid(), "seen": seen}))
""")


def _lock_file(uid: int) -> str:
    return os.path.join(runas.LOCK_DIR, str(uid))


def _locked_by_someone(uid: int) -> bool:
    fd = os.open(_lock_file(uid), os.O_RDWR | os.O_CLOEXEC)
    try:
        # flock belongs to an open file: this one conflicts even with our own lock.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _range() -> tuple[int, int]:
    return 650000 + (os.getpid() % 500) * 20, 20


def test_the_next_run_gets_the_same_uid_held_in_between_and_cleaned() -> None:
    base, count = _range()
    marker = new_marker()
    config = SandboxConfig(wall_timeout=30, dedicated_uid_base=base, dedicated_uid_count=count)

    async def go() -> list[dict]:
        seen = []
        async with SandboxIsolator(config, gate=False) as box:
            for _ in range(2):
                result = await box.execute("python3", ["-I", "-S", "-c", LEAVE, marker])
                assert result.exit_code == 0, result.stderr
                seen.append(json.loads(result.stdout))
                uid = seen[-1]["uid"]
                # Between runs: what the run left is gone, and the uid stays ours.
                assert not os.path.exists("/tmp/" + marker)
                assert _locked_by_someone(uid)
                with open(_lock_file(uid)) as fh:
                    assert fh.read().split() == [str(os.getpid())]
        return seen

    first, second = anyio.run(go)
    assert base <= first["uid"] < base + count
    assert second["uid"] == first["uid"]  # taken again at no cost ...
    assert second["seen"] is False  # ... and clean


def test_a_uid_whose_clean_up_failed_is_cleaned_everywhere_before_it_runs_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = 661000 + os.getpid() % 5000
    marker = new_marker()
    config = SandboxConfig(wall_timeout=30, dedicated_uid_base=base, dedicated_uid_count=1)
    real = runas.remove_owned

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "the clean-up failed half-way")

    async def go() -> dict:
        async with SandboxIsolator(config, gate=False) as box:
            monkeypatch.setattr(runas, "remove_owned", broken)
            with pytest.raises(OSError, match="half-way"):
                await box.execute("python3", ["-I", "-S", "-c", LEAVE, marker])
            monkeypatch.setattr(runas, "remove_owned", real)
            # Not kept for the next run, and its lock file still names its holder ...
            assert all(hold.uid != base for pool in runas._idle.values() for hold in pool)
            assert not _locked_by_someone(base)
            with open(_lock_file(base)) as fh:
                assert fh.read().split() == [str(os.getpid())]
            assert os.path.exists("/tmp/" + marker)
            # ... so the next taker (this process) cleans up everywhere first.
            result = await box.execute("python3", ["-I", "-S", "-c", LEAVE, marker])
            assert result.exit_code == 0, result.stderr
            return json.loads(result.stdout)

    try:
        seen = anyio.run(go)
    finally:
        if os.path.exists("/tmp/" + marker):
            os.unlink("/tmp/" + marker)
    assert seen == {"uid": base, "seen": False}


FORKED = textwrap.dedent("""
    import json, os, sys, anyio
    from neuroflow.sandbox import SandboxConfig, SandboxIsolator, runas
    config = SandboxConfig(wall_timeout=30, dedicated_uid_base=int(sys.argv[1]),
                           dedicated_uid_count=2)

    async def uid():
        async with SandboxIsolator(config, gate=False) as box:
            result = await box.execute("/usr/bin/id", ["-u"])
            return int(result.stdout)

    parent = anyio.run(uid)  # that uid now waits, locked, for this process's next run
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        held = sum(len(pool) for pool in runas._idle.values())
        os.write(write, json.dumps([held, anyio.run(uid)]).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    held, child = json.loads(os.read(read, 4096))
    print(json.dumps({"parent": parent, "child": child, "child_held": held,
                      "parent_again": anyio.run(uid)}))
""")


def test_a_forked_child_never_runs_as_a_uid_its_parent_holds() -> None:
    base = 671000 + os.getpid() % 5000
    done = subprocess.run([sys.executable, "-c", FORKED, str(base)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["child_held"] == 0
    assert {seen["parent"], seen["child"]} == {base, base + 1}
    assert seen["parent_again"] == seen["parent"]


AT_EXIT = textwrap.dedent("""
    import sys, anyio
    from neuroflow.sandbox import SandboxConfig, SandboxIsolator
    config = SandboxConfig(wall_timeout=30, dedicated_uid_base=int(sys.argv[1]),
                           dedicated_uid_count=1)

    async def go():
        async with SandboxIsolator(config, gate=False) as box:
            assert (await box.execute("/bin/true")).ok
    anyio.run(go)
""")


def test_at_exit_the_held_uids_are_released_cleanly() -> None:
    base = 681000 + os.getpid() % 5000
    done = subprocess.run([sys.executable, "-c", AT_EXIT, str(base)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert not _locked_by_someone(base)
    with open(_lock_file(base)) as fh:
        assert fh.read().strip() == ""  # names no holder: nothing to clean up first


@pytest.mark.parametrize("walk", ["native", "python"])
def test_the_bounded_hand_over_walk(walk: str, tmp_path, monkeypatch: pytest.MonkeyPatch
                                    ) -> None:
    if walk == "native" and runas._native_chown_tree is None:
        pytest.skip("neuroflow-native is not installed here")
    if walk == "python":
        monkeypatch.setattr(runas, "_native_chown_tree", None)
    uid = 691000 + os.getpid() % 5000
    top = tmp_path / "work"
    (top / "sub").mkdir(parents=True)
    for name in ("a", "sub/b", "theirs", "linked"):
        (top / name).write_text(name)
    os.chown(top / "theirs", uid + 1, uid + 1)
    os.link(top / "linked", tmp_path / "elsewhere")
    (top / "link").symlink_to(tmp_path / "elsewhere")

    assert runas.chown_small_tree(str(top), 0, uid, uid, hand_over=True, limit=5) is False
    assert {p.lstat().st_uid for p in [top, *top.rglob("*")]} == {0, uid + 1}  # unchanged
    assert runas.chown_small_tree(str(top), 0, uid, uid, hand_over=True) is True
    owners = {str(p.relative_to(top)): p.lstat().st_uid for p in [top, *top.rglob("*")]}
    assert owners == {".": uid, "a": uid, "sub": uid, "sub/b": uid, "theirs": uid + 1,
                      "linked": 0, "link": uid}
    assert (tmp_path / "elsewhere").stat().st_uid == 0
    assert runas.chown_small_tree(str(top), uid, 0, 0) is True
    assert {p.lstat().st_uid for p in [top, *top.rglob("*")]} == {0, uid + 1}
