"""Configuration that lowers security: noticed, reported, and refused when locked.

Configuration comes in layers (the system policy file, project files, ``NEUROFLOW_*``
variables, keyword arguments), each able to override the last.  Whoever controls a later
layer -- an environment variable is enough -- could switch the audit log off or empty a
deny list.  So:

* every variable that **lowers** security, and every file that lowers what an earlier
  file set, is noticed (audit disabled, a guard or a deny rule removed, a lower level,
  plugin checks off, ``NEUROFLOW_CONFIG`` hiding a file with a ``[security]`` table);
  keyword arguments to ``load_config`` are the program's own explicit choice and are
  not.  The notices are logged as warnings when the configuration is read and written
  to the audit log when the security gate starts;
* ``[security] lock = true`` freezes the whole ``[security]`` section: later layers'
  values for it are ignored (and noticed).  Put it in the **system policy**,
  ``/etc/neuroflow/policy.toml``, which is always read first -- even when
  ``NEUROFLOW_CONFIG`` names another file -- and only when it is owned by root and
  writable by no one else: then no project file, variable or argument can weaken it.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The system-wide policy file, read before every other source.
SYSTEM_POLICY = Path("/etc/neuroflow/policy.toml")

_LEVELS = {"permissive": 0, "standard": 1, "strict": 2}


def trusted_policy_file(path: Path) -> bool:
    """Whether ``path`` may serve as the system policy: a regular file owned by root that
    neither its group nor others may write (nor its folder)."""
    try:
        info = path.stat()
        folder = path.parent.stat()
    except OSError:
        return False
    unsafe = stat.S_IWGRP | stat.S_IWOTH
    return (stat.S_ISREG(info.st_mode) and info.st_uid == 0 and not info.st_mode & unsafe
            and folder.st_uid == 0 and not folder.st_mode & unsafe)


def _level(value: Any) -> int | None:
    return _LEVELS.get(str(getattr(value, "value", value)).lower())


def weakenings(before: Mapping[str, Any], layer: Mapping[str, Any], label: str, *,
               defaults: bool = True) -> list[str]:
    """How ``layer``'s ``[security]`` table lowers the security ``before`` it stood for.

    Both are ``security`` tables as plain data (``before`` merged from the earlier
    layers).  With ``defaults``, what ``before`` leaves unset counts at its default (an
    environment variable switching the audit log off is noticed even with no file);
    without, only values an earlier layer set are compared (a project file may choose
    its own guards; a second file lowering the first one's choice is noticed).  Each
    notice is one line naming the key, the change and the layer.
    """
    from neuroflow.backends import BackendKind

    notices: list[str] = []
    base: dict[str, Any] = {"level": "standard", "plugin_checks": True,
                            "guards": list(BackendKind.GUARD.default),
                            "audit": {"enabled": True}} if defaults else {}
    before = {**base, **before}

    def note(key: str, what: str) -> None:
        notices.append(f"security.{key}: {what} (by {label})")

    audit, old_audit = layer.get("audit"), before.get("audit")
    if (isinstance(audit, Mapping) and audit.get("enabled") is False
            and isinstance(old_audit, Mapping) and old_audit.get("enabled", True) is True
            and "enabled" in old_audit):
        note("audit.enabled", "the audit log is switched off")
    if "level" in layer and "level" in before:
        old, new = _level(before["level"]), _level(layer["level"])
        if old is not None and new is not None and new < old:
            note("level", f"lowered from {before['level']!r} to {layer['level']!r}")
    if layer.get("plugin_checks") is False and before.get("plugin_checks") is True:
        note("plugin_checks", "plugins' guard checks are switched off")
    if isinstance(layer.get("guards"), list) and isinstance(before.get("guards"), list):
        removed = [g for g in before["guards"] if g not in layer["guards"]]
        if removed:
            note("guards", f"guard(s) {', '.join(map(repr, removed))} removed")
    for name, table in layer.items():
        if not isinstance(table, Mapping) or name == "audit":
            continue
        old_table = before.get(name) or {}
        for key in ("deny", "deny_hosts", "deny_paths", "rules"):
            old, new = old_table.get(key), table.get(key)
            if isinstance(old, list) and isinstance(new, list):
                dropped = [item for item in old if item not in new]
                if dropped:
                    note(f"{name}.{key}", f"{len(dropped)} rule(s) removed: "
                                          f"{', '.join(map(repr, dropped[:3]))}")
    return notices


def locked_out(layer: Mapping[str, Any], label: str, locked_by: str) -> list[str]:
    """Notices for a layer's ``[security]`` values ignored because the section is locked."""
    return [f"security.{key}: the value from {label} is ignored: [security] is locked by "
            f"{locked_by}" for key in sorted(layer)]


def explicit_file_hides(explicit: str, searched: list[Path]) -> list[str]:
    """Notices for ``NEUROFLOW_CONFIG`` replacing a found file that has a ``[security]``
    table (``NEUROFLOW_CONFIG=/dev/null`` would otherwise switch it off silently)."""
    out = []
    for path in searched:
        out.append(f"security: {path} sets [security] but is not read "
                   f"(by env NEUROFLOW_CONFIG={explicit})")
    return out
