"""Fixtures for the security tests: a key, a log path, a clean default gate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from security_helpers import KEY

from neuroflow.security.manager import set_default_gate


@pytest.fixture(autouse=True)
def _fresh_default_gate() -> Iterator[None]:
    """Every test builds its own process-wide gate from its own configuration."""
    set_default_gate(None)
    yield
    set_default_gate(None)


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Default audit keys go to a state directory of the test's own, never the user's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def key() -> bytes:
    """The HMAC key the tests write and verify with."""
    return KEY


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """Where a test's audit log goes."""
    return tmp_path / "logs" / "audit.log"
