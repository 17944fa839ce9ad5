"""Stdio servers inside an isolation backend (``sandbox = "process"``): the server runs
under the sandbox's uid, cgroup limits and guards, and nothing of it outlives a stop."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from mcp_helpers import TINY, alive, eventually

from neuroflow import BackendSpec, create_backend, hookimpl
from neuroflow.config import reload_config
from neuroflow.mcp import MCPServerError

pytestmark = pytest.mark.anyio

RAW = Path(TINY).with_name("raw_server.py")
KEY = "k" * 32


def sandboxed_raw(work: Path, **fields: object) -> dict[str, object]:
    """The hand-written server, copied into ``work`` (the sandbox's work directory) and
    run by a bare ``python3``: the sandbox finds one its uid may execute."""
    work.mkdir(exist_ok=True)
    shutil.copy(RAW, work / "raw_server.py")
    return {"name": "raw", "command": "python3", "args": ["raw_server.py"],
            "sandbox": "process", "cwd": str(work), **fields}


def configure(text: str = "") -> None:
    Path("neuroflow.toml").write_text(f"""
[security.audit]
file = "audit.log"
key = "{KEY}"
{text}
""")
    reload_config()


def audit() -> list[dict]:
    return [json.loads(line) for line in Path("audit.log").read_text().splitlines()]


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


async def test_a_stdio_server_runs_in_the_process_sandbox_under_its_uid_and_limits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_SECRET", "s3cret")
    monkeypatch.setenv("SHARED_SETTING", "visible")
    configure("""
[sandbox.process]
memory_limit = "64M"
""")
    async with create_backend("mcp", gate=False) as mcp:
        status = await mcp.start_server(**sandboxed_raw(
            tmp_path / "work", env={"GIVEN": "1"}, env_allow=["SHARED_SETTING"]))
        assert status.connected and status.tool_count == 5
        pid = status.pid
        inside = json.loads((await mcp.execute_tool("raw", "whoami"))["result"])
        if os.geteuid() == 0:  # a root host drops each run to a dedicated uid
            assert inside["uid"] != 0
            assert Path(f"/proc/{pid}/status").read_text().count(f"\t{inside['uid']}") >= 1
        assert inside["cwd"] == str(tmp_path / "work")
        assert "HOST_SECRET" not in inside["env"] and "GIVEN" in inside["env"]
        assert "SHARED_SETTING" in inside["env"]
        assert (await mcp.execute_tool("raw", "hog", {"mib": 8}))["result"] == f"held {8 << 20}"
        # Past memory_limit the sandbox ends the server; the client reports it down.
        over = await mcp.execute_tool("raw", "hog", {"mib": 256}, timeout=30)
        assert over["is_error"]
        await eventually(lambda: not mcp.get_all_statuses()["raw"].connected,
                         what="the server to be reported down")
        error = mcp.get_all_statuses()["raw"].last_error
        from neuroflow.sandbox.cgroups import support

        if support().memory:  # the run's memory cgroup killed it, and the sandbox says so
            assert "ended by the sandbox (memory_limit)" in error, error
        else:  # an address-space limit instead: the allocation failed, the server died
            assert "exited with code" in error, error
        assert not alive(pid)
        # It comes back the same way, in the sandbox again.
        again = await mcp.reconnect("raw")
        assert again.connected and again.pid != pid
        assert (await mcp.execute_tool("raw", "tool_1"))["result"] == "ran tool_1"
        pid = again.pid
        await mcp.stop_all()
        assert not alive(pid)


async def test_the_sandboxed_server_s_command_passes_the_guards_and_is_audited(
        tmp_path: Path) -> None:
    configure("""
[security.allowlist]
deny = ["python3"]
""")
    async with create_backend("mcp", gate=False) as mcp:
        with pytest.raises(MCPServerError, match=r"'raw' failed to start: .*python3"):
            await mcp.start_server(**sandboxed_raw(tmp_path / "work"))
    denied = [r for r in audit() if r["resource"] == "python3"]
    assert [(r["action"], r["actor"], r["decision"], r["rule"]) for r in denied] == [
        ("command", "mcp-server:raw", "deny", "allowlist.deny")]

    configure()
    Path("audit.log").unlink()
    async with create_backend("mcp", gate=False) as mcp:
        status = await mcp.start_server(**sandboxed_raw(tmp_path / "work"))
        assert status.connected
        assert (await mcp.execute_tool("raw", "tool_0"))["result"] == "ran tool_0"
    records = [r for r in audit() if r["resource"] == "python3"]
    # The decision when it started; how it ended when it was stopped (it leaves on EOF).
    assert [(r["event"], r["decision"], r["outcome"]) for r in records] == [
        ("guard_decision", "allow", None), ("action_outcome", None, "success")], records
    assert records[0]["details"]["arguments"] == ["raw_server.py"]
    assert records[0]["details"]["component"] == "sandbox.process"
    assert records[1]["details"]["reason"] == "exited"


async def test_an_unknown_sandbox_or_one_that_cannot_spawn_is_reported(
        tmp_path: Path) -> None:
    from neuroflow.plugins import PluginManager, set_plugin_manager

    class RunsToCompletionOnly:
        """An isolation backend without the optional spawn."""

        async def execute(self, command, args=(), *, stdin=None, env=None, timeout=None):
            raise AssertionError("not used")

        async def aclose(self) -> None:
            pass

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc: object) -> None:
            pass

    class Plugin:
        @hookimpl
        def neuroflow_backends(self) -> list[BackendSpec]:
            return [BackendSpec(name="batch", kind="isolation",
                                factory=lambda: RunsToCompletionOnly())]

    manager = PluginManager()
    manager.register(Plugin(), "batch-plugin")
    set_plugin_manager(manager)
    configure()
    async with create_backend("mcp", gate=False) as mcp:
        statuses = await mcp.start_from_config({"servers": {
            "a": sandboxed_raw(tmp_path / "a", sandbox="batch", cwd=None),
            "b": sandboxed_raw(tmp_path / "b", sandbox="nosuch")}})
    assert "cannot start a long-running process" in statuses["a"].last_error
    assert "RunsToCompletionOnly" in statuses["a"].last_error
    assert "mcp.servers.b.sandbox" in statuses["b"].last_error
    assert "nosuch" in statuses["b"].last_error


async def test_a_stdio_server_runs_in_the_namespace_sandbox(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("neuroflow_sandbox_namespace", reason="needs neuroflow[namespace]")
    monkeypatch.setenv("HOST_SECRET", "s3cret")
    configure()
    async with create_backend("mcp", gate=False) as mcp:
        status = await mcp.start_server(**sandboxed_raw(tmp_path / "work",
                                                        sandbox="namespace"))
        assert status.connected and status.tool_count == 5
        pid = status.pid
        inside = json.loads((await mcp.execute_tool("raw", "whoami"))["result"])
        if os.geteuid() == 0:
            assert inside["uid"] != 0
        assert inside["cwd"] == str(tmp_path / "work")
        assert "HOST_SECRET" not in inside["env"]
        assert (await mcp.execute_tool("raw", "tool_2"))["result"] == "ran tool_2"
        await mcp.stop_all()
        assert not alive(pid)
    started = [r for r in audit() if r["resource"] == "python3"]
    assert started and started[0]["details"]["component"] == "sandbox.namespace"
