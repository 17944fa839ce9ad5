"""``[security]``: the security level and the audit log's settings.

Guards are selected with ``[security] guards = [...]`` and each guard's rules live in
``[security.<guard>]``; those tables are checked against the guard's own config class
(see :mod:`neuroflow.security.guards`).  This module holds the section's common settings::

    [security]
    level = "strict"                # permissive | standard | strict
    guards = ["allowlist", "paths", "network", "tools"]
    plugin_checks = true            # also ask neuroflow_guard_check hook implementations

    [security.audit]
    file = "/var/log/neuroflow/audit.log"
    key_file = "/etc/neuroflow/audit.key"    # keep it away from whoever can edit the log
    max_bytes = 10485760
    backups = 10
    witness = "/var/lib/neuroflow/audit.witness"   # a head copy the sandbox cannot reach
"""

from __future__ import annotations

from pathlib import Path

import attrs

from neuroflow.config import file_relative
from neuroflow.security.levels import SandboxSecurityLevel
from neuroflow.security.rules import enum_converter
from neuroflow.units import ByteSize, size_converter

#: Keys whose values never reach the audit log in clear (matched case-insensitively as
#: substrings of a key: ``db_password``, ``X-Api-Key`` and ``Authorization`` all match).
DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password", "passwd", "passphrase", "secret", "token", "api_key", "apikey", "api-key",
    "authorization", "auth_header", "cookie", "credential", "private_key", "access_key",
    "session_key",
)


@attrs.frozen
class AuditConfig:
    """``[security.audit]``: where and how the tamper-evident audit log is written.

    Attributes:
        enabled: record decisions and outcomes at all.  With ``false`` nothing is
            recorded and guarded actions still run; keep it on in production.
        file: the log file (relative paths are taken from the working directory).
        key: the HMAC key itself (prefer ``key_file`` or ``key_env``: a key in a shared
            config file is readable by whoever reads that file).
        key_file: a file holding the key; created (mode 0600) with a random key if absent.
        key_env: the environment variable that may hold the key.
        max_bytes: rotate the file before it would grow past this size; 0 never rotates.
        backups: how many rotated files (``audit.log.1`` ...) are kept; 0 keeps all.
        fsync: ``fsync`` after every record (survives power loss; costs milliseconds).
        redact_keys: detail keys whose values are written as keyed digests.
        witness: a file path, or a PostgreSQL URL, that gets a copy of the log's head
            after every record; put it where sandboxed code cannot write
            (``/var/lib/neuroflow/audit.witness``) and ``neuroflow audit verify
            --witness`` catches a wiped or rewound log.
    """

    enabled: bool = True
    file: Path = file_relative(default=Path(".neuroflow/audit.log"))
    key: str | None = None
    key_file: Path | None = file_relative(default=None)
    key_env: str = "NEUROFLOW_AUDIT_KEY"
    max_bytes: ByteSize = attrs.field(default=10 * 1024 * 1024,
                                      converter=size_converter("max_bytes"))
    backups: int = 0
    fsync: bool = False
    redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS
    witness: str | None = None


@attrs.frozen
class SecurityConfig:
    """``[security]``: the section's common settings.

    Attributes:
        level: how strict: ``STRICT`` denies any action no rule covers, ``STANDARD`` and
            ``PERMISSIVE`` allow it (see :func:`neuroflow.security.levels.level_settings`).
        plugin_checks: also ask every ``neuroflow_guard_check`` hook implementation.
        audit: the audit log's settings (``[security.audit]``).
        lock: freeze this section: configuration layers read after the file that sets it
            (later files, ``NEUROFLOW_*`` variables, keyword arguments) cannot change it.
            Set it in the system policy ``/etc/neuroflow/policy.toml`` (root-owned) so that
            nothing a user or a sandboxed program controls can weaken it.
    """

    level: SandboxSecurityLevel = attrs.field(
        default=SandboxSecurityLevel.STANDARD,
        converter=enum_converter(SandboxSecurityLevel, "level"))
    plugin_checks: bool = True
    audit: AuditConfig = attrs.field(factory=AuditConfig)
    lock: bool = False


def _unstructure_audit(cfg: AuditConfig) -> dict[str, object]:
    """``config show`` must not print the audit key (nor a witness URL's password)."""
    from neuroflow.config import converter

    data = {f.name: converter.unstructure(getattr(cfg, f.name)) for f in attrs.fields(AuditConfig)}
    if data["key"] is not None:
        data["key"] = "<hidden>"
    witness = data.get("witness")
    if isinstance(witness, str) and "://" in witness and "@" in witness:
        # a PostgreSQL URL may carry a password: postgresql://user:<hidden>@host/db
        scheme, _, rest = witness.partition("://")
        userinfo, _, host = rest.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":<hidden>"
        data["witness"] = f"{scheme}://{userinfo}@{host}"
    return data


def _register_hooks() -> None:
    from neuroflow.config import converter

    converter.register_unstructure_hook(AuditConfig, _unstructure_audit)


_register_hooks()
