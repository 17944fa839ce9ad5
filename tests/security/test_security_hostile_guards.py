"""Hostile inputs against the guards: each spelling an attacker tried must be judged right."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from neuroflow.config import structure
from neuroflow.security.guards.allowlist import AllowlistConfig, AllowlistGuard
from neuroflow.security.guards.network import NetworkConfig, NetworkGuard
from neuroflow.security.guards.paths import PathsConfig, PathsGuard
from neuroflow.security.model import Action, ActionContext, Decision

CTX = ActionContext()


def _net(target: str, guard: NetworkGuard, actor: str = "user") -> Decision | None:
    verdict = guard.check(Action("network", target, actor), CTX)
    return None if verdict is None else verdict.decision


# --- network -----------------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1", "2130706433", "0x7f000001", "0x7F000001", "127.1", "127.0.1",
    "0177.0.0.1", "0177.1", "0.0.0.0", "[::ffff:127.0.0.1]", "::ffff:127.0.0.1",
    "[::ffff:7f00:1]", "http://2130706433/", "http://0x7f000001:8080/x",
    "http://[::ffff:127.0.0.1]/", "http://127.1/", "https://0.0.0.0/", "127.0.0.1:80",
    "[::1]:80", "http://[::]/", "http://user@127.0.0.1/",
]


@pytest.mark.parametrize("target", LOOPBACK_SPELLINGS)
def test_every_spelling_of_a_denied_address_is_denied(target: str) -> None:
    guard = NetworkGuard(structure({"deny_hosts": ["127.0.0.0/8", "::1"]}, NetworkConfig))
    assert _net(target, guard) is Decision.DENY


@pytest.mark.parametrize("target", ["169.254.169.254", "2852039166", "0xa9fea9fe",
                                    "http://[::ffff:a9fe:a9fe]/latest/meta-data"])
def test_a_denied_single_address_in_other_spellings(target: str) -> None:
    guard = NetworkGuard(structure({"deny_hosts": ["169.254.169.254"]}, NetworkConfig))
    assert _net(target, guard) is Decision.DENY


@pytest.mark.parametrize("target", [
    "127.0.0.1/.example.org", "127.0.0.1?.example.org", "127.0.0.1#.example.org",
    "http://127.0.0.1\\@a.example.org/", "a.example.org\x00.evil",
    "evil.com/.example.org", "http://evil.com#@a.example.org/",
])
def test_a_host_glob_does_not_match_across_url_delimiters(target: str) -> None:
    guard = NetworkGuard(structure({"allow_hosts": ["*.example.org"]}, NetworkConfig))
    assert _net(target, guard) is Decision.DENY


@pytest.mark.parametrize("target", ["EVIL.COM", "evil.com.", "Evil.Com.:443",
                                    "https://EVIL.com./x"])
def test_host_names_are_compared_case_and_dot_insensitively(target: str) -> None:
    guard = NetworkGuard(structure({"deny_hosts": ["evil.com"]}, NetworkConfig))
    assert _net(target, guard) is Decision.DENY


def test_allowed_hosts_still_pass() -> None:
    guard = NetworkGuard(structure({"allow_hosts": ["*.example.org", "10.0.0.0/8"]},
                                   NetworkConfig))
    assert _net("https://a.example.org/x?y#z", guard) is Decision.ALLOW
    assert _net("a.example.org:443", guard) is Decision.ALLOW
    assert _net("167772161", guard) is Decision.ALLOW  # 10.0.0.1
    assert _net("example.org", guard) is Decision.DENY


def test_resolving_names_judges_and_returns_the_addresses() -> None:
    guard = NetworkGuard(structure({"deny_hosts": ["127.0.0.0/8", "::1"], "resolve": True},
                                   NetworkConfig))
    assert _net("localhost", guard) is Decision.DENY
    assert _net("http://localhost:8080/", guard) is Decision.DENY
    judged = guard.judge("localhost")
    assert judged.verdict is not None and "127.0.0.1" in judged.addresses
    plain = NetworkGuard(structure({"deny_hosts": ["127.0.0.0/8"]}, NetworkConfig))
    assert _net("localhost", plain) is None  # without resolve a name is judged by name


# --- paths -------------------------------------------------------------------------------

def test_a_denied_directory_pattern_covers_the_directory_itself(tmp_path: Path) -> None:
    (tmp_path / ".ssh").mkdir()
    guard = PathsGuard(structure({"deny": ["**/.ssh/**"]}, PathsConfig))
    for target in (tmp_path / ".ssh", tmp_path / ".ssh" / "id_rsa", f"{tmp_path}/.ssh/"):
        verdict = guard.check(Action("file_read", str(target)), CTX)
        assert verdict is not None and verdict.decision is Decision.DENY, target


def test_bytes_paths_are_judged_as_paths_not_as_integers(tmp_path: Path) -> None:
    guard = PathsGuard(structure({"deny": ["*.pem"]}, PathsConfig))
    secret = os.fsencode(tmp_path / "key.pem")
    verdict = guard.check(Action("tool", "x", resources={"paths": secret}), CTX)
    assert verdict is not None and verdict.decision is Decision.DENY
    verdict = guard.check(Action("tool", "x", resources={"paths": [secret]}), CTX)
    assert verdict is not None and verdict.decision is Decision.DENY
    verdict = guard.check(Action("file_read", secret), CTX)  # type: ignore[arg-type]
    assert verdict is not None and verdict.decision is Decision.DENY


# --- allowlist -----------------------------------------------------------------------------

def _cmd(guard: AllowlistGuard, command: str, args: list[str] | None = None,
         cwd: str | None = None) -> Decision | None:
    ctx = ActionContext(extra={"cwd": cwd}) if cwd else CTX
    verdict = guard.check(Action("command", command, arguments=args or []), ctx)
    return None if verdict is None else verdict.decision


LS = shutil.which("ls")


@pytest.mark.skipif(LS is None, reason="this machine has no ls on PATH")
def test_a_relative_command_is_resolved_in_the_sandbox_work_dir(tmp_path: Path) -> None:
    work = tmp_path / "ws"
    (work / "root" / "usr" / "bin").mkdir(parents=True)
    fake = work / "root" / "usr" / "bin" / "ls"
    fake.write_text("#!/bin/sh\necho planted\n")
    fake.chmod(0o755)
    host = tmp_path / "host"
    (host / "root").mkdir(parents=True)
    os.symlink("/usr", host / "root" / "usr")  # in the host's cwd this path is the real ls
    guard = AllowlistGuard(structure({"allow": [os.path.realpath(LS)]}, AllowlistConfig))
    old = os.getcwd()
    os.chdir(host)
    try:
        assert _cmd(guard, "root/usr/bin/ls", cwd=str(work)) is Decision.DENY
        link = work / "myls"
        os.symlink(os.path.realpath(LS), link)
        assert _cmd(guard, "./myls", cwd=str(work)) is Decision.ALLOW  # the real file judged
    finally:
        os.chdir(old)


@pytest.mark.skipif(LS is None, reason="this machine has no ls on PATH")
@pytest.mark.parametrize("spelling", ["ls", "LS_PATH", "LS_DOUBLE_SLASH", "LS_DOT"])
def test_a_path_glob_deny_covers_every_spelling(spelling: str) -> None:
    real = os.path.realpath(LS)
    folder = os.path.dirname(real)
    guard = AllowlistGuard(structure({"deny": [f"{folder}/*"], "closed": False},
                                     AllowlistConfig))
    command = {"ls": "ls", "LS_PATH": LS, "LS_DOUBLE_SLASH": real.replace("/", "//", 2),
               "LS_DOT": f"{folder}/./ls"}[spelling]
    assert _cmd(guard, command) is Decision.DENY


@pytest.mark.skipif(LS is None, reason="this machine has no ls on PATH")
def test_links_to_a_denied_binary_are_denied(tmp_path: Path) -> None:
    real = os.path.realpath(LS)
    guard = AllowlistGuard(structure({"deny": [real], "closed": False}, AllowlistConfig))
    os.symlink(real, tmp_path / "innocent")
    assert _cmd(guard, str(tmp_path / "innocent")) is Decision.DENY
    assert _cmd(guard, "./innocent", cwd=str(tmp_path)) is Decision.DENY
    try:
        os.link(real, tmp_path / "hard")
    except OSError:
        return  # another file system: a hard link cannot be made here
    assert _cmd(guard, str(tmp_path / "hard")) is Decision.DENY
    by_name = AllowlistGuard(structure({"deny": ["ls"], "closed": False}, AllowlistConfig))
    assert _cmd(by_name, str(tmp_path / "hard")) is Decision.DENY
    assert _cmd(by_name, str(tmp_path / "innocent")) is Decision.DENY


PIP_RULE = {"rules": [{"name": "no-pip-install", "effect": "deny",
                       "commands": ["pip install", "pip3 install"]}], "closed": False}


@pytest.mark.parametrize(("command", "args"), [
    ("pip", ["install", "x"]), ("pip", ["-q", "install", "x"]),
    ("pip", ["--isolated", "install", "x"]), ("pip", ["-v", "--log", "f", "install", "x"]),
    ("python3", ["-m", "pip", "install", "x"]), ("python3", ["-mpip", "install", "x"]),
    ("python3", ["-I", "-m", "pip", "-q", "install", "x"]),
    ("python3", ["-Im", "pip", "install", "x"]), ("/usr/bin/python3", ["-m", "pip", "install"]),
    ("pip3", ["--quiet", "install", "x"]), ("python3.11", ["-m", "pip.__main__", "install"]),
])
def test_argument_rules_match_equivalent_spellings(command: str, args: list[str]) -> None:
    guard = AllowlistGuard(structure(PIP_RULE, AllowlistConfig))
    assert _cmd(guard, command, args) is Decision.DENY


@pytest.mark.parametrize(("command", "args"), [
    ("pip", ["show", "install"]), ("pip", ["list"]), ("python3", ["-m", "venv", "install"]),
    ("python3", ["script.py", "install"]),
])
def test_argument_rules_leave_other_commands_alone(command: str, args: list[str]) -> None:
    guard = AllowlistGuard(structure(PIP_RULE, AllowlistConfig))
    assert _cmd(guard, command, args) is None


@pytest.mark.parametrize("args", [["-c", "x"], ["-Ic", "x"], ["-I", "-c", "x"],
                                  ["-cimport os"], ["-S", "-I", "-c", "x"], ["-IS", "-cx"]])
def test_a_rule_on_an_option_matches_option_clusters(args: list[str]) -> None:
    guard = AllowlistGuard(structure({"rules": [
        {"name": "no-inline-python", "effect": "deny", "commands": ["python3 -c"]}],
        "closed": False}, AllowlistConfig))
    assert _cmd(guard, "python3", args) is Decision.DENY
    assert _cmd(guard, "python3", ["script.py"]) is None


# --- the allow-list in front of the real process sandbox -----------------------------------

@pytest.mark.anyio
@pytest.mark.skipif(LS is None, reason="this machine has no ls on PATH")
async def test_the_process_sandbox_has_its_work_dir_judged_not_the_hosts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A planted `root/usr/bin/ls` in work_dir is not `/usr/bin/ls` in the host's cwd."""
    from neuroflow.errors import SecurityError
    from neuroflow.sandbox import SandboxConfig, SandboxIsolator
    from neuroflow.security import SecurityManager

    work = tmp_path / "ws"
    planted = work / "root" / "usr" / "bin"
    planted.mkdir(parents=True)
    marker = tmp_path / "planted-ran"
    (planted / "ls").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (planted / "ls").chmod(0o755)
    host = tmp_path / "host"
    (host / "root").mkdir(parents=True)
    os.symlink("/usr", host / "root" / "usr")
    monkeypatch.chdir(host)
    real = os.path.realpath(LS)
    gate = SecurityManager([("allowlist", AllowlistGuard(structure(
        {"allow": [real, "ls"]}, AllowlistConfig)))], level="strict", audit=None)
    sandbox = SandboxIsolator(SandboxConfig(work_dir=str(work)), gate=gate)
    with pytest.raises(SecurityError, match=r"allowlist\.unlisted"):
        await sandbox.execute("root/usr/bin/ls")
    assert not marker.exists()
    result = await sandbox.execute("ls")
    assert result.exit_code == 0


def test_bytes_hosts_are_judged_as_hosts() -> None:
    guard = NetworkGuard(structure({"deny_hosts": ["127.0.0.0/8"]}, NetworkConfig))
    for hosts in (b"127.0.0.1", [b"2130706433"]):
        verdict = guard.check(Action("tool", "fetch", resources={"hosts": hosts}), CTX)
        assert verdict is not None and verdict.decision is Decision.DENY, hosts


def test_an_allowed_name_that_is_not_installed_is_left_to_the_sandbox() -> None:
    guard = AllowlistGuard(structure({"allow": ["no-such-program-here"]}, AllowlistConfig))
    assert _cmd(guard, "no-such-program-here") is Decision.ALLOW  # nothing runs: not found
    assert _cmd(guard, "/tmp/no-such-program-here") is Decision.DENY
