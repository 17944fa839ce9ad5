"""``neuroflow audit verify|tail`` and the level table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from security_helpers import KEY, write_records

from neuroflow.cli import build_cli
from neuroflow.config import reload_config
from neuroflow.security.levels import LEVEL_SETTINGS, SandboxSecurityLevel, level_settings


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret" / "audit.key"
    path.parent.mkdir()
    path.write_bytes(KEY + b"\n")
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_cli(), list(args))
    return result.exit_code, result.output


def test_verify_ok_exits_0(log_path: Path, key_file: Path) -> None:
    write_records(log_path, 20)
    code, out = run("audit", "verify", str(log_path), "--key-file", str(key_file))
    assert code == 0, out
    assert "ok: 20 records" in out


def test_verify_tampered_exits_1_naming_record_file_and_line(log_path: Path,
                                                             key_file: Path) -> None:
    write_records(log_path, 20)
    lines = log_path.read_bytes().splitlines(keepends=True)
    lines[6], lines[7] = lines[7], lines[6]
    log_path.write_bytes(b"".join(lines))
    code, out = run("audit", "verify", str(log_path), "--key-file", str(key_file))
    assert code == 1
    assert f"record 7 ({log_path}, line 7) is reordered" in out
    code, out = run("audit", "verify", str(log_path), "--key-file", str(key_file), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["problem"]["record"] == 7


def test_verify_with_the_wrong_key_or_no_log_fails(log_path: Path, tmp_path: Path,
                                                   key_file: Path) -> None:
    write_records(log_path, 3)
    wrong = tmp_path / "wrong.key"
    wrong.write_text("another-key-0123456789abcdef")
    code, out = run("audit", "verify", str(log_path), "--key-file", str(wrong))
    assert code == 1 and "altered" in out
    code, out = run("audit", "verify", str(tmp_path / "nope.log"), "--key-file", str(key_file))
    assert code == 2 and "does not exist" in out


def test_verify_uses_the_configured_key_for_the_configured_log(tmp_path: Path) -> None:
    Path("neuroflow.toml").write_text(
        f'[security.audit]\nfile = "audit.log"\nkey = "{KEY.decode()}"\n')
    write_records(Path("audit.log").resolve(), 5)
    code, out = run("audit", "verify", "audit.log")
    assert code == 0, out


def test_tail_shows_the_last_records(log_path: Path) -> None:
    write_records(log_path, 30)
    code, out = run("audit", "tail", str(log_path), "-n", "3")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[-1].split()[0] == "30" and "'r29'" in lines[-1]
    code, out = run("audit", "tail", str(log_path), "-n", "1", "--json")
    assert json.loads(out)["seq"] == 30


def test_verify_as_a_real_command(log_path: Path, key_file: Path) -> None:
    write_records(log_path, 5)
    ok = subprocess.run([sys.executable, "-m", "neuroflow", "audit", "verify", str(log_path),
                         "--key-file", str(key_file)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    log_path.write_bytes(log_path.read_bytes().replace(b'"r2"', b'"r9"'))
    bad = subprocess.run([sys.executable, "-m", "neuroflow", "audit", "verify", str(log_path),
                          "--key-file", str(key_file)], capture_output=True, text=True)
    assert bad.returncode == 1 and "record 3" in bad.stdout


def test_a_deleted_head_and_cut_tail_as_real_commands(log_path: Path, key_file: Path) -> None:
    """The reviewed attack end to end: verify fails, the writer refuses, reset-head recovers."""
    write_records(log_path, 40).close()
    log_path.with_name("audit.log.head").unlink()
    log_path.write_bytes(b"".join(log_path.read_bytes().splitlines(keepends=True)[:-3]))

    def neuroflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "neuroflow", "audit", *args,
                               str(log_path), "--key-file", str(key_file)],
                              capture_output=True, text=True)

    bad = neuroflow("verify")
    assert bad.returncode == 1 and "missing" in bad.stdout and "37 records" in bad.stdout
    writer = subprocess.run([sys.executable, "-c", (
        "import asyncio, sys\n"
        "from neuroflow.security.audit import AuditLogger\n"
        f"logger = AuditLogger({str(log_path)!r}, key_file={str(key_file)!r})\n"
        "asyncio.run(logger.log_event('command_execution', 'agent-1', {'command': 'ls'}))\n"
    )], capture_output=True, text=True)
    assert writer.returncode != 0 and "SecurityError" in writer.stderr
    assert "reset-head" in writer.stderr
    assert neuroflow("verify", "--no-head").returncode == 0
    reset = neuroflow("reset-head", "--reason", "checked against the SIEM copy", "--yes")
    assert reset.returncode == 0, reset.stderr
    ok = neuroflow("verify")
    assert ok.returncode == 0 and "ok: 38 records" in ok.stdout


def test_every_level_maps_every_backend_to_settings() -> None:
    for level in SandboxSecurityLevel:
        settings = level_settings(level)
        assert set(settings) == {"guards", "process", "namespace", "wasm"}
        assert settings == LEVEL_SETTINGS[level]
    assert level_settings("strict")["guards"]["unmatched_action"] == "deny"
    assert level_settings("strict")["process"]["enable_network"] is False
    assert level_settings("permissive")["process"]["allow_weaker_isolation"] is True
    with pytest.raises(ValueError, match="expected one of permissive, standard, strict"):
        level_settings("paranoid")


def test_config_show_hides_the_audit_key() -> None:
    Path("neuroflow.toml").write_text(
        f'[security]\nlevel = "strict"\n[security.audit]\nkey = "{KEY.decode()}"\n')
    code, out = run("config", "show")
    assert code == 0, out
    assert KEY.decode() not in out
    assert 'security.audit.key = "<hidden>"' in out
    assert 'security.level = "strict"' in out


def test_doctor_checks_that_the_audit_log_can_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    Path("neuroflow.toml").write_text(f'[security.audit]\nfile = "{blocker}/logs/audit.log"\n')
    code, out = run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["audit log writable"]["ok"] is False
    assert checks["audit log writable"]["required"] is True
    assert code == 1
    Path("neuroflow.toml").write_text('[security.audit]\nfile = "logs/audit.log"\n')
    reload_config()
    code, out = run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["audit log writable"]["ok"] is True
    assert "state directory" in checks["audit key"]["detail"]
