"""Hostile files against the audit log: verify survives any file, with bounded memory.

Each verification runs as the real command in a child process with a time limit (a hang
fails the test instead of blocking the run) and, where memory is the attack, with its
address space capped at 1 GiB.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from security_helpers import KEY, write_records

import neuroflow


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret" / "audit.key"
    path.parent.mkdir()
    path.write_bytes(KEY + b"\n")
    return path


def _cap_memory() -> None:
    limit = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def verify(log: Path, key_file: Path, *extra: str,
           cap: bool = False) -> subprocess.CompletedProcess[str]:
    src = str(Path(neuroflow.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "neuroflow", "audit", "verify", str(log), "--key-file",
         str(key_file), *extra], capture_output=True, text=True, timeout=120, env=env,
        preexec_fn=_cap_memory if cap else None, check=False)


def _one_clear_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    out = (done.stdout + done.stderr).strip()
    assert "Traceback" not in out, out
    assert done.returncode in (1, 2), out
    assert len(out.splitlines()) == 1, out
    for word in words:
        assert word in out, out
    return out


def test_a_fifo_head_does_not_hang_verify(log_path: Path, key_file: Path) -> None:
    write_records(log_path, 3).close()
    head = log_path.with_name("audit.log.head")
    head.unlink()
    os.mkfifo(head)
    _one_clear_line(verify(log_path, key_file), "FIFO")


def test_a_fifo_log_does_not_hang_verify(log_path: Path, key_file: Path) -> None:
    write_records(log_path, 3).close()
    log_path.unlink()
    os.mkfifo(log_path)
    _one_clear_line(verify(log_path, key_file), "FIFO")


def test_a_directory_head_is_one_clear_line(log_path: Path, key_file: Path) -> None:
    write_records(log_path, 3).close()
    head = log_path.with_name("audit.log.head")
    head.unlink()
    head.mkdir()
    _one_clear_line(verify(log_path, key_file), "directory")


def test_a_huge_sparse_head_is_not_read_whole(log_path: Path, key_file: Path) -> None:
    write_records(log_path, 3).close()
    head = log_path.with_name("audit.log.head")
    os.truncate(head, 40 * (1 << 30))
    _one_clear_line(verify(log_path, key_file, cap=True), "head", "bytes")


def test_a_huge_log_without_newline_is_read_in_bounded_memory(log_path: Path,
                                                               key_file: Path) -> None:
    write_records(log_path, 3).close()
    with log_path.open("ab") as fh:
        fh.write(b"x")
    os.truncate(log_path, 3 * (1 << 30))  # a 3 GiB line of zeros, sparse
    out = _one_clear_line(verify(log_path, key_file, cap=True), "record 4", "longer than")
    assert "TAMPERED" in out


def test_a_writer_refuses_a_fifo_log_instead_of_hanging(log_path: Path) -> None:
    write_records(log_path, 1).close()
    log_path.unlink()
    os.mkfifo(log_path)
    src = str(Path(neuroflow.__file__).resolve().parent.parent)
    code = ("from neuroflow.security.audit import AuditLogger\n"
            "from neuroflow.security.model import AuditEvent\n"
            f"logger = AuditLogger({str(log_path)!r}, key={KEY!r})\n"
            "logger.log_sync(AuditEvent('t', 'a'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": src}, check=False)
    assert done.returncode != 0 and "not a regular file" in done.stderr


# --- the default key ---------------------------------------------------------------------

def test_the_default_key_lives_outside_the_work_dir(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroflow.security.audit import AuditLogger
    from neuroflow.security.keys import default_key_file
    from neuroflow.security.verify import verify_audit_log

    state = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("NEUROFLOW_AUDIT_KEY", raising=False)
    monkeypatch.chdir(work)
    logger = AuditLogger()  # the default: .neuroflow/audit.log in the working directory
    from neuroflow.security.model import AuditEvent

    logger.log_sync(AuditEvent("t", "a"))
    logger.close()
    log = work / ".neuroflow" / "audit.log"
    assert log.exists()
    assert not any(p.name.endswith(".key") for p in work.rglob("*")), list(work.rglob("*"))
    key = default_key_file(log)
    assert key.is_relative_to(state)
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.stat().st_mode & 0o077 == 0
    assert verify_audit_log(log).ok


def test_a_log_with_its_key_next_to_it_keeps_verifying(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroflow.security.audit import AuditLogger
    from neuroflow.security.model import AuditEvent
    from neuroflow.security.verify import verify_audit_log

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("NEUROFLOW_AUDIT_KEY", raising=False)
    log = tmp_path / "old" / "audit.log"
    write_records(log, 3).close()
    (tmp_path / "old" / "audit.log.key").write_bytes(KEY + b"\n")  # the old default place
    assert verify_audit_log(log).ok
    logger = AuditLogger(log)
    assert logger.log_sync(AuditEvent("t", "a")) == 4
    logger.close()
    assert verify_audit_log(log).ok
    assert not (tmp_path / "state").exists()


# --- the witness ---------------------------------------------------------------------------

def _witnessed(log: Path, witness: Path | str, count: int) -> None:
    from neuroflow.security.audit import AuditLogger
    from neuroflow.security.model import AuditEvent

    logger = AuditLogger(log, key=KEY, witness=witness)
    for i in range(count):
        logger.log_sync(AuditEvent("test", "agent", "command", f"r{i}"))
    logger.close()


def test_a_wiped_log_verifies_ok_without_a_witness_and_fails_with_it(
        log_path: Path, key_file: Path, tmp_path: Path) -> None:
    witness = tmp_path / "elsewhere" / "audit.witness"
    _witnessed(log_path, witness, 10)
    assert verify(log_path, key_file, "--witness", str(witness)).returncode == 0
    os.truncate(log_path, 0)  # truncate -s0 audit.log; rm audit.log.head
    log_path.with_name("audit.log.head").unlink()
    plain = verify(log_path, key_file)
    assert plain.returncode == 0 and "ok: 0 records" in plain.stdout  # the hole, without it
    out = _one_clear_line(verify(log_path, key_file, "--witness", str(witness)),
                          "wiped or rewound", "seq 10")
    assert "TAMPERED" in out
    log_path.unlink()
    _one_clear_line(verify(log_path, key_file, "--witness", str(witness)), "wiped")


def test_a_log_replaced_by_an_older_copy_is_rewound(log_path: Path, key_file: Path,
                                                    tmp_path: Path) -> None:
    witness = tmp_path / "w" / "audit.witness"
    _witnessed(log_path, witness, 5)
    old_log = log_path.read_bytes()
    old_head = log_path.with_name("audit.log.head").read_bytes()
    _witnessed(log_path, witness, 5)
    log_path.write_bytes(old_log)
    log_path.with_name("audit.log.head").write_bytes(old_head)
    assert verify(log_path, key_file).returncode == 0  # consistent on its own
    _one_clear_line(verify(log_path, key_file, "--witness", str(witness)), "seq 10")


def test_a_writer_whose_log_vanished_records_the_reset(log_path: Path, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from neuroflow.security.audit import AuditLogger
    from neuroflow.security.model import AuditEvent
    from neuroflow.security.verify import verify_audit_log

    witness = tmp_path / "w" / "audit.witness"
    _witnessed(log_path, witness, 7)
    log_path.unlink()
    log_path.with_name("audit.log.head").unlink()
    logger = AuditLogger(log_path, key=KEY, witness=witness)  # a new process, say
    with caplog.at_level("WARNING"):
        seq = logger.log_sync(AuditEvent("test", "agent", "command", "after"))
    logger.close()
    assert seq == 2
    assert "seq 7 was written before" in caplog.text
    import json

    first = json.loads(log_path.read_text().splitlines()[0])
    assert first["event"] == "audit_log_reset" and first["details"]["previous_seq"] == 7
    assert verify_audit_log(log_path, KEY, witness=witness).ok


def test_a_running_writer_notices_its_log_vanished(log_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    from neuroflow.security.audit import AuditLogger
    from neuroflow.security.model import AuditEvent

    logger = AuditLogger(log_path, key=KEY)
    logger.head_check_interval = 0.0
    for i in range(4):
        logger.log_sync(AuditEvent("test", "agent", "command", f"r{i}"))
    log_path.unlink()
    log_path.with_name("audit.log.head").unlink()
    with caplog.at_level("WARNING"):
        seq = logger.log_sync(AuditEvent("test", "agent", "command", "after"))
    logger.close()
    import json

    first = json.loads(log_path.read_text().splitlines()[0])
    assert seq == 2 and first["event"] == "audit_log_reset"
    assert "seq 4 was written before" in caplog.text


PG_DSN = os.environ.get("NEUROFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - only to decide the skip
        return False


@pytest.mark.skipif(not _postgres_available(),
                    reason="no PostgreSQL server (or psycopg) on this machine")
def test_a_postgres_witness_catches_a_wiped_log(log_path: Path, key_file: Path) -> None:
    import psycopg

    from neuroflow.security.verify import verify_audit_log
    from neuroflow.security.witness import TABLE

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (log text PRIMARY KEY, "
                     "head bytea NOT NULL, updated timestamptz NOT NULL DEFAULT now())")
        conn.execute(f"DELETE FROM {TABLE} WHERE log = %s", (str(log_path),))
    _witnessed(log_path, PG_DSN, 6)  # close() ships the last head
    assert verify_audit_log(log_path, KEY, witness=PG_DSN).ok
    with psycopg.connect(PG_DSN) as conn:
        (head,) = conn.execute(f"SELECT head FROM {TABLE} WHERE log = %s",
                               (str(log_path),)).fetchone()
    assert bytes(head).startswith(b"%020d" % 6)
    os.truncate(log_path, 0)
    log_path.with_name("audit.log.head").unlink()
    _one_clear_line(verify(log_path, key_file, "--witness", PG_DSN), "seq 6", "wiped")


def test_config_show_hides_a_witness_password() -> None:
    from neuroflow.config import converter
    from neuroflow.security.config import AuditConfig

    shown = converter.unstructure(AuditConfig(witness="postgresql://audit:s3cret@db/nf"))
    assert shown["witness"] == "postgresql://audit:<hidden>@db/nf"
    assert converter.unstructure(AuditConfig(witness="/var/lib/w"))["witness"] == "/var/lib/w"


def test_verify_uses_the_configured_witness_of_the_configured_log(
        log_path: Path, key_file: Path, tmp_path: Path) -> None:
    witness = tmp_path / "elsewhere" / "audit.witness"
    Path("neuroflow.toml").write_text(
        f'[security.audit]\nfile = "{log_path}"\nwitness = "{witness}"\n')
    _witnessed(log_path, witness, 4)
    os.truncate(log_path, 0)
    log_path.with_name("audit.log.head").unlink()
    _one_clear_line(verify(log_path, key_file), "wiped or rewound", "seq 4")
    other = tmp_path / "other" / "audit.log"  # not the configured log: no witness applies
    _witnessed(other, tmp_path / "other.witness", 2)
    assert verify(other, key_file).returncode == 0
