"""Helpers shared by the security tests (a module of its own: conftest names collide)."""

from __future__ import annotations

from pathlib import Path

from neuroflow.security.audit import AuditLogger
from neuroflow.security.model import AuditEvent

KEY = b"test-key-0123456789abcdef0123456789"


def write_records(path: Path, count: int, key: bytes = KEY, **kwargs: object) -> AuditLogger:
    """Append ``count`` records (actor ``agent-<i % 3>``, resource ``r<i>``) to ``path``."""
    logger = AuditLogger(path, key=key, **kwargs)  # type: ignore[arg-type]
    for i in range(count):
        logger.log_sync(AuditEvent("test", f"agent-{i % 3}", "command", f"r{i}",
                                   outcome="success", details={"i": i}))
    return logger
