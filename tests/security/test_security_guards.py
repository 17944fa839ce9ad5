"""The built-in guards: each allows and denies with the rule named; rule examples are checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from neuroflow.config import structure
from neuroflow.errors import ConfigError
from neuroflow.security.guards.allowlist import AllowlistConfig, AllowlistGuard
from neuroflow.security.guards.network import NetworkConfig, NetworkGuard, parse_target
from neuroflow.security.guards.paths import PathsConfig, PathsGuard
from neuroflow.security.guards.tools import ToolsConfig, ToolsGuard
from neuroflow.security.model import Action, ActionContext, Decision

CTX = ActionContext()


def verdict_of(guard: object, *args: object, **kwargs: object) -> tuple[str, str] | None:
    """(decision, rule) of ``guard`` for ``Action(*args)``, or ``None`` if it abstains."""
    verdict = guard.check(Action(*args, **kwargs), CTX)  # type: ignore[attr-defined]
    return None if verdict is None else (verdict.decision.value, verdict.rule)


# --- allowlist -------------------------------------------------------------------------


def test_allowlist_allows_listed_and_denies_unlisted_and_denied_commands() -> None:
    guard = AllowlistGuard(structure({"allow": ["python3", "ls", "git status"],
                                      "deny": ["rm", "sudo"]}, AllowlistConfig))
    assert verdict_of(guard, "command", "python3", "a", ["x.py"]) == ("allow", "allowlist.allow")
    assert verdict_of(guard, "command", "/usr/bin/ls") == ("allow", "allowlist.allow")
    assert verdict_of(guard, "command", "git", "a", ["status", "-s"]) == (
        "allow", "allowlist.allow")
    assert verdict_of(guard, "command", "git", "a", ["push"]) == ("deny", "allowlist.unlisted")
    assert verdict_of(guard, "command", "rm", "a", ["-rf", "/"]) == ("deny", "allowlist.deny")
    assert verdict_of(guard, "command", "/bin/rm") == ("deny", "allowlist.deny")
    assert verdict_of(guard, "tool", "rm") is None  # not a command: no opinion


def test_allowlist_deny_overrides_allow_and_open_list_abstains() -> None:
    guard = AllowlistGuard(structure({"allow": ["*"], "deny": ["curl"], "closed": False},
                                     AllowlistConfig))
    assert verdict_of(guard, "command", "curl") == ("deny", "allowlist.deny")
    assert verdict_of(guard, "command", "wget") == ("allow", "allowlist.allow")
    empty = AllowlistGuard(AllowlistConfig())
    assert verdict_of(empty, "command", "anything") is None


def test_allowlist_named_rules_with_actors_and_argument_patterns() -> None:
    cfg = structure({"rules": [
        {"name": "no-pip-install", "effect": "deny", "commands": ["pip install"]},
        {"name": "builders-make", "effect": "allow", "commands": ["make"],
         "actors": ["builder-*"]},
    ]}, AllowlistConfig)
    guard = AllowlistGuard(cfg)
    assert verdict_of(guard, "command", "pip", "a", ["install", "x"]) == (
        "deny", "allowlist.no-pip-install")
    assert verdict_of(guard, "command", "pip", "a", ["list"]) is None
    assert verdict_of(guard, "command", "make", "builder-1") == (
        "allow", "allowlist.builders-make")
    assert verdict_of(guard, "command", "make", "reader") is None


# --- paths -----------------------------------------------------------------------------


def test_paths_roots_and_deny_patterns(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    guard = PathsGuard(PathsConfig(read_roots=(str(data),), write_roots=(str(out),),
                                   deny=("*.pem", "**/.ssh/**")))
    assert verdict_of(guard, "file_read", str(data / "a.txt")) == ("allow", "paths.roots")
    assert verdict_of(guard, "file_read", str(out / "b")) == ("allow", "paths.roots")
    assert verdict_of(guard, "file_write", str(out / "b")) == ("allow", "paths.roots")
    assert verdict_of(guard, "file_write", str(data / "a.txt")) == (
        "deny", "paths.outside-write-roots")
    assert verdict_of(guard, "file_read", "/etc/passwd") == ("deny", "paths.outside-read-roots")
    assert verdict_of(guard, "file_read", str(data / "key.pem")) == ("deny", "paths.deny")
    assert verdict_of(guard, "file_read", str(data / ".ssh" / "id_rsa")) == ("deny", "paths.deny")


def test_paths_dotdot_and_symlink_escapes_are_resolved(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to("/etc")
    guard = PathsGuard(PathsConfig(read_roots=(str(root),)))
    escape = verdict_of(guard, "file_read", f"{root}/sub/../../outside.txt")
    assert escape == ("deny", "paths.outside-read-roots")
    assert verdict_of(guard, "file_read", str(root / "link" / "passwd")) == (
        "deny", "paths.outside-read-roots")
    assert verdict_of(guard, "file_read", "a\x00b") == ("deny", "paths.invalid")
    # a relative path is taken from the action's working directory
    ctx = ActionContext(extra={"cwd": str(root)})
    verdict = guard.check(Action("file_read", "notes.txt"), ctx)
    assert verdict is not None and verdict.decision is Decision.ALLOW


def test_paths_checks_resources_of_any_action(tmp_path: Path) -> None:
    guard = PathsGuard(PathsConfig(write_roots=(str(tmp_path),)))
    ok = Action("command", "cp", resources={"write_paths": (str(tmp_path / "x"),)})
    bad = Action("command", "cp", resources={"read_paths": (str(tmp_path / "x"),),
                                             "write_paths": ("/etc/x",)})
    assert guard.check(ok, CTX).decision is Decision.ALLOW  # type: ignore[union-attr]
    verdict = guard.check(bad, CTX)
    assert verdict is not None and verdict.rule == "paths.outside-write-roots"
    assert guard.check(Action("command", "ls"), CTX) is None


def test_paths_named_rule_by_access(tmp_path: Path) -> None:
    cfg = structure({"rules": [{"name": "no-git-writes", "effect": "deny", "access": "write",
                                "paths": [".git/**"]}]}, PathsConfig)
    guard = PathsGuard(cfg)
    target = str(tmp_path / "repo" / ".git" / "config")
    assert verdict_of(guard, "file_write", target) == ("deny", "paths.no-git-writes")
    assert verdict_of(guard, "file_read", target) is None


# --- network ---------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "expected"), [
    ("example.com", ("example.com", None)),
    ("Example.COM.:8080", ("example.com", 8080)),
    ("https://api.example.com/v1", ("api.example.com", 443)),
    ("http://[::1]:9000/x", ("::1", 9000)),
    ("[::1]:22", ("::1", 22)),
])
def test_network_target_parsing(target: str, expected: tuple[str, int | None]) -> None:
    assert parse_target(target) == expected


def test_network_hosts_wildcards_cidr_ports_and_off_switch() -> None:
    guard = NetworkGuard(NetworkConfig(allow_hosts=("*.example.com", "10.0.0.0/8"),
                                       deny_hosts=("bad.example.com",), ports=(443, 80)))
    assert verdict_of(guard, "network", "https://api.example.com") == ("allow", "network.allow")
    assert verdict_of(guard, "network", "a.b.example.com:80") == ("allow", "network.allow")
    assert verdict_of(guard, "network", "example.com:443") == ("deny", "network.unlisted-host")
    assert verdict_of(guard, "network", "bad.example.com:443") == ("deny", "network.deny")
    assert verdict_of(guard, "network", "10.1.2.3:443") == ("allow", "network.allow")
    assert verdict_of(guard, "network", "api.example.com:22") == ("deny", "network.port")
    assert verdict_of(guard, "command", "curl") is None
    hosts = Action("command", "curl", resources={"hosts": ("evil.org:443",)})
    assert guard.check(hosts, CTX).rule == "network.unlisted-host"  # type: ignore[union-attr]
    off = NetworkGuard(NetworkConfig(enabled=False))
    assert verdict_of(off, "network", "localhost") == ("deny", "network.disabled")


# --- tools -----------------------------------------------------------------------------


def test_tools_rules_by_agent_and_tool_glob() -> None:
    cfg = structure({"rules": [
        {"name": "no-shell-for-readers", "effect": "deny", "agent": "reader-*",
         "tool": "shell"},
        {"name": "everyone-search", "effect": "allow", "tool": "search*"},
        {"name": "fs-read", "effect": "allow", "tool": "filesystem/read_*"},
    ]}, ToolsConfig)
    guard = ToolsGuard(cfg)
    assert verdict_of(guard, "tool", "shell", "reader-1") == ("deny", "tools.no-shell-for-readers")
    assert verdict_of(guard, "tool", "shell", "writer") is None
    assert verdict_of(guard, "tool", "search_web", "reader-1") == ("allow", "tools.everyone-search")
    assert verdict_of(guard, "mcp_tool", "filesystem/read_file") == ("allow", "tools.fs-read")
    assert verdict_of(guard, "command", "shell", "reader-1") is None


def test_tools_deny_overrides_allow() -> None:
    guard = ToolsGuard(structure({"rules": [
        {"name": "all", "effect": "allow"},
        {"name": "no-delete", "effect": "deny", "tool": "delete_*"},
    ]}, ToolsConfig))
    assert verdict_of(guard, "tool", "delete_all") == ("deny", "tools.no-delete")
    assert verdict_of(guard, "tool", "read") == ("allow", "tools.all")


# --- rule examples ---------------------------------------------------------------------


def test_examples_that_hold_load_fine() -> None:
    cfg = structure({"deny": ["rm"], "examples": [
        {"action": "command", "target": "rm", "expect": "deny"},
        {"target": "ls", "expect": "abstain"},
    ]}, AllowlistConfig, path="security.allowlist")
    assert cfg.deny == ("rm",)


@pytest.mark.parametrize(("cls", "data", "rule"), [
    (AllowlistConfig, {"rules": [{"name": "oops", "effect": "allow", "commands": ["rm"],
                                  "examples": [{"target": "rm", "expect": "deny"}]}]},
     "allowlist.oops"),
    (PathsConfig, {"deny": ["*.key"], "examples": [{"target": "/x/a.pem", "expect": "deny"}]},
     "paths.roots/deny"),
    (NetworkConfig, {"rules": [{"name": "web", "effect": "allow", "hosts": ["*.example.com"],
                                "examples": [{"target": "example.com", "expect": "allow"}]}]},
     "network.web"),
    (ToolsConfig, {"rules": [{"name": "readers", "effect": "deny", "agent": "reader",
                              "tool": "shell",
                              "examples": [{"actor": "reader-2", "target": "shell",
                                            "expect": "deny"}]}]},
     "tools.readers"),
])
def test_a_failing_example_is_a_config_error_naming_the_rule(
    cls: type, data: dict, rule: str
) -> None:
    with pytest.raises(ConfigError) as info:
        structure(data, cls, path="security.x")
    message = str(info.value)
    assert f"rule {rule!r}" in message
    assert message.startswith("security.x")


def test_bad_effect_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"effect: expected one of allow, deny, got 'maybe'"):
        structure({"rules": [{"name": "x", "effect": "maybe"}]}, ToolsConfig, path="security.tools")


def test_guard_objects_satisfy_the_guard_protocol() -> None:
    from neuroflow.security.protocol import Guard

    for guard in (AllowlistGuard(), PathsGuard(), NetworkGuard(), ToolsGuard()):
        assert isinstance(guard, Guard)


def test_a_single_string_resource_is_one_name_not_its_characters(tmp_path: Path) -> None:
    paths = PathsGuard(PathsConfig(write_roots=(str(tmp_path),)))
    verdict = paths.check(Action("command", "cp", resources={"write_paths": "/etc/x"}), CTX)
    assert verdict is not None and verdict.rule == "paths.outside-write-roots"
    verdict = paths.check(Action("command", "cp", resources={"paths": tmp_path / "a"}), CTX)
    assert verdict is not None and verdict.allowed
    network = NetworkGuard(NetworkConfig(allow_hosts=("ok.example",)))
    verdict = network.check(Action("command", "curl", resources={"hosts": "ok.example"}), CTX)
    assert verdict is not None and verdict.rule == "network.allow"


def test_an_allowed_bare_name_does_not_allow_another_file_of_that_name(tmp_path: Path) -> None:
    planted = tmp_path / "usr" / "bin" / "ls"
    planted.parent.mkdir(parents=True)
    planted.write_text("#!/bin/sh\necho planted\n")
    planted.chmod(0o755)
    guard = AllowlistGuard(AllowlistConfig(allow=("ls",), deny=("rm",)))
    real_ls = shutil.which("ls")
    assert real_ls is not None
    assert guard.check(Action("command", "ls"), ActionContext()).allowed
    assert guard.check(Action("command", real_ls), ActionContext()).allowed
    verdict = guard.check(Action("command", str(planted)), ActionContext())
    assert (verdict.allowed, verdict.rule) == (False, "allowlist.unlisted")
    verdict = guard.check(Action("command", "usr/bin/ls"), ActionContext())
    assert not verdict.allowed
    # deny stays broad: any file called rm is refused, wherever it lives
    assert guard.check(Action("command", str(tmp_path / "rm")), ActionContext()).rule == (
        "allowlist.deny")
    # a path pattern allows paths explicitly
    by_path = AllowlistGuard(AllowlistConfig(allow=(f"{planted.parent}/*",)))
    assert by_path.check(Action("command", str(planted)), ActionContext()).allowed
