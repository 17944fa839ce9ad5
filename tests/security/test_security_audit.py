"""The audit log: records, redaction, the chain and what verify finds, rotation, fail closed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from security_helpers import KEY, write_records

from neuroflow.errors import SecurityError
from neuroflow.security.audit import AuditLogger, head_path
from neuroflow.security.config import AuditConfig
from neuroflow.security.keys import default_key_file
from neuroflow.security.model import AuditEvent
from neuroflow.security.verify import verify_audit_log


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.anyio
async def test_log_event_as_in_the_spec(log_path: Path, key: bytes) -> None:
    logger = AuditLogger(output_file=str(log_path), key=key)
    seq = await logger.log_event(event_type="command_execution", agent_id="agent-1",
                                 details={"command": "python3 script.py"}, result="success")
    assert seq == 1
    (record,) = records(log_path)
    assert record["event"] == "command_execution"
    assert record["actor"] == "agent-1"
    assert record["resource"] == "python3 script.py"
    assert record["outcome"] == "success"
    assert record["details"] == {"command": "python3 script.py"}
    assert {"seq", "time", "prev", "mac", "decision", "rule", "trace_id"} <= set(record)
    assert verify_audit_log(log_path, key).ok


@pytest.mark.anyio
async def test_default_key_file_is_created_0600_in_the_state_dir(log_path: Path) -> None:
    await AuditLogger(log_path).log_event("e", "a", {}, "success")
    assert not log_path.with_name("audit.log.key").exists()  # not next to the log
    key_file = default_key_file(log_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
    assert verify_audit_log(log_path).ok  # finds the same key file
    other = verify_audit_log(log_path, b"another-key-0123456789")
    assert not other.ok and other.problem is not None and other.problem.kind == "altered"


@pytest.mark.anyio
async def test_key_from_environment(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROFLOW_AUDIT_KEY", "env-key-0123456789abcdef")
    await AuditLogger(log_path).log_event("e", "a")
    assert not log_path.with_name("audit.log.key").exists()
    assert verify_audit_log(log_path).ok
    monkeypatch.delenv("NEUROFLOW_AUDIT_KEY")
    with pytest.raises(Exception, match="does not exist"):
        verify_audit_log(log_path)


@pytest.mark.anyio
async def test_secrets_are_written_as_keyed_digests(log_path: Path, key: bytes) -> None:
    logger = AuditLogger(log_path, key=key)
    await logger.log_event("call", "agent-1", {
        "api_key": "sk-live-123", "headers": {"Authorization": "Bearer tok-456"},
        "argv": ["--password", "hunter2", "--token=tok-789", "plain"],
        "command": "mysql --password=pw-000 -u root", "db_password": None,
        "query": "weather",
    }, "success")
    text = log_path.read_text()
    for secret in ("sk-live-123", "tok-456", "hunter2", "tok-789", "pw-000"):
        assert secret not in text
    details = records(log_path)[0]["details"]
    assert details["api_key"].startswith("hmac-sha256:")
    assert details["argv"][0] == "--password" and details["argv"][3] == "plain"
    assert details["command"].startswith("mysql --password=hmac-sha256:")
    assert details["query"] == "weather"
    # equal secrets give equal digests (correlatable), under this key only
    again = AuditLogger(log_path, key=key)
    await again.log_event("call", "agent-1", {"api_key": "sk-live-123"}, "success")
    assert records(log_path)[1]["details"]["api_key"] == details["api_key"]


def test_redact_keys_are_configurable(log_path: Path, key: bytes) -> None:
    logger = AuditLogger(log_path, key=key, redact_keys=["ssn"])
    logger.log_sync(AuditEvent("e", "a", details={"ssn": "123-45", "password": "visible"}))
    details = records(log_path)[0]["details"]
    assert details["ssn"].startswith("hmac-sha256:")
    assert details["password"] == "visible"


def test_records_chain_and_sequence(log_path: Path, key: bytes) -> None:
    write_records(log_path, 5)
    rows = records(log_path)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev"] == "0" * 64
    assert all(rows[i]["prev"] == rows[i - 1]["mac"] for i in range(1, 5))
    report = verify_audit_log(log_path, key)
    assert report.ok and report.records == 5 and report.last_seq == 5


def test_a_second_logger_continues_the_chain(log_path: Path, key: bytes) -> None:
    write_records(log_path, 3)
    write_records(log_path, 3)
    assert [r["seq"] for r in records(log_path)] == [1, 2, 3, 4, 5, 6]
    assert verify_audit_log(log_path, key).ok


# --- tampering: every one-byte edit / one-line delete, insert, swap is found ---------------

N = 1000


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], bytes]:
    """A 1,000-record log: its lines and its head file."""
    path = tmp_path_factory.mktemp("pristine") / "audit.log"
    write_records(path, N)
    return path.read_bytes().splitlines(keepends=True), head_path(path).read_bytes()


def _tampered(log_path: Path, pristine: tuple[list[bytes], bytes], lines: list[bytes]) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"".join(lines))
    head_path(log_path).write_bytes(pristine[1])


POSITIONS = [0, 1, 2, 499, 500, 997, 998, 999]


@pytest.mark.parametrize("index", POSITIONS)
def test_editing_one_byte_is_found_at_that_record(log_path: Path, pristine, index: int) -> None:
    lines = list(pristine[0])
    for offset in (0, 10, len(lines[index]) // 2, len(lines[index]) - 3, len(lines[index]) - 1):
        edited = bytearray(lines[index])
        edited[offset] = ord("x") if edited[offset] != ord("x") else ord("y")
        _tampered(log_path, pristine, [*lines[:index], bytes(edited), *lines[index + 1:]])
        report = verify_audit_log(log_path, KEY)
        assert not report.ok and report.problem is not None
        assert report.problem.record == index + 1, (offset, report.problem)
        assert report.problem.line == index + 1
        assert report.problem.kind == "altered"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_any_one_byte_edit_is_found_at_the_record_holding_that_byte(
    log_path: Path, pristine, offset: int, byte: int
) -> None:
    lines = list(pristine[0])
    data = bytearray(b"".join(lines))
    offset %= len(data)
    assume(data[offset] != byte)
    data[offset] = byte
    _tampered(log_path, pristine, [bytes(data)])
    index = b"".join(lines)[:offset].count(b"\n")  # the line that held the byte
    report = verify_audit_log(log_path, KEY)
    assert not report.ok and report.problem is not None
    assert report.problem.record == index + 1, (offset, report.problem)


@pytest.mark.parametrize("index", POSITIONS)
def test_deleting_one_line_is_found(log_path: Path, pristine, index: int) -> None:
    lines = list(pristine[0])
    del lines[index]
    _tampered(log_path, pristine, lines)
    report = verify_audit_log(log_path, KEY)
    assert not report.ok and report.problem is not None
    assert report.problem.kind == "removed"
    assert report.problem.record == index + 1
    assert report.problem.seq == index + 1
    assert f"seq {index + 1}" in report.problem.message


@pytest.mark.parametrize("index", POSITIONS)
def test_inserting_one_line_is_found(log_path: Path, pristine, index: int) -> None:
    lines = list(pristine[0])
    copy = lines[(index + 500) % N]
    forged = lines[index].replace(b'"outcome":"success"', b'"outcome":"failure"')
    for extra in (copy, forged, b"{}\n"):
        _tampered(log_path, pristine, [*lines[:index], extra, *lines[index:]])
        report = verify_audit_log(log_path, KEY)
        assert not report.ok and report.problem is not None
        assert report.problem.record == index + 1, report.problem
        assert report.problem.kind in ("inserted", "altered", "reordered")


@pytest.mark.parametrize(("first", "second"), [(0, 1), (0, 999), (10, 20), (498, 499), (998, 999)])
def test_swapping_two_lines_is_found(log_path: Path, pristine, first: int, second: int) -> None:
    lines = list(pristine[0])
    lines[first], lines[second] = lines[second], lines[first]
    _tampered(log_path, pristine, lines)
    report = verify_audit_log(log_path, KEY)
    assert not report.ok and report.problem is not None
    assert report.problem.record == first + 1
    assert report.problem.kind == "reordered"


def test_removing_the_last_records_is_found_through_the_head_file(log_path: Path,
                                                                  pristine) -> None:
    _tampered(log_path, pristine, list(pristine[0][:-2]))
    report = verify_audit_log(log_path, KEY)
    assert not report.ok and report.problem is not None
    assert report.problem.kind == "removed" and report.problem.seq == N - 1
    # a writer that comes back continues after the head, so the gap stays visible
    write_records(log_path, 1)
    again = verify_audit_log(log_path, KEY)
    assert not again.ok and again.problem is not None and again.problem.kind == "removed"


def test_edited_head_file_is_reported(log_path: Path, pristine) -> None:
    _tampered(log_path, pristine, list(pristine[0]))
    data = bytearray(head_path(log_path).read_bytes())
    data[19] = ord("5") if data[19] != ord("5") else ord("6")
    head_path(log_path).write_bytes(bytes(data))
    report = verify_audit_log(log_path, KEY)
    assert not report.ok and "head file" in report.problem.message  # type: ignore[union-attr]


def test_intact_copy_verifies(log_path: Path, pristine) -> None:
    _tampered(log_path, pristine, list(pristine[0]))
    report = verify_audit_log(log_path, KEY)
    assert report.ok and report.records == N and report.problem is None


# --- rotation ----------------------------------------------------------------------------


def test_rotation_keeps_the_chain_across_files(log_path: Path, key: bytes) -> None:
    write_records(log_path, 200, max_bytes=8_000)
    files = sorted(p.name for p in log_path.parent.glob("audit.log*"))
    assert "audit.log.1" in files and "audit.log.3" in files
    report = verify_audit_log(log_path, key)
    assert report.ok and report.records == 200, report
    assert report.files[0].endswith(f"audit.log.{len(report.files) - 1}")
    first_of_current = records(log_path)[0]
    last_of_previous = records(log_path.with_name("audit.log.1"))[-1]
    assert first_of_current["prev"] == last_of_previous["mac"]
    assert first_of_current["seq"] == last_of_previous["seq"] + 1
    for path in log_path.parent.glob("audit.log*"):
        if path.name[-1].isdigit() or path.name == "audit.log":
            assert path.stat().st_size <= 8_000


def test_tampering_in_a_rotated_file_names_that_file(log_path: Path, key: bytes) -> None:
    write_records(log_path, 100, max_bytes=8_000)
    target = log_path.with_name("audit.log.2")
    lines = target.read_bytes().splitlines(keepends=True)
    del lines[3]
    target.write_bytes(b"".join(lines))
    report = verify_audit_log(log_path, key)
    assert not report.ok and report.problem is not None
    assert report.problem.file == str(target) and report.problem.line == 4
    assert report.problem.kind == "removed"


def test_backups_limit_prunes_old_files_and_the_rest_still_verifies(log_path: Path,
                                                                    key: bytes) -> None:
    write_records(log_path, 300, max_bytes=8_000, backups=2)
    names = sorted(p.name for p in log_path.parent.glob("audit.log.[0-9]*"))
    assert names == ["audit.log.1", "audit.log.2"]
    report = verify_audit_log(log_path, key)
    assert report.ok and report.first_seq > 1 and report.last_seq == 300


# --- fail closed ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_unwritable_log_raises_security_error(tmp_path: Path, key: bytes) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log directory should be")
    logger = AuditLogger(blocker / "audit.log", key=key)
    with pytest.raises(SecurityError, match="audit log"):
        await logger.log_event("e", "a")
    locked = tmp_path / "ro"
    locked.mkdir()
    (locked / "audit.log").write_text("")
    os.chmod(locked / "audit.log", 0o400)
    if os.geteuid() != 0:  # root ignores file modes; the directory case above covers root
        with pytest.raises(SecurityError):
            await AuditLogger(locked / "audit.log", key=key).log_event("e", "a")


def test_config_object_accepted_for_output_file(log_path: Path, key: bytes) -> None:
    logger = AuditLogger(AuditConfig(file=log_path, key=key.decode(), max_bytes=0))
    logger.log_sync(AuditEvent("e", "a"))
    assert logger.path == log_path and logger.max_bytes == 0
    assert verify_audit_log(log_path, key).ok


def test_bad_arguments_are_config_errors(log_path: Path) -> None:
    from neuroflow.errors import ConfigError

    with pytest.raises(ConfigError, match="max_bytes"):
        AuditLogger(log_path, key=KEY, max_bytes="big")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 16"):
        _ = AuditLogger(log_path, key=b"short").key


# --- batches -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_log_many_chains_like_single_records_across_rotations(log_path: Path,
                                                                    key: bytes) -> None:
    logger = AuditLogger(log_path, key=key, max_bytes=6_000)
    await logger.log_event("single", "a")
    batch = [AuditEvent("batch", f"b{i}", resource=f"r{i}") for i in range(60)]
    seqs = await logger.log_many(batch)
    assert seqs == list(range(2, 62))
    assert logger.log_many_sync(batch[:5]) == list(range(62, 67))
    assert await logger.log_many([]) == []
    report = verify_audit_log(log_path, key)
    assert report.ok and report.records == 66, report.summary()
    assert len(report.files) > 2  # the batch crossed rotations


@pytest.mark.anyio
async def test_a_short_key_fails_closed_with_a_security_error(log_path: Path) -> None:
    with pytest.raises(SecurityError, match="at least 16"):
        await AuditLogger(log_path, key=b"short").log_event("e", "a")
