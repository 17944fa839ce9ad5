"""More real servers from the registries -- PyPI's ``mcp-server-git``, npm's
``server-everything`` (long-running tools, draft-07 schemas) -- and a server that hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import anyio
import pytest
from mcp_helpers import alive, eventually, group_members, tiny

from neuroflow import AINativeAgent, LLMConfig, create_backend
from neuroflow.mcp import MCPHealthMonitor, use_mcp

pytestmark = pytest.mark.anyio


async def test_mcp_server_git_from_pypi_commits_and_reads_the_log(tmp_path) -> None:
    pytest.importorskip("mcp_server_git", reason="mcp-server-git is not installed "
                        "(pip install 'neuroflow-mcp[test]')")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "notes.txt").write_text("first note\n")
    who = {"GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.org",
           "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.org"}
    async with create_backend("mcp", gate=False) as mcp:
        status = await mcp.start_server(name="git", command=sys.executable,
                                        args=["-m", "mcp_server_git", "--repository", str(repo)],
                                        env=who)
        assert status.connected
        names = {t["name"] for t in await mcp.list_tools("git")}
        assert {"git_status", "git_add", "git_commit", "git_log"} <= names
        where = {"repo_path": str(repo)}
        untracked = await mcp.execute_tool("git", "git_status", where)
        assert not untracked["is_error"] and "notes.txt" in untracked["result"]
        assert not (await mcp.execute_tool("git", "git_add",
                                           {**where, "files": ["notes.txt"]}))["is_error"]
        committed = await mcp.execute_tool("git", "git_commit", {**where, "message": "add notes"})
        assert not committed["is_error"], committed
        log = await mcp.execute_tool("git", "git_log", where)
        assert "add notes" in log["result"] and "Test Author" in log["result"]
        bad = await mcp.execute_tool("git", "git_status", {"repo_path": str(tmp_path / "no")})
        assert bad["is_error"]
    # the commit is real: git itself sees it
    head = subprocess.run(["git", "-C", str(repo), "log", "--format=%s %an"], check=True,
                          capture_output=True, text=True).stdout
    assert head == "add notes Test Author\n"


EVERYTHING = ["-y", "@modelcontextprotocol/server-everything"]


async def test_server_everything_long_running_tools_timeouts_and_agent_calls(npx) -> None:
    async with create_backend("mcp", gate=False) as mcp:
        status = await mcp.start_server(name="everything", command=npx, args=EVERYTHING,
                                        startup_timeout_seconds=180)
        assert status.connected and status.tool_count >= 10
        assert len(group_members(status.pid)) >= 2  # npx and the node server below it
        tools = {t["name"]: t for t in await mcp.list_tools("everything")}
        assert {"echo", "get-sum", "trigger-long-running-operation"} <= set(tools)
        echoed = await mcp.execute_tool("everything", "echo", {"message": "hi"})
        assert "hi" in echoed["result"] and not echoed["is_error"]

        # A long-running tool (it reports progress while it runs) finishes ...
        done = await mcp.execute_tool("everything", "trigger-long-running-operation",
                                      {"duration": 1, "steps": 2}, timeout=30)
        assert not done["is_error"] and "completed" in str(done["result"]).lower(), done
        # ... or is cancelled at its timeout, and the session goes on; calls in parallel
        # are not held up by it.
        slow: dict = {}

        async def long_call() -> None:
            slow.update(await mcp.execute_tool("everything", "trigger-long-running-operation",
                                               {"duration": 20, "steps": 4}, timeout=1.0))

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            quick = await mcp.execute_tool("everything", "get-sum", {"a": 2, "b": 3})
        assert "5" in str(quick["result"]) and not quick["is_error"]
        assert slow["is_error"] and slow["timed_out"]
        assert mcp.get_all_statuses()["everything"].connected

        # Its draft-07 schemas drive the agent's argument checks.
        agent = AINativeAgent(name="a", llm_config=LLMConfig(
            provider="scripted", model="script", extra={"script": [
                {"tool": "get-sum", "arguments": {"a": 20, "b": 22}},
                {"tool": "get-sum", "arguments": {"a": "twenty", "b": 22}},
                "{tool_results}"]}))
        await use_mcp(agent, mcp)
        good, bad = (await agent.handle("add"))["tool_calls"]
        assert good["status"] == "ok" and "42" in str(good["result"]), good
        assert bad["status"] == "error" and "a: expected number, got 'twenty'" in bad["error"]
        pid = status.pid
    assert not group_members(pid), "npx or its node child outlived the client"


async def test_a_hung_server_times_out_is_reconnected_and_the_others_keep_serving() -> None:
    manager = create_backend("mcp", gate=False)
    monitor = MCPHealthMonitor(interval=0.2, failure_threshold=2, ping_timeout=0.5,
                               backoff_seconds=0.2)
    try:
        statuses = await manager.start_from_config(
            {"servers": {"hung": tiny("hung", timeout_seconds=0.5), "fine": tiny("fine")}})
        hung = statuses["hung"].pid
        await monitor.start_monitoring(manager)
        os.killpg(hung, signal.SIGSTOP)  # alive, holding its pipes, answering nothing
        stuck = await manager.execute_tool("hung", "echo", {"text": "x"})
        assert stuck["is_error"] and stuck["timed_out"]
        assert (await manager.execute_tool("fine", "echo", {"text": "y"}))["result"] == "y"

        def replaced() -> bool:
            status = manager.get_all_statuses()["hung"]
            return status.connected and status.pid != hung and status.restarts >= 1

        await eventually(replaced, timeout=30, what="the monitor to replace the hung server")
        assert not alive(hung), "the hung server was left behind"
        back = await manager.execute_tool("hung", "echo", {"text": "back"})
        assert back["result"] == "back"
        assert monitor.get_statistics()["restarts"] >= 1
    finally:
        await monitor.stop_monitoring()
        await manager.aclose()
