"""The host's session: a sandboxed program must not reach the host's controlling
terminal, nor signal the host through their shared session.

A host with a controlling terminal (someone ran the agent in a shell): the sandboxed
program must not reach that terminal -- neither read it nor push input into it with
``TIOCSTI`` (which the host's shell would then run as the user).

The host is a helper process that leads a session whose controlling terminal is a fresh
pty; it runs the attack once unsandboxed (the control: it must get through) and once
through ``SandboxIsolator``."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap

import pytest

from neuroflow.sandbox.process import spawn_path

ATTACK = textwrap.dedent("""
    import fcntl, json, os, termios
    hits = []
    for name in ("/dev/tty", 0, 1, 2):
        try:
            fd = os.open(name, os.O_RDWR | os.O_NOCTTY) if isinstance(name, str) else name
            fcntl.ioctl(fd, termios.TIOCSTI, b"Z")
            hits.append(str(name))
        except OSError:
            pass
    print(json.dumps(hits))
""")

HOST = textwrap.dedent("""
    import fcntl, json, subprocess, sys, termios
    import anyio
    from neuroflow.sandbox import SandboxConfig, SandboxIsolator
    from neuroflow.sandbox.process import spawn_path

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty on fd 0 becomes our terminal
    attack = sys.argv[1]
    direct = subprocess.run([sys.executable, "-I", "-S", "-c", attack], stdin=subprocess.DEVNULL,
                            capture_output=True, check=True).stdout

    async def sandboxed():
        async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as isolator:
            result = await isolator.execute("python3", ["-I", "-S", "-c", attack])
            return result.stdout, result.stderr

    out, err = anyio.run(sandboxed)
    print(json.dumps({"path": spawn_path(), "direct": json.loads(direct),
                      "sandboxed": out.decode(),
                      "stderr": err.decode()}))
""")


def _drain(fd: int) -> bytes:
    data = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("path", ["native", "fork"])
def test_the_sandbox_cannot_reach_the_hosts_controlling_terminal(path: str) -> None:
    if path == "native" and spawn_path() != "native":
        pytest.skip("neuroflow-native is not installed here")
    master, slave = os.openpty()
    # The fork fallback: the host imports the sandbox without the C spawn.
    code = HOST if path == "native" else (
        "import sys; sys.modules['neuroflow_native'] = None\n" + HOST)
    try:
        host = subprocess.run([sys.executable, "-c", code, ATTACK], stdin=slave,
                              capture_output=True, start_new_session=True,
                              timeout=120, check=False)
        echoed = _drain(master)
    finally:
        os.close(slave)
        os.close(master)
    assert host.returncode == 0, host.stderr.decode()
    report = json.loads(host.stdout)
    assert report["path"] == path
    # The control: the same program run directly does reach the terminal.
    assert "/dev/tty" in report["direct"], report
    assert json.loads(report["sandboxed"]) == [], report
    # What the control pushed was echoed by the terminal; nothing more.
    assert echoed.count(b"Z") == len(report["direct"]), (echoed, report)


SIGCONT_THE_HOST = textwrap.dedent("""
    import os, signal
    try:
        os.kill(os.getppid(), signal.SIGCONT)
        print("sent")
    except PermissionError:
        print("refused")
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="the host is not root here: runs keep its uid")
@pytest.mark.parametrize("path", ["native", "fork"])
def test_the_sandbox_cannot_send_sigcont_to_the_host(
    path: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A process may send SIGCONT to any process of its own session, whatever its uid: a
    # run sharing the host's session could resume what the user stopped there and fire
    # SIGCONT handlers at will.  Runs lead sessions of their own.
    import signal

    import anyio

    from neuroflow.sandbox import SandboxConfig, SandboxIsolator, process

    if path == "native" and spawn_path() != "native":
        pytest.skip("neuroflow-native is not installed here")
    if path == "fork":
        monkeypatch.setattr(process, "_native_spawn", None)
    received: list[int] = []
    previous = signal.signal(signal.SIGCONT, lambda sig, frame: received.append(sig))
    try:
        async def attack() -> bytes:
            async with SandboxIsolator(SandboxConfig(wall_timeout=30), gate=False) as box:
                result = await box.execute("python3", ["-I", "-S", "-c", SIGCONT_THE_HOST])
                return result.stdout

        assert anyio.run(attack) == b"refused\n"
    finally:
        signal.signal(signal.SIGCONT, previous)
    assert received == []
