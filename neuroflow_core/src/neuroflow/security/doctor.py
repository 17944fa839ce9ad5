"""``neuroflow doctor`` checks for the security capability: can the audit log be written?"""

from __future__ import annotations

import os
from pathlib import Path

from neuroflow.doctor import Check


def _writable_dir(path: Path) -> tuple[bool, Path]:
    """Whether the log's directory (or its nearest existing parent) is writable."""
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK), probe


def audit_checks() -> list[Check]:
    """Checks for the active configuration's audit log (none if the config does not load)."""
    from neuroflow.config import get_config
    from neuroflow.errors import ConfigError
    from neuroflow.security.config import SecurityConfig
    from neuroflow.security.keys import default_key_file, legacy_key_file

    try:
        settings = get_config().section("security").settings or SecurityConfig()
    except ConfigError:
        return []  # `neuroflow doctor` reports configuration problems itself
    audit = settings.audit
    if not audit.enabled:
        return [Check("audit log", False, "disabled ([security.audit] enabled = false): "
                      "guarded actions run unrecorded")]
    path = Path(os.path.abspath(audit.file))
    ok, where = _writable_dir(path)
    detail = f"{path}" if ok else f"{path}: {where} is not a writable directory"
    checks = [Check("audit log writable", ok, detail, required=True)]
    if audit.key is not None:
        source = "[security.audit] key (anyone who can read the config can forge the log)"
    elif audit.key_file is not None:
        source = f"key file {audit.key_file}"
    elif audit.key_env and os.environ.get(audit.key_env):
        source = f"${audit.key_env}"
    elif legacy_key_file(path).exists():
        source = (f"{legacy_key_file(path)} next to the log: move it where log editors "
                  "cannot read it ([security.audit] key_file)")
    else:
        source = (f"{default_key_file(path)} (the user's state directory, outside the "
                  "working directory; [security.audit] key_file to choose)")
    checks.append(Check("audit key", True, source))
    return checks
