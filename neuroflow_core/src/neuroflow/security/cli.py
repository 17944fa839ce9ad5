"""``neuroflow audit verify|tail|reset-head``: check, read and re-anchor the audit log.

Exit status of ``verify``: 0 the chain is intact, 1 tampering was found (or the log holds
records but its ``.head`` is missing or empty, unless ``--no-head``), 2 the log or its key
could not be read.  ``reset-head`` exits 1 when it refuses (a broken chain).
"""

from __future__ import annotations

import json
import sys
from collections import deque
from pathlib import Path
from typing import Any

import click


@click.group("audit")
def audit_group() -> None:
    """Verify and read the tamper-evident audit log."""


_KEY_HELP = ("File holding the HMAC key (default: $NEUROFLOW_AUDIT_KEY, else "
             "[security.audit] key_file, else <log>.key if it exists, else the default key "
             "in ~/.local/state/neuroflow/audit-keys/).")


def _configured_audit(log: Path) -> Any:
    """``[security.audit]`` when ``log`` is the configured audit log, else ``None``."""
    try:
        from neuroflow.config import get_config

        settings = get_config().section("security").settings
    except Exception:  # noqa: BLE001 - the config is optional here; a bad one is not fatal
        return None
    if settings is not None and Path(settings.audit.file).resolve() == log.resolve():
        return settings.audit
    return None


def _key_file(log: Path, key_file: Path | None) -> tuple[Path | None, bytes | None]:
    """The key file to use: the option, else the configured one if the log is the configured log."""
    if key_file is not None:
        return key_file, None
    import os

    if os.environ.get("NEUROFLOW_AUDIT_KEY"):
        return None, None
    audit = _configured_audit(log)
    if audit is not None:
        return audit.key_file, audit.key.encode() if audit.key else None
    return None, None


@audit_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), help=_KEY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-head", is_flag=True,
              help="Accept a missing or empty FILE.head (check the chain alone, warn).")
@click.option("--witness", help="The log's witness, a file or a postgresql:// URL, to catch "
              "a wiped or rewound log (default: [security.audit] witness when FILE is the "
              "configured log).")
def verify(file: Path, key_file: Path | None, as_json: bool, no_head: bool,
           witness: str | None) -> None:
    """Check FILE's keyed hash chain (rotated files included); report the first bad record."""
    from neuroflow.security.verify import verify_audit_log

    key_path, key = _key_file(file, key_file)
    if witness is None:
        audit = _configured_audit(file)
        witness = getattr(audit, "witness", None)
    report = verify_audit_log(file, key, key_file=key_path, require_head=not no_head,
                              witness=witness)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.summary())
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
    sys.exit(0 if report.ok else 1)


@audit_group.command("reset-head")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--reason", required=True, help="Why the head is reset (written to the log).")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), help=_KEY_HELP)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset_head(file: Path, reason: str, key_file: Path | None, yes: bool) -> None:
    """Re-anchor FILE.head at FILE's last record after a human decision.

    For a head that is missing, empty, not valid, or ahead of the log (the records cut
    from the end are accepted as lost).  Refused if the records present do not chain.
    The reset is appended to the log as an ``audit_head_reset`` record.
    """
    from neuroflow.errors import SecurityError
    from neuroflow.security.audit import AuditLogger
    from neuroflow.security.keys import resolve_key

    key_path, key = _key_file(file, key_file)
    raw_key = resolve_key(file, key, key_path, "NEUROFLOW_AUDIT_KEY", create=False)
    if not yes:
        click.confirm(f"Re-anchor {file}.head at the last record of {file}? Records cut "
                      "from its end, if any, can then no longer be detected", abort=True)
    logger = AuditLogger(file, key=raw_key, max_bytes=0)
    try:
        seq = logger.reset_head(reason)
    except SecurityError as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    finally:
        logger.close()
    click.echo(f"head re-anchored; the reset is recorded as seq {seq}")


@audit_group.command("tail")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-n", "--lines", "count", default=10, show_default=True, help="Records to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON lines.")
def tail(file: Path, count: int, as_json: bool) -> None:
    """Show the last records of FILE, one line each (not verified: use `verify` for that)."""
    with file.open("rb") as fh:
        last = deque(fh, maxlen=max(count, 0))
    for raw in last:
        if as_json:
            click.echo(raw.decode("utf-8", "replace").rstrip("\n"))
            continue
        try:
            r = json.loads(raw)
        except ValueError:
            click.echo(f"(unreadable line) {raw[:80]!r}")
            continue
        verdict = r.get("decision") or r.get("outcome") or ""
        rule = f" [{r['rule']}]" if r.get("rule") else ""
        click.echo(f"{r.get('seq'):>6} {r.get('time', '')[:23]} {r.get('actor')} "
                   f"{r.get('action')} {r.get('resource')!r} -> {verdict}{rule}")
