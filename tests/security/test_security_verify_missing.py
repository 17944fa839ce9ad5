"""``neuroflow audit verify`` on a log that does not exist says that, not something about a key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from security_helpers import KEY, write_records

from neuroflow.errors import ConfigError
from neuroflow.security import verify_audit_log


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m neuroflow audit verify ARGS`` with no audit key in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROFLOW_")}
    return subprocess.run([sys.executable, "-m", "neuroflow", "audit", "verify", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_a_missing_log_is_named_as_missing(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.log"
    done = verify(str(log))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: audit log {log} does not exist: nothing to verify"]
    assert not (tmp_path / "logs").exists()  # nothing was created on the way


def test_a_missing_log_is_named_even_with_a_key_file_that_is_missing_too(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    done = verify(str(log), "--key-file", str(tmp_path / "no.key"))
    assert done.returncode == 2
    assert "key" not in done.stderr
    assert f"audit log {log} does not exist" in done.stderr


def test_a_log_whose_key_is_missing_still_names_the_key(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    write_records(log, 2)
    done = verify(str(log))
    assert done.returncode == 2
    from neuroflow.security.keys import default_key_file

    assert f"audit key file {default_key_file(log)} does not exist" in done.stderr


def test_a_rotated_log_whose_current_file_is_gone_is_still_verified(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    write_records(log, 3, max_bytes=0)
    log.rename(tmp_path / "audit.log.1")
    report = verify_audit_log(log, KEY, require_head=False)
    assert report.ok, report.summary()
    assert report.records == 3


def test_the_python_api_raises_a_config_error_naming_the_log(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    with pytest.raises(ConfigError, match=rf"^audit log {log} does not exist: nothing to verify$"):
        verify_audit_log(log)
