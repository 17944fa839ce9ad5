"""Sandboxes are guarded and audited by default, whichever backend runs the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroflow.backends import BackendSpec
from neuroflow.errors import CommandNotAllowedError, ConfigError, SecurityError
from neuroflow.hookspecs import hookimpl
from neuroflow.plugins import get_plugin_manager
from neuroflow.sandbox import SandboxConfig, SandboxIsolator, open_sandbox
from neuroflow.sandbox.guarded import GuardedBackend
from neuroflow.security import verify_audit_log

DENY_SH = "[security]\nguards = ['allowlist']\n[security.allowlist]\ndeny = ['sh']\n"


def _audit(cwd: Path) -> list[dict]:
    log = cwd / ".neuroflow" / "audit.log"
    assert verify_audit_log(log).ok
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.anyio
async def test_a_sandbox_without_a_gate_uses_the_configured_guards_and_audit_log() -> None:
    Path("neuroflow.toml").write_text(DENY_SH)
    async with SandboxIsolator(SandboxConfig(allow_weaker_isolation=True),
                               actor="agent-7") as sandbox:
        ok = await sandbox.execute("/bin/echo", ["hi"])
        with pytest.raises(SecurityError, match=r"allowlist\.deny"):
            await sandbox.execute("sh", ["-c", "touch ran"])
    assert ok.stdout == b"hi\n"
    assert not Path("ran").exists()
    records = _audit(Path.cwd())
    assert [(r["resource"], r.get("decision"), r.get("outcome"), r["actor"])
            for r in records] == [
        ("/bin/echo", "allow", None, "agent-7"),
        ("/bin/echo", None, "success", "agent-7"),
        ("sh", "deny", None, "agent-7"),
    ]


@pytest.mark.anyio
async def test_gate_false_runs_unguarded_and_writes_no_audit_log() -> None:
    Path("neuroflow.toml").write_text(DENY_SH)
    async with SandboxIsolator(gate=False) as sandbox:
        result = await sandbox.execute("sh", ["-c", "echo free"])
    assert result.stdout == b"free\n"
    assert not Path(".neuroflow").exists()


@pytest.mark.anyio
async def test_a_command_outside_allowed_commands_is_audited_as_denied() -> None:
    async with SandboxIsolator(SandboxConfig(allowed_commands=["echo"])) as sandbox:
        with pytest.raises(CommandNotAllowedError):
            await sandbox.execute("cat", ["/etc/hostname"])
    [record] = _audit(Path.cwd())
    assert (record["resource"], record["outcome"]) == ("cat", "denied")
    assert record["details"]["rule"] == "sandbox.allowed_commands"


def test_a_gate_that_is_not_an_action_gate_is_refused_naming_the_argument() -> None:
    with pytest.raises(ConfigError, match="SandboxIsolator: gate must be an ActionGate"):
        SandboxIsolator(gate="yes please")


class _EchoBackend:
    """A third-party backend whose factory knows nothing about gates."""

    def __init__(self, config: object = None) -> None:
        self.ran: list[str] = []

    async def execute(self, command, args=(), *, stdin=None, env=None, timeout=None):
        self.ran.append(command)
        async with SandboxIsolator(gate=False) as inner:
            return await inner.execute(command, args, stdin=stdin, env=env, timeout=timeout)

    async def aclose(self) -> None:
        pass

    async def __aenter__(self) -> _EchoBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _EchoPlugin:
    @hookimpl
    def neuroflow_backends(self) -> list[BackendSpec]:
        return [BackendSpec(name="echo-test", kind="isolation", factory=_EchoBackend)]


@pytest.mark.anyio
async def test_open_sandbox_wraps_a_backend_that_takes_no_gate() -> None:
    Path("neuroflow.toml").write_text(DENY_SH)
    get_plugin_manager().register(_EchoPlugin(), "echo-test-plugin")
    async with open_sandbox(backend="echo-test", actor="bot") as sandbox:
        assert isinstance(sandbox, GuardedBackend)
        assert (await sandbox.execute("/bin/echo", ["x"])).stdout == b"x\n"
        with pytest.raises(SecurityError):
            await sandbox.execute("sh", ["-c", "true"])
        assert sandbox.backend.ran == ["/bin/echo"]  # the denied command never reached it
    records = _audit(Path.cwd())
    assert [(r["resource"], r.get("decision"), r.get("outcome")) for r in records] == [
        ("/bin/echo", "allow", None), ("/bin/echo", None, "success"), ("sh", "deny", None)]
    decisions = [r for r in records if r.get("decision")]
    assert {r["details"]["component"] for r in decisions} == {"sandbox.echo-test"}


@pytest.mark.anyio
async def test_open_sandbox_hands_the_gate_to_a_backend_that_takes_one() -> None:
    Path("neuroflow.toml").write_text(DENY_SH)
    async with open_sandbox(SandboxConfig(), actor="bot") as sandbox:
        assert isinstance(sandbox, SandboxIsolator)
        with pytest.raises(SecurityError):
            await sandbox.execute("sh", ["-c", "true"])
    assert _audit(Path.cwd())[0]["actor"] == "bot"
