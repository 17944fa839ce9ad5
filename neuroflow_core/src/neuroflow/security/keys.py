"""Where the audit log's HMAC key comes from.

In order: the ``key`` argument or setting, the ``key_file`` setting, the environment
variable named by ``key_env`` (``NEUROFLOW_AUDIT_KEY``), a key file next to the log
(``audit.log.key``) if one exists (logs written before the default moved), and last the
default key file in the user's state directory::

    $XDG_STATE_HOME/neuroflow/audit-keys/<sha256 of the log's absolute path>.key
    (~/.local/state/neuroflow/audit-keys/... when XDG_STATE_HOME is unset)

created with mode 0600 (its folders 0700) and a random key if it does not exist.  The
default log is ``.neuroflow/audit.log`` in the working directory, often a sandbox's
``work_dir`` too: a key next to it would be readable by the sandboxed code, so the key
lives elsewhere by default.  A log moved to another path or machine needs its key given
(``--key-file``).

The key must be kept away from whoever could edit the log: with it, a forged log
verifies.  The state directory protects against sandboxed code, not against the
machine's administrator; in production use a key file only the writer can read, or the
environment.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from neuroflow.errors import ConfigError, SecurityError

MIN_KEY_BYTES = 16


def state_dir() -> Path:
    """The user's state directory for neuroflow: ``$XDG_STATE_HOME/neuroflow``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return Path(base) / "neuroflow"


def legacy_key_file(log_file: Path) -> Path:
    """Where keys used to be by default: ``<log>.key`` next to the log (still read)."""
    return log_file.with_name(log_file.name + ".key")


def default_key_file(log_file: Path) -> Path:
    """The key file used when no key is configured (see the module docstring)."""
    absolute = os.path.abspath(os.fspath(log_file))
    name = hashlib.sha256(os.fsencode(absolute)).hexdigest()[:32]
    return state_dir() / "audit-keys" / f"{name}.key"


def read_key_file(path: Path, *, create: bool) -> bytes:
    """Read a key file; with ``create``, make one (mode 0600, random key) if it is absent."""
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            raise ConfigError(f"audit key file {path} does not exist") from None
        _create_key_file(path)
        return read_key_file(path, create=False)
    except OSError as exc:
        raise SecurityError(f"cannot read audit key file {path}: {exc.strerror}") from None
    if len(data) < MIN_KEY_BYTES:
        raise ConfigError(f"audit key file {path}: the key is {len(data)} bytes, "
                          f"expected at least {MIN_KEY_BYTES}")
    return data


def _create_key_file(path: Path) -> None:
    """Write a random key to ``path`` (0600) atomically: a racing process sees all or nothing."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SecurityError(f"cannot create the folder of audit key file {path}: "
                            f"{exc.strerror}") from None
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            # On disk before the name appears: after a crash, an empty key file would
            # leave the log neither writable nor verifiable.
            os.fsync(fh.fileno())
        try:
            os.link(temp, path)  # fails if another process created the key first
        except FileExistsError:
            pass
    except OSError as exc:
        raise SecurityError(f"cannot create audit key file {path}: {exc.strerror}") from None
    finally:
        try:
            os.unlink(temp)
        except OSError:
            pass


def as_key(key: bytes | str, what: str = "key") -> bytes:
    """Check and return a key given directly."""
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_BYTES:
        raise ConfigError(f"{what}: the audit key is {len(raw)} bytes, "
                          f"expected at least {MIN_KEY_BYTES}")
    return raw


def resolve_key(
    log_file: Path,
    key: bytes | str | None = None,
    key_file: Path | str | None = None,
    key_env: str | None = "NEUROFLOW_AUDIT_KEY",
    *,
    create: bool = True,
) -> bytes:
    """Find the audit key (see the module docstring for the order)."""
    if key is not None:
        return as_key(key)
    if key_file is not None:
        return read_key_file(Path(key_file), create=create)
    if key_env:
        value = os.environ.get(key_env)
        if value:
            return as_key(value, f"environment variable {key_env}")
    legacy = legacy_key_file(Path(log_file))
    if legacy.exists():
        return read_key_file(legacy, create=False)
    return read_key_file(default_key_file(Path(log_file)), create=create)
