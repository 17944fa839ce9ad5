"""A missing or empty ``<log>.head`` fails closed: the writer refuses, verify reports it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from security_helpers import KEY, write_records

from neuroflow.cli import build_cli
from neuroflow.errors import SecurityError
from neuroflow.security.audit import (
    GENESIS,
    AuditLogger,
    encode_base,
    encode_head,
    head_path,
    head_signer,
)
from neuroflow.security.model import AuditEvent
from neuroflow.security.verify import verify_audit_log


def _event(i: int = 0) -> AuditEvent:
    return AuditEvent("test", "agent-1", "command", f"r{i}", outcome="success")


def _cut_last(path: Path, count: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-count]))


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_cli(), list(args))
    return result.exit_code, result.output


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROFLOW_AUDIT_KEY", KEY.decode())


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_the_reviewed_attack_is_refused_by_the_writer_and_reported_by_verify(
        log_path: Path, how: str, key_env: None) -> None:
    write_records(log_path, 40).close()
    if how == "deleted":
        head_path(log_path).unlink()
    else:
        head_path(log_path).write_bytes(b"")
    _cut_last(log_path, 3)
    report = verify_audit_log(log_path)
    assert not report.ok and report.problem is not None
    assert report.problem.kind == "head-missing" and "37 records" in report.problem.message
    code, out = _cli("audit", "verify", str(log_path))
    assert code == 1 and "reset-head" in out
    logger = AuditLogger(log_path, key=KEY)
    with pytest.raises(SecurityError, match=r"missing or empty.*reset-head"):
        logger.log_sync(_event())
    assert len(log_path.read_bytes().splitlines()) == 37  # nothing was appended
    # --no-head checks the chain alone, with a warning
    code, out = _cli("audit", "verify", "--no-head", str(log_path))
    assert code == 0 and "ok: 37 records" in out and "missing or empty" in out


def test_the_writer_refuses_when_only_rotated_files_hold_records(log_path: Path) -> None:
    write_records(log_path, 30, max_bytes=2000).close()
    assert log_path.with_name("audit.log.1").exists()
    log_path.write_bytes(b"")
    head_path(log_path).unlink()
    with pytest.raises(SecurityError, match="missing or empty"):
        AuditLogger(log_path, key=KEY).log_sync(_event())


def test_reset_head_re_anchors_and_records_the_decision(log_path: Path, key_env: None) -> None:
    write_records(log_path, 40).close()
    head_path(log_path).unlink()
    _cut_last(log_path, 3)
    code, out = _cli("audit", "reset-head", str(log_path), "--reason", "checked, ticket 7",
                     "--yes")
    assert code == 0, out
    last = json.loads(log_path.read_bytes().splitlines()[-1])
    assert last["seq"] == 38 and last["event"] == "audit_head_reset"
    assert last["details"]["previous_head"] == "missing"
    assert last["details"]["reason"] == "checked, ticket 7"
    assert last["details"]["last_seq"] == 37
    assert verify_audit_log(log_path).ok
    write_records(log_path, 2).close()  # writers continue after the reset
    report = verify_audit_log(log_path)
    assert report.ok and report.last_seq == 40


def test_reset_head_accepts_a_detected_truncation_only_on_request(log_path: Path) -> None:
    write_records(log_path, 10).close()
    _cut_last(log_path, 2)
    assert verify_audit_log(log_path, KEY).problem.kind == "removed"  # type: ignore[union-attr]
    logger = AuditLogger(log_path, key=KEY)
    seq = logger.reset_head("lost in disk failure", actor="ops")
    assert seq == 9
    last = json.loads(log_path.read_bytes().splitlines()[-1])
    assert last["details"]["previous_head"] == "seq 10" and last["actor"] == "ops"
    assert verify_audit_log(log_path, KEY).ok


def test_reset_head_refuses_a_broken_chain(log_path: Path, key_env: None) -> None:
    write_records(log_path, 10).close()
    head_path(log_path).unlink()
    lines = log_path.read_bytes().splitlines(keepends=True)
    del lines[4]
    log_path.write_bytes(b"".join(lines))
    code, out = _cli("audit", "reset-head", str(log_path), "--reason", "x", "--yes")
    assert code == 1 and "chain itself is broken" in out
    assert not head_path(log_path).exists() or head_path(log_path).read_bytes() == b""


def test_reset_head_after_pruning_keeps_the_base(log_path: Path) -> None:
    write_records(log_path, 60, max_bytes=2000, backups=2).close()
    head_path(log_path).unlink()
    logger = AuditLogger(log_path, key=KEY, max_bytes=2000, backups=2)
    logger.reset_head("head lost in a restore")
    report = verify_audit_log(log_path, KEY)
    assert report.ok and report.first_seq > 1 and report.last_seq == 61


def test_a_new_log_starts_and_anchors_its_head_before_the_first_record(log_path: Path) -> None:
    logger = AuditLogger(log_path, key=KEY)
    logger.log_sync(_event())
    assert verify_audit_log(log_path, KEY).ok
    # an empty log file with no head is new too
    other = log_path.with_name("other.log")
    other.write_bytes(b"")
    AuditLogger(other, key=KEY).log_sync(_event())
    assert verify_audit_log(other, KEY).ok


def test_a_crash_after_the_first_record_leaves_the_head_one_behind_not_empty(
        log_path: Path) -> None:
    write_records(log_path, 1).close()
    # what a crash between writing record 1 and updating the head leaves behind
    sign = head_signer(KEY)
    head_path(log_path).write_bytes(encode_head(sign, 0, GENESIS, encode_base(0, GENESIS)))
    assert verify_audit_log(log_path, KEY).ok
    write_records(log_path, 2).close()
    report = verify_audit_log(log_path, KEY)
    assert report.ok and report.last_seq == 3


def test_a_crash_across_a_rotation_still_continues(log_path: Path) -> None:
    write_records(log_path, 30, max_bytes=2000).close()
    before = head_path(log_path).read_bytes()
    write_records(log_path, 1, max_bytes=2000).close()
    head_path(log_path).write_bytes(before)  # the head one behind the last record
    write_records(log_path, 40, max_bytes=2000).close()
    report = verify_audit_log(log_path, KEY)
    assert report.ok and report.last_seq == 71


def test_verify_of_an_empty_new_log_without_head_is_ok(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(b"")
    assert verify_audit_log(log_path, KEY).ok
    assert not os.path.exists(head_path(log_path))


def test_a_running_writer_notices_its_head_deleted(log_path: Path) -> None:
    logger = write_records(log_path, 5)
    logger.head_check_interval = 0.0  # check at every append (default: once a second)
    head_path(log_path).unlink()
    with pytest.raises(SecurityError, match="missing or empty"):
        logger.log_sync(_event())
    assert len(log_path.read_bytes().splitlines()) == 5
    report = verify_audit_log(log_path, KEY)
    assert report.problem is not None and report.problem.kind == "head-missing"


@pytest.mark.anyio
async def test_the_async_path_refuses_too(log_path: Path) -> None:
    logger = write_records(log_path, 5)
    head_path(log_path).write_bytes(b"")  # emptied in place, the writer's fd still valid
    _cut_last(log_path, 2)
    with pytest.raises(SecurityError, match="missing or empty"):
        await logger.log_event("command_execution", "agent-1", {"command": "ls"})
