"""Security: guards that judge every action, security levels and a tamper-evident audit log.

::

    from neuroflow.security import SecurityManager, AuditLogger, get_default_gate
    gate = get_default_gate()          # built from [security] of the active configuration
    await gate.authorize(Action("command", "python3", actor="agent-1"), ActionContext())

Names are imported lazily so that importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "SandboxSecurityLevel": "neuroflow.security.levels",
    "level_settings": "neuroflow.security.levels",
    "Action": "neuroflow.security.model",
    "ActionContext": "neuroflow.security.model",
    "ActionKind": "neuroflow.security.model",
    "ActionGate": "neuroflow.security.protocol",
    "AuditEvent": "neuroflow.security.model",
    "Decision": "neuroflow.security.model",
    "Guard": "neuroflow.security.protocol",
    "Verdict": "neuroflow.security.model",
    "SecurityConfig": "neuroflow.security.config",
    "AuditConfig": "neuroflow.security.config",
    "AuditLogger": "neuroflow.security.audit",
    "SecurityManager": "neuroflow.security.manager",
    "get_default_gate": "neuroflow.security.manager",
    "set_default_gate": "neuroflow.security.manager",
    "resolve_gate": "neuroflow.security.manager",
    "guarded": "neuroflow.security.manager",
    "verify_audit_log": "neuroflow.security.verify",
    "VerifyReport": "neuroflow.security.verify",
    "AllowlistGuard": "neuroflow.security.guards.allowlist",
    "PathsGuard": "neuroflow.security.guards.paths",
    "NetworkGuard": "neuroflow.security.guards.network",
    "ToolsGuard": "neuroflow.security.guards.tools",
}

if TYPE_CHECKING:
    from neuroflow.security.audit import AuditLogger
    from neuroflow.security.config import AuditConfig, SecurityConfig
    from neuroflow.security.guards.allowlist import AllowlistGuard
    from neuroflow.security.guards.network import NetworkGuard
    from neuroflow.security.guards.paths import PathsGuard
    from neuroflow.security.guards.tools import ToolsGuard
    from neuroflow.security.levels import SandboxSecurityLevel, level_settings
    from neuroflow.security.manager import (
        SecurityManager,
        get_default_gate,
        guarded,
        resolve_gate,
        set_default_gate,
    )
    from neuroflow.security.model import (
        Action,
        ActionContext,
        ActionGate,
        ActionKind,
        AuditEvent,
        Decision,
        Guard,
        Verdict,
    )
    from neuroflow.security.verify import VerifyReport, verify_audit_log


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "Action",
    "ActionContext",
    "ActionGate",
    "ActionKind",
    "AllowlistGuard",
    "AuditConfig",
    "AuditEvent",
    "AuditLogger",
    "Decision",
    "Guard",
    "NetworkGuard",
    "PathsGuard",
    "SandboxSecurityLevel",
    "SecurityConfig",
    "SecurityManager",
    "ToolsGuard",
    "Verdict",
    "VerifyReport",
    "get_default_gate",
    "guarded",
    "level_settings",
    "resolve_gate",
    "set_default_gate",
    "verify_audit_log",
]
