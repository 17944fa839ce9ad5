"""The core's MCP capability without the plugin: configuration in every form and its
one-line errors, the facades' install hint, and the gate wrapper every MCP backend gets."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from neuroflow import BackendSpec, create_backend, hookimpl
from neuroflow.config import load_config
from neuroflow.errors import ConfigError, MissingPluginError, SecurityError
from neuroflow.mcp import (
    GuardedMCPClient,
    MCPClient,
    MCPConfigParser,
    MCPServerManager,
    RealMCPExecutor,
    Transport,
)
from neuroflow.plugins import PluginManager, set_plugin_manager

YAML = """\
servers:
  filesystem:
    command: npx
    args: ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
    timeout_seconds: 10
    cwd: work
  search:
    transport: http
    url: https://search.example/mcp
    auth_token_env: SEARCH_TOKEN
"""

MCP_SERVERS_JSON = {"mcpServers": {
    "filesystem": {"command": "npx", "args": ["-y", "server-filesystem", "/tmp"],
                   "env": {"DEBUG": "1"}},
    "remote": {"type": "streamable-http", "url": "https://remote.example/mcp",
               "headers": {"X-Team": "a"}},
    "old": {"url": "https://old.example/sse", "type": "sse", "disabled": True},
}}


def test_yaml_json_and_toml_give_the_same_server_configs(tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="PyYAML is not installed (it comes with neuroflow[mcp])")
    parser = MCPConfigParser()
    (tmp_path / "config.yaml").write_text(YAML)
    settings = parser.parse_from_file(tmp_path / "config.yaml")
    fs = settings.servers["filesystem"]
    assert fs.name == "filesystem" and fs.command == "npx" and fs.timeout_seconds == 10
    assert fs.args == ("-y", "@modelcontextprotocol/server-filesystem", "/tmp")
    assert fs.cwd == str(tmp_path.resolve() / "work")  # from the file's folder
    search = settings.servers["search"]
    assert search.transport is Transport.HTTP
    assert search.http_headers({"SEARCH_TOKEN": "t0k"}) == {"Authorization": "Bearer t0k"}

    (tmp_path / "claude.json").write_text(json.dumps(MCP_SERVERS_JSON))
    servers = parser.parse_from_file(tmp_path / "claude.json").servers
    assert servers["filesystem"].environment({"PATH": "/bin", "AWS_SECRET": "x"}) == {
        "PATH": "/bin", "DEBUG": "1"}
    assert servers["remote"].transport is Transport.HTTP
    assert servers["remote"].http_headers() == {"X-Team": "a"}
    assert servers["old"].transport is Transport.SSE and not servers["old"].enabled

    (tmp_path / "neuroflow.toml").write_text(textwrap.dedent("""\
        [mcp.servers.filesystem]
        command = "npx"
        args = ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
        timeout_seconds = 10
        """))
    config = load_config(files=[tmp_path / "neuroflow.toml"], environ={})
    from_toml = config.section("mcp").settings.servers["filesystem"]
    assert from_toml.args == fs.args and from_toml.timeout_seconds == 10
    assert parser.parse_from_file(tmp_path / "neuroflow.toml").servers["filesystem"].command \
        == "npx"


@pytest.mark.parametrize(("entry", "line"), [
    ({"command": "npx", "timeout_seconds": "soon"},
     "mcp.servers.fs.timeout_seconds: expected a number, got 'soon' (in config.yaml)"),
    ({"args": ["x"]}, "mcp.servers.fs.command: a stdio server needs a command to run "
                      "(in config.yaml)"),
    ({"command": "npx", "comand": "x"},
     "mcp.servers.fs.comand: unknown key; did you mean 'command'?"),
    ({"transport": "http"}, "mcp.servers.fs.url: an http server needs an http(s) URL, got None"),
    ({"transport": "pigeon", "command": "x"},
     "mcp.servers.fs.transport: expected one of stdio, http, sse, got 'pigeon'"),
    ({"command": "x", "timeout_seconds": 0},
     "mcp.servers.fs.timeout_seconds: expected a positive number of seconds, got 0"),
])
def test_a_malformed_entry_is_one_line_naming_the_server_and_the_field(
        entry: dict[str, Any], line: str) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (neuroflow[mcp])")
    Path("config.yaml").write_text(yaml.safe_dump({"servers": {"fs": entry}}))
    with pytest.raises(ConfigError) as err:
        MCPConfigParser().parse_from_file("config.yaml")
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(line)


def test_a_malformed_toml_entry_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "neuroflow.toml").write_text('[mcp.servers.fs]\ncommand = 3\n')
    with pytest.raises(ConfigError) as err:
        load_config(files=[tmp_path / "neuroflow.toml"], environ={})
    assert str(err.value).startswith("mcp.servers.fs.command: expected a string, got 3 (in ")


def test_the_facades_name_the_plugin_to_install() -> None:
    set_plugin_manager(PluginManager(entry_points=False))
    for facade in (MCPServerManager, RealMCPExecutor):
        with pytest.raises(MissingPluginError) as err:
            facade()
        assert "pip install 'neuroflow[mcp]'" in str(err.value)
        assert facade.__name__ in str(err.value)


def test_importing_neuroflow_mcp_imports_neither_the_plugin_nor_the_sdk() -> None:
    code = ("import sys, neuroflow.mcp as m; m.MCPConfigParser; m.MCPHealthMonitor; "
            "print(sorted({'mcp', 'neuroflow_mcp', 'yaml'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


class _Recorder:
    """A minimal third-party MCP backend: answers every call, records what reached it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def start_from_config(self, config: Any = None) -> dict[str, Any]:
        return {}

    async def start_server(self, config: Any = None, /, **fields: Any) -> Any:
        return None

    async def stop_server(self, name: str) -> None: ...
    async def stop_all(self) -> None: ...

    async def list_tools(self, server_name: str | None = None) -> list[dict[str, Any]]:
        return []

    async def execute_tool(self, server_name: str, tool_name: str, arguments: Any = None, *,
                           timeout: float | None = None) -> dict[str, Any]:
        self.calls.append((server_name, tool_name))
        return {"result": "ok", "is_error": False, "content": [], "server": server_name,
                "tool": tool_name}

    async def ping(self, server_name: str) -> float:
        return 0.0

    async def reconnect(self, server_name: str) -> Any:
        return None

    def get_all_statuses(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None: ...
    async def __aenter__(self) -> _Recorder:
        return self

    async def __aexit__(self, *exc: Any) -> None: ...


class _Gate:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def authorize(self, action: Any, context: Any) -> Any:
        self.seen.append(("authorize", action))
        if action.target.endswith("/forbidden"):
            raise SecurityError(f"denied {action.target}")
        return None

    async def record_outcome(self, action: Any, context: Any, outcome: str,
                             details: Any) -> None:
        self.seen.append(("outcome", outcome))


@pytest.mark.anyio
async def test_a_third_party_mcp_backend_is_put_behind_the_gate() -> None:
    manager = PluginManager(entry_points=False)
    manager.register(SimpleNamespace(neuroflow_backends=hookimpl(lambda: [BackendSpec(
        name="recorder", kind="mcp", factory=_Recorder)])), name="recorder")
    set_plugin_manager(manager)
    gate = _Gate()
    client = create_backend("mcp", "recorder", gate=gate, actor="agent-1")
    assert isinstance(client, GuardedMCPClient) and isinstance(client, MCPClient)
    assert (await client.execute_tool("fs", "read", {"path": "/x"}))["result"] == "ok"
    with pytest.raises(SecurityError):
        await client.execute_tool("fs", "forbidden", {})
    assert client.client.calls == [("fs", "read")]
    action = gate.seen[0][1]
    assert (action.kind.value, action.target, action.actor, action.arguments) == (
        "mcp_tool", "fs/read", "agent-1", {"path": "/x"})
    assert gate.seen[1] == ("outcome", "success")


def test_a_relative_cwd_in_neuroflow_toml_is_taken_from_the_file_s_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "neuroflow.toml").write_text(textwrap.dedent("""\
        [mcp.servers.fs]
        command = "npx"
        cwd = "servers/fs"

        [mcp.servers.home]
        command = "npx"
        cwd = "~/fs"

        [mcp.servers.absolute]
        command = "npx"
        cwd = "/srv/fs"
        """))
    monkeypatch.chdir(tmp_path)  # elsewhere: the working directory must not matter
    servers = load_config(files=[project / "neuroflow.toml"],
                          environ={}).section("mcp").settings.servers
    assert servers["fs"].cwd == str(project / "servers" / "fs")
    assert servers["home"].cwd == "~/fs"
    assert servers["absolute"].cwd == "/srv/fs"
    assert servers["fs"].name == "fs"
    # A cwd given by an environment variable is taken from the working directory, as
    # every other path is.
    from_env = load_config(files=[project / "neuroflow.toml"],
                           environ={"NEUROFLOW_MCP__SERVERS__FS__CWD": '"here"'})
    assert from_env.section("mcp").settings.servers["fs"].cwd == "here"
