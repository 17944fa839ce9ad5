"""The ``mcp`` backend against real stdio servers: tools, results, timeouts, crashes,
list changes, name collisions, start failures and process hygiene."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import attrs
import pytest
from mcp_helpers import TINY, alive, eventually, group_members, kill_group, tiny

from neuroflow import create_backend
from neuroflow.errors import ConfigError
from neuroflow.mcp import MCPServerError, MCPServerManager, RealMCPExecutor

pytestmark = pytest.mark.anyio

KEYS = {"result", "is_error", "content", "server", "tool"}


def client(**options: object):
    return create_backend("mcp", options=options or None, gate=False)


async def test_spec_names_build_the_plugin_s_client_and_call_tools() -> None:
    executor = RealMCPExecutor(gate=False)
    assert type(MCPServerManager(gate=False)) is type(executor)
    status = await executor.start_server(name="tiny", server_type="test",
                                         command=sys.executable, args=[TINY])
    try:
        assert status.connected and status.tool_count == 7 and status.pid
        names = [t["name"] for t in await executor.list_tools()]
        assert names == ["echo", "add", "slow", "fail", "garbage", "grow", "auth_header"]
        echoed = await executor.execute_tool("tiny", "echo", {"text": "hello"})
        assert set(echoed) >= KEYS and echoed["result"] == "hello"
        assert echoed["is_error"] is False and echoed["content"][0]["text"] == "hello"
        added = await executor.execute_tool(server_name="tiny", tool_name="add",
                                            arguments={"a": 2, "b": 40})
        assert added["result"] == {"sum": 42}
        stats = executor.get_all_statuses()["tiny"]
        assert stats.calls == 2 and stats.errors == 0
        assert await executor.ping("tiny") > 0
        assert executor.get_all_statuses()["tiny"].last_ping is not None
    finally:
        await executor.stop_all()


async def test_tool_errors_and_protocol_errors_come_back_in_the_one_shape(shared) -> None:
    before = shared.get_all_statuses()["a"].errors
    failed = await shared.execute_tool("a", "fail", {"message": "boom"})
    unknown = await shared.execute_tool("a", "no_such_tool", {})
    bad_args = await shared.execute_tool("a", "add", {"a": "not a number"})
    for result in (failed, unknown, bad_args):
        assert set(result) >= KEYS and result["is_error"] is True
        assert isinstance(result["result"], str) and result["result"]
    assert "no_such_tool" in unknown["result"]
    assert shared.get_all_statuses()["a"].errors == before + 3
    # the session survived all three
    assert (await shared.execute_tool("a", "echo", {"text": "ok"}))["result"] == "ok"


async def test_garbage_on_stdout_does_not_break_the_session(shared) -> None:
    assert (await shared.execute_tool("a", "garbage"))["result"] == "still here"
    assert (await shared.execute_tool("a", "echo", {"text": "x"}))["result"] == "x"
    assert shared.get_all_statuses()["a"].connected


async def test_concurrent_calls_share_one_stdio_session(shared) -> None:
    results: list[object] = []

    async def call(i: int) -> None:
        results.append((await shared.execute_tool("a", "add", {"a": i, "b": 1}))["result"])

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(call, i)
    assert sorted(r["sum"] for r in results) == list(range(1, 51))


async def test_every_tool_is_listed(shared) -> None:
    assert len(await shared.list_tools("b")) == 157
    assert shared.get_all_statuses()["b"].tool_count == 157


@pytest.mark.parametrize(("policy", "echoes"), [
    ("prefix", {"a/echo", "b/echo"}), ("first", {"echo", "b/echo"})])
async def test_name_collisions_follow_the_policy(shared, policy: str, echoes: set[str]) -> None:
    shared.config = attrs.evolve(shared.config, name_collision=policy)
    tools = await shared.list_tools()
    assert {t["name"] for t in tools if t["tool"] == "echo"} == echoes
    assert len({t["name"] for t in tools}) == len(tools) == 7 + 157
    assert {t["name"] for t in tools if t["tool"] == "extra_1"} == {"extra_1"}


async def test_name_collisions_can_be_an_error(shared) -> None:
    shared.config = attrs.evolve(shared.config, name_collision="error")
    with pytest.raises(MCPServerError, match="'echo' is offered by several servers"):
        await shared.list_tools()
    assert len(await shared.list_tools("a")) == 7
    shared.config = attrs.evolve(shared.config, name_collision="prefix")


async def test_the_client_default_timeout_applies_when_the_server_sets_none(shared) -> None:
    shared.config = attrs.evolve(shared.config, default_timeout_seconds=0.3)
    try:
        result = await shared.execute_tool("a", "slow", {"seconds": 3})
    finally:
        shared.config = attrs.evolve(shared.config, default_timeout_seconds=30.0)
    assert result["timed_out"] and "0.3s" in result["result"]


async def test_a_hanging_tool_times_out_and_is_cancelled_on_the_server(tmp_path) -> None:
    marker = tmp_path / "finished"
    async with client() as mcp:
        await mcp.start_server(**tiny(timeout_seconds=0.5))  # the server's own timeout
        result = await mcp.execute_tool("tiny", "slow", {"seconds": 2, "marker": str(marker)})
        assert result["is_error"] and result["timed_out"]
        assert "0.5s" in result["result"] and set(result) >= KEYS
        # an explicit timeout wins over the server's
        quick = await mcp.execute_tool("tiny", "slow", {"seconds": 0.2}, timeout=10)
        assert quick["result"] == "done"
        await anyio.sleep(2.5)
        assert not marker.exists(), "the timed-out call kept running on the server"
        assert (await mcp.execute_tool("tiny", "echo", {"text": "alive"}))["result"] == "alive"


async def test_a_killed_server_is_detected_and_the_others_keep_working() -> None:
    async with client() as mcp:
        await mcp.start_from_config({"servers": {"a": tiny("a"), "b": tiny("b")}})
        pid = mcp.get_all_statuses()["a"].pid
        kill_group(pid)
        await eventually(lambda: not mcp.get_all_statuses()["a"].connected, what="a down")
        status = mcp.get_all_statuses()["a"]
        assert "killed by signal 9" in status.last_error
        down = await mcp.execute_tool("a", "echo", {"text": "x"})
        assert down["is_error"] and "not connected" in down["result"]
        assert (await mcp.execute_tool("b", "echo", {"text": "y"}))["result"] == "y"
        with pytest.raises(MCPServerError, match="'c'"):
            await mcp.execute_tool("c", "echo", {})
        # reconnecting brings it back, counted as a restart
        status = await mcp.reconnect("a")
        assert status.connected and status.restarts == 1 and status.pid != pid
        assert (await mcp.execute_tool("a", "echo", {"text": "z"}))["result"] == "z"


async def test_tool_list_changes_are_picked_up() -> None:
    async with client() as mcp:
        await mcp.start_server(**tiny())
        await mcp.execute_tool("tiny", "grow")
        await eventually(lambda: mcp.get_all_statuses()["tiny"].tool_count == 8,
                         what="the refreshed tool list")
        assert "extra" in [t["name"] for t in await mcp.list_tools("tiny")]
        assert (await mcp.execute_tool("tiny", "extra"))["result"] == "extra!"


async def test_a_server_that_cannot_start_is_reported_and_others_start() -> None:
    async with client() as mcp:
        with pytest.raises(MCPServerError, match="'broken' failed to start: server process "
                                                 "exited with code 3"):
            await mcp.start_server(name="broken", command=sys.executable,
                                   args=["-c", "import sys; sys.exit(3)"])
        statuses = await mcp.start_from_config({"servers": {
            "gone": {"command": sys.executable, "args": ["-c", "print('no mcp here')"]},
            "missing": {"command": "/nonexistent/server"},
            "ok": tiny("ok")}})
        assert statuses["ok"].connected
        assert not statuses["gone"].connected and statuses["gone"].last_error
        assert "/nonexistent/server" in statuses["missing"].last_error


async def test_bad_server_fields_are_one_line_each() -> None:
    async with client() as mcp:
        with pytest.raises(ConfigError) as err:
            await mcp.start_server(name="x", command="python3", timeout_seconds="soon")
        assert str(err.value) == ("mcp.servers.x.timeout_seconds: expected a number, "
                                  "got 'soon'")
        with pytest.raises(ConfigError, match=r"mcp\.servers\.y\.command: a stdio server"):
            await mcp.start_server(name="y")


async def test_stop_all_leaves_no_process_not_even_a_grandchild(tmp_path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    mcp = client()
    statuses = await mcp.start_from_config({"servers": {
        "tiny": tiny(env={"TINY_GRANDCHILD": str(pidfile)}), "other": tiny("other")}})
    status, other = statuses["tiny"], statuses["other"]
    grandchild = int(pidfile.read_text())
    assert alive(grandchild) and grandchild in group_members(status.pid)
    await mcp.stop_server("other")
    assert not group_members(other.pid)
    assert list(mcp.get_all_statuses()) == ["tiny"]
    await mcp.stop_all()
    assert mcp.get_all_statuses() == {}
    assert not alive(status.pid) and not alive(grandchild)
    assert not group_members(status.pid)
    await mcp.aclose()


async def test_an_environment_allow_list_keeps_host_secrets_out(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOST_SECRET", "s3cret")
    monkeypatch.setenv("SHARED_SETTING", "visible")
    out = tmp_path / "env.txt"
    probe = ("import os; open(os.environ['OUT'], 'w').write("
             "f\"{os.environ.get('HOST_SECRET')} {os.environ.get('SHARED_SETTING')}\")")
    async with client() as mcp:
        with pytest.raises(MCPServerError, match="exited with code 0"):
            await mcp.start_server(name="env", command=sys.executable, args=["-c", probe],
                                   env={"OUT": str(out)}, env_allow=["SHARED_SETTING"])
    assert out.read_text() == "None visible"


async def test_garbage_on_the_wire_is_reported_and_every_page_is_listed() -> None:
    raw = str(Path(TINY).with_name("raw_server.py"))
    async with client() as mcp:
        status = await mcp.start_server(name="raw", command=sys.executable, args=[raw])
        assert status.connected and status.tool_count == 5  # three pages
        assert [t["name"] for t in await mcp.list_tools()] == [f"tool_{i}" for i in range(5)]
        result = await mcp.execute_tool("raw", "tool_3")
        assert result["result"] == "ran tool_3" and not result["is_error"]
        await eventually(lambda: mcp.get_all_statuses()["raw"].last_error is not None,
                         what="the garbage to be reported")
        assert "not a JSON-RPC message" in mcp.get_all_statuses()["raw"].last_error
        assert "garbage: this line" in mcp.get_all_statuses()["raw"].last_error
        assert await mcp.ping("raw") > 0
