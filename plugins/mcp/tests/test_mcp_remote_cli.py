"""Streamable HTTP and SSE servers on loopback (headers and bearer token included), the
``neuroflow mcp`` commands, and no server left behind when the parent is killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from mcp_helpers import TINY, alive, eventually

from neuroflow import create_backend

pytestmark = pytest.mark.anyio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def serving(variable: str):
    port = free_port()
    process = subprocess.Popen([sys.executable, TINY], env={**os.environ, variable: str(port)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    await eventually(listening, timeout=60, what=f"the {variable} server")
    return process, port


@pytest.mark.parametrize(("variable", "transport", "path"), [
    ("TINY_HTTP_PORT", "http", "/mcp"), ("TINY_SSE_PORT", "sse", "/sse")])
async def test_remote_servers_with_headers_and_a_token_from_the_environment(
        monkeypatch, variable: str, transport: str, path: str) -> None:
    process, port = await serving(variable)
    monkeypatch.setenv("TINY_TOKEN", "t0ken")
    try:
        async with create_backend("mcp", gate=False) as mcp:
            status = await mcp.start_server(name="remote", transport=transport,
                                            url=f"http://127.0.0.1:{port}{path}",
                                            headers={"X-Team": "a"},
                                            auth_token_env="TINY_TOKEN")
            assert status.connected and status.transport == transport and status.pid is None
            result = await mcp.execute_tool("remote", "add", {"a": 1, "b": 2})
            assert result["result"] == {"sum": 3}
            seen = await mcp.execute_tool("remote", "auth_header")
            if transport == "http":  # SSE calls travel on POSTs the header also reaches
                assert seen["result"] == "Bearer t0ken"
            slow = await mcp.execute_tool("remote", "slow", {"seconds": 3}, timeout=0.3)
            assert slow["timed_out"]
            assert await mcp.ping("remote") > 0
    finally:
        process.kill()
        process.wait()


async def test_a_missing_token_variable_is_named() -> None:
    async with create_backend("mcp", gate=False) as mcp:
        with pytest.raises(Exception, match="TINY_NO_SUCH_TOKEN is not set"):
            await mcp.start_server(name="remote", transport="http",
                                   url="http://127.0.0.1:9/mcp",
                                   auth_token_env="TINY_NO_SUCH_TOKEN")


def neuroflow(*args: str):
    """Run a ``neuroflow`` command in this process (starting Python again costs seconds)."""
    from click.testing import CliRunner

    from neuroflow.cli import build_cli

    return CliRunner().invoke(build_cli(), list(args), prog_name="neuroflow")


def test_the_mcp_commands_against_the_configured_servers() -> None:
    from neuroflow.config import reload_config

    Path("neuroflow.toml").write_text(textwrap.dedent(f"""\
        [mcp.servers.tiny]
        command = "{sys.executable}"
        args = ["{TINY}"]

        [mcp.servers.off]
        command = "{sys.executable}"
        enabled = false
        """))
    reload_config()
    listed = neuroflow("mcp", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[0].startswith("tiny  stdio  ")
    assert "(disabled)" in listed.output.splitlines()[1]
    status = neuroflow("mcp", "status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["tiny"]["connected"] is True
    called = neuroflow("mcp", "call", "tiny", "add", '{"a": 20, "b": 22}')
    assert called.exit_code == 0 and json.loads(called.output) == {"sum": 42}
    failed = neuroflow("mcp", "call", "--timeout", "0.3", "tiny", "slow", '{"seconds": 5}')
    assert failed.exit_code == 1 and "did not answer within 0.3s" in failed.output
    unknown = neuroflow("mcp", "call", "nope", "echo")
    assert unknown.exit_code == 2
    assert "unknown MCP server 'nope' (configured: tiny, off)" in unknown.output


PARENT = """
import sys, anyio
sys.path.insert(0, {tests!r})
from mcp_helpers import tiny
from neuroflow import create_backend

async def main():
    mcp = create_backend("mcp", gate=False)
    status = await mcp.start_server(**tiny(env={{"TINY_GRANDCHILD": {pidfile!r}}}))
    print(status.pid, flush=True)
    await anyio.sleep(600)

anyio.run(main)
"""


async def test_a_killed_parent_leaves_no_server_behind(tmp_path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(tests=str(Path(TINY).parent),
                                             pidfile=str(pidfile))],
        stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(parent.stdout.readline())
        grandchild = int(pidfile.read_text())
        assert alive(server_pid) and alive(grandchild)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        # Nothing is left: neither the server nor the grandchild it started (the way npx
        # leaves node below itself), which does not read the closed stdin.
        await eventually(lambda: not alive(server_pid) and not alive(grandchild),
                         timeout=30, what="the server and its grandchild to be gone")
    finally:
        parent.kill()
        await anyio.sleep(0)


EXITING = """
import sys, anyio
sys.path.insert(0, {tests!r})
from mcp_helpers import tiny
from neuroflow import create_backend

async def main():
    mcp = create_backend("mcp", gate=False)
    status = await mcp.start_server(**tiny(env={{"TINY_GRANDCHILD": {pidfile!r}}}))
    print(status.pid, flush=True)
    # returns without stopping anything

anyio.run(main)
"""


async def test_an_interpreter_exiting_without_stop_all_leaves_nothing(tmp_path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    done = subprocess.run(
        [sys.executable, "-c", EXITING.format(tests=str(Path(TINY).parent),
                                             pidfile=str(pidfile))],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    server_pid, grandchild = int(done.stdout), int(pidfile.read_text())
    await eventually(lambda: not alive(server_pid) and not alive(grandchild), timeout=10,
                     what="the server and its grandchild to be gone")
