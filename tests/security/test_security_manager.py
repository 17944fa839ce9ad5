"""SecurityManager: guards from config, level defaults, hooks, one audit record per decision."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import anyio
import pytest
from security_helpers import KEY

from neuroflow.config import load_config
from neuroflow.errors import ConfigError, SecurityError
from neuroflow.hookspecs import hookimpl
from neuroflow.plugins import get_plugin_manager
from neuroflow.security import (
    SandboxSecurityLevel,
    SecurityManager,
    get_default_gate,
    verify_audit_log,
)
from neuroflow.security.guards.allowlist import AllowlistConfig, AllowlistGuard
from neuroflow.security.manager import guarded
from neuroflow.security.model import Action, ActionContext, Verdict
from neuroflow.security.protocol import ActionGate

CONFIG = """
[security]
level = "{level}"

[security.audit]
file = "audit/audit.log"
key = "{key}"

[security.allowlist]
deny = ["touch", "rm"]
examples = [{{action = "command", target = "rm", expect = "deny"}}]

[security.paths]
write_roots = ["{root}/out"]

[security.network]
deny_hosts = ["127.0.0.1"]

[[security.tools.rules]]
name = "no-delete"
effect = "deny"
agent = "*"
tool = "delete_*"

[[security.tools.rules]]
name = "search"
effect = "allow"
tool = "search"
"""


def write_config(root: Path, level: str = "standard", extra: str = "") -> Path:
    (root / "out").mkdir(exist_ok=True)
    path = root / "neuroflow.toml"
    path.write_text(CONFIG.format(level=level, key=KEY.decode(), root=root) + extra)
    return path


def audit_rows(root: Path) -> list[dict]:
    log = root / "audit" / "audit.log"
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def root() -> Path:
    """The test's working directory (the root conftest chdirs into a fresh one)."""
    return Path.cwd()


def test_from_config_builds_the_selected_guards_and_level(root: Path) -> None:
    write_config(root, "strict")
    gate = SecurityManager.from_config()
    assert [name for name, _ in gate.guards] == ["allowlist", "paths", "network", "tools"]
    assert gate.level is SandboxSecurityLevel.STRICT
    assert isinstance(gate, ActionGate)
    assert gate.audit is not None and gate.audit.path == root / "audit" / "audit.log"


def test_a_failing_rule_example_in_the_config_file_is_a_config_error(root: Path) -> None:
    write_config(root, extra='\n[[security.tools.rules]]\nname = "typo"\neffect = "deny"\n'
                              'tool = "shel"\n'
                              'examples = [{target = "shell", expect = "deny"}]\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "security.tools" in str(info.value) and "rule 'tools.typo'" in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize(("level", "decision", "rule"), [
    ("strict", "deny", "level.strict"),
    ("standard", "allow", "level.standard"),
    ("permissive", "allow", "level.permissive"),
])
async def test_the_level_decides_what_no_rule_covers(root: Path, level: str, decision: str,
                                                     rule: str) -> None:
    write_config(root, level)
    gate = SecurityManager.from_config()
    action = Action("tool", "summarize", actor="agent-1")
    if decision == "deny":
        with pytest.raises(SecurityError, match=r"level\.strict"):
            await gate.authorize(action, ActionContext(trace_id="t-1"))
    else:
        verdict = await gate.authorize(action, ActionContext(trace_id="t-1"))
        assert verdict.rule == rule
    (row,) = audit_rows(root)
    assert (row["decision"], row["rule"], row["trace_id"]) == (decision, rule, "t-1")
    # a rule that covers the action wins over the level
    assert (await gate.authorize(Action("tool", "search"))).rule == "tools.search"


@pytest.mark.anyio
async def test_denied_command_never_runs_and_is_audited(root: Path) -> None:
    write_config(root)
    gate = SecurityManager.from_config()
    marker = root / "marker"
    action = Action("command", "touch", actor="agent-1", arguments=[str(marker)])
    with pytest.raises(SecurityError, match=r"denied by rule 'allowlist.deny'") as info:
        async with guarded(action, ActionContext(trace_id="t-9"), gate):
            await anyio.run_process(["touch", str(marker)])
    assert not marker.exists()
    assert info.value.verdict.rule == "allowlist.deny"  # type: ignore[attr-defined]
    (row,) = audit_rows(root)
    assert row["action"] == "command" and row["resource"] == "touch"
    assert row["decision"] == "deny" and row["actor"] == "agent-1"
    assert row["details"]["arguments"] == [str(marker)]
    # an allowed command runs and both its decision and its outcome are recorded once
    async with guarded(Action("command", sys.executable, "agent-1", ["-c", "pass"]),
                       ActionContext(trace_id="t-10"), gate):
        await anyio.run_process([sys.executable, "-c", "pass"])
    rows = audit_rows(root)
    assert [(r["event"], r["decision"], r["outcome"]) for r in rows[1:]] == [
        ("guard_decision", "allow", None), ("action_outcome", None, "success")]


@pytest.mark.anyio
async def test_denied_path_write_never_happens(root: Path) -> None:
    write_config(root)
    gate = SecurityManager.from_config()
    outside = root / "elsewhere.txt"
    with pytest.raises(SecurityError, match=r"paths\.outside-write-roots"):
        async with guarded(Action("file_write", str(root / "out" / ".." / "elsewhere.txt")),
                           gate=gate):
            outside.write_text("x")
    assert not outside.exists()
    inside = root / "out" / "ok.txt"
    async with guarded(Action("file_write", str(inside)), gate=gate):
        inside.write_text("x")
    assert [r["rule"] for r in audit_rows(root) if r["decision"]] == [
        "paths.outside-write-roots", "paths.roots"]


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/data", hits
    server.shutdown()
    thread.join()


@pytest.mark.anyio
async def test_denied_host_is_never_contacted(root: Path, http_server) -> None:
    url, hits = http_server
    write_config(root)
    gate = SecurityManager.from_config()

    async def fetch() -> None:
        import urllib.request

        await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(url, timeout=5).read())

    with pytest.raises(SecurityError, match=r"network\.deny"):
        async with guarded(Action("network", url, actor="agent-1"), gate=gate):
            await fetch()
    assert hits == []
    await fetch()  # the server is there: only the guard stopped the request
    assert hits == ["/data"]
    assert audit_rows(root)[0]["rule"] == "network.deny"


@pytest.mark.anyio
async def test_denied_tool_is_never_called(root: Path) -> None:
    write_config(root)
    gate = SecurityManager.from_config()
    called: list[str] = []
    with pytest.raises(SecurityError, match=r"tools\.no-delete"):
        async with guarded(Action("tool", "delete_everything", actor="agent-7"), gate=gate):
            called.append("delete_everything")
    assert called == []
    assert audit_rows(root)[0]["actor"] == "agent-7"


@pytest.mark.anyio
async def test_fail_closed_when_the_audit_log_cannot_be_written(root: Path) -> None:
    write_config(root)
    (root / "audit").write_text("a file where the log directory should be")
    gate = SecurityManager.from_config()
    ran: list[bool] = []
    with pytest.raises(SecurityError, match="audit log"):
        async with guarded(Action("tool", "search"), gate=gate):
            ran.append(True)
    assert ran == []
    with pytest.raises(SecurityError, match="audit log"):
        gate.authorize_sync(Action("tool", "search"))


@pytest.mark.anyio
async def test_an_error_in_the_guarded_block_is_recorded_as_outcome(root: Path) -> None:
    write_config(root)
    gate = SecurityManager.from_config()
    with pytest.raises(ValueError, match="boom"):
        async with guarded(Action("tool", "search"), gate=gate):
            raise ValueError("boom")
    outcome = audit_rows(root)[-1]
    assert outcome["outcome"] == "error" and "ValueError: boom" in outcome["details"]["error"]
    assert verify_audit_log(root / "audit" / "audit.log", KEY).ok


class _HookPlugin:
    """A third-party plugin: denies tools named 'forbidden', watches audit events."""

    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def neuroflow_guard_check(self, action: Action, context: ActionContext) -> Verdict | None:
        if action.target == "forbidden":
            return Verdict.deny("plugin.forbidden", "a plugin said no")
        if action.target == "explode":
            raise RuntimeError("plugin bug")
        return None

    @hookimpl
    def neuroflow_audit_event(self, event: object) -> None:
        self.events.append(getattr(event, "resource", ""))
        if getattr(event, "resource", "") == "search":
            raise RuntimeError("listener bug")


@pytest.mark.anyio
async def test_plugin_guard_checks_and_audit_listeners(root: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    write_config(root, extra='\n[[security.tools.rules]]\nname = "all"\neffect = "allow"\n')
    plugin = _HookPlugin()
    get_plugin_manager().register(plugin, "test-hooks")
    gate = SecurityManager.from_config()
    with pytest.raises(SecurityError, match=r"plugin\.forbidden"):  # deny overrides tools.all
        await gate.authorize(Action("tool", "forbidden"))
    with pytest.raises(SecurityError, match="error"):  # a failing check fails closed
        await gate.authorize(Action("tool", "explode"))
    with caplog.at_level(logging.ERROR, logger="neuroflow.security.audit"):
        await gate.authorize(Action("tool", "search"))  # the listener's error is only logged
    assert "listener" in caplog.text
    assert plugin.events == ["forbidden", "explode", "search"]
    assert [r["decision"] for r in audit_rows(root)] == ["deny", "deny", "allow"]


def test_a_guard_that_raises_denies() -> None:
    class Broken:
        def check(self, action: Action, context: ActionContext) -> Verdict | None:
            raise KeyError("oops")

    gate = SecurityManager([("broken", Broken()), ("allowlist", AllowlistGuard(
        AllowlistConfig(allow=("ls",))))])
    verdict = gate.check(Action("command", "ls"))
    assert not verdict.allowed and verdict.rule == "broken.error"


def test_a_guard_that_returns_junk_denies_and_is_recorded(root: Path) -> None:
    class Sloppy:
        def check(self, action: Action, context: ActionContext) -> Verdict | None:
            return True  # type: ignore[return-value]

    write_config(root)
    settings = SecurityManager.from_config()
    gate = SecurityManager([("sloppy", Sloppy())], audit=settings.audit)
    with pytest.raises(SecurityError, match=r"sloppy\.error"):
        gate.authorize_sync(Action("command", "ls"))
    [row] = audit_rows(root)
    assert (row["decision"], row["rule"]) == ("deny", "sloppy.error")
    assert "returned bool, expected a Verdict" in row["details"]["reason"]


def test_every_decision_is_recorded_exactly_once(root: Path) -> None:
    write_config(root)
    gate = SecurityManager.from_config()
    for i in range(50):
        try:
            gate.authorize_sync(Action("command", "rm" if i % 5 == 0 else "ls", f"a{i}"))
        except SecurityError:
            pass
    rows = audit_rows(root)
    assert [r["actor"] for r in rows] == [f"a{i}" for i in range(50)]
    assert sum(r["decision"] == "deny" for r in rows) == 10


def test_default_gate_is_built_once_from_the_active_configuration(root: Path) -> None:
    write_config(root, "strict")
    gate = get_default_gate()
    assert gate is get_default_gate()
    assert gate.level is SandboxSecurityLevel.STRICT


def test_no_audit_means_nothing_written(tmp_path: Path) -> None:
    gate = SecurityManager([], level="strict")
    with pytest.raises(SecurityError, match=r"level\.strict"):
        gate.authorize_sync(Action("tool", "x"))
    assert list(tmp_path.iterdir()) == []
