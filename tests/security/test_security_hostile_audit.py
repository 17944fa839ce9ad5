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
