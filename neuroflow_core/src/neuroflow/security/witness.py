"""Witnesses: copies of the audit log's head kept where the log's editors cannot reach.

``<log>.head`` sits next to the log, so whoever can delete the log can delete the head:
a wiped log then looks new.  A witness receives the same keyed head after every record,
somewhere else, so ``neuroflow audit verify --witness SPEC`` can tell that records were
there (see :mod:`neuroflow.security.verify`).  ``SPEC`` is

* a file path (``/var/lib/neuroflow/audit.witness``): written synchronously after every
  record (one ``pwrite``), so it is never behind the log by more than a crash's worth;
* a PostgreSQL URL (``postgresql://audit@db/neuroflow``): the latest head is shipped by a
  background thread to the table ``neuroflow_audit_witness`` (one row per log, keyed by
  the log's absolute path).  Records are never held up by the database; the witness may
  lag by the records written since its last update, and a database that cannot be
  reached is reported through :mod:`logging` and retried.  Requires ``psycopg``
  (``pip install "neuroflow[postgres]"``).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from neuroflow.errors import ConfigError

_log = logging.getLogger("neuroflow.security.audit")
TABLE = "neuroflow_audit_witness"
#: The most of a witness ever read: a head is far shorter.
READ_LIMIT = 4096


def is_dsn(spec: str) -> bool:
    """Whether a witness ``spec`` names a PostgreSQL database rather than a file."""
    return spec.startswith(("postgresql://", "postgres://"))


class Witness(Protocol):
    """Where a log's head is mirrored."""

    def write(self, data: bytes) -> None:
        """Mirror ``data`` (the encoded head)."""
        ...

    def read(self) -> tuple[bytes, int] | None:
        """(up to :data:`READ_LIMIT` bytes, the full size) of the mirrored head, or ``None``."""
        ...

    def close(self) -> None:
        """Flush what is pending and release resources."""
        ...


class FileWitness:
    """A witness file, written synchronously (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(os.fspath(path)))
        self._fd = -1
        self._pid = os.getpid()

    def __str__(self) -> str:
        return str(self.path)

    def _open(self, create: bool) -> int:
        from neuroflow.security.audit import _open_regular

        if self._pid != os.getpid():  # a forked child must not share the description
            self._fd, self._pid = -1, os.getpid()
        if self._fd < 0:
            if create:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = _open_regular(self.path, os.O_RDWR | (os.O_CREAT if create else 0))
        return self._fd

    def write(self, data: bytes) -> None:
        """Write the head over the file's start (raises ``OSError``: the writer fails closed)."""
        os.pwrite(self._open(True), data, 0)

    def read(self) -> tuple[bytes, int] | None:
        """The file's start and size; ``None`` if it does not exist."""
        try:
            fd = self._open(False)
        except FileNotFoundError:
            return None
        return os.pread(fd, READ_LIMIT, 0), os.fstat(fd).st_size

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = -1


class PostgresWitness:
    """A witness row in PostgreSQL, updated by a background thread (see the module docstring)."""

    def __init__(self, dsn: str, log: str | os.PathLike[str]) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError("security.audit.witness: a PostgreSQL witness needs psycopg: "
                              'pip install "neuroflow[postgres]"') from None
        self.dsn = dsn
        self.log = os.path.abspath(os.fspath(log))
        self._cond = threading.Condition()
        self._pending: bytes | None = None
        self._busy = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._failed = False

    def __str__(self) -> str:
        return f"{self.dsn.split('@')[-1]} (table {TABLE})"

    def _connect(self):  # type: ignore[no-untyped-def]
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        try:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (log text PRIMARY KEY, "
                         "head bytea NOT NULL, updated timestamptz NOT NULL DEFAULT now())")
        except psycopg.errors.InsufficientPrivilege:
            pass  # a role limited to writing the table: it must exist already
        return conn

    def write(self, data: bytes) -> None:
        """Hand the head to the shipping thread (never blocks on the database)."""
        with self._cond:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._ship, daemon=True,
                                                name="neuroflow-audit-witness")
                self._thread.start()
            self._pending = data
            self._cond.notify()

    def _ship(self) -> None:
        conn = None
        while True:
            with self._cond:
                while self._pending is None:
                    self._cond.wait()
                data, self._pending, self._busy = self._pending, None, True
            try:
                if conn is None:
                    conn = self._connect()
                conn.execute(f"INSERT INTO {TABLE} (log, head) VALUES (%s, %s) ON CONFLICT "
                             "(log) DO UPDATE SET head = excluded.head, updated = now()",
                             (self.log, data))
                self._failed = False
            except Exception as exc:  # noqa: BLE001 - reported, retried with the next head
                if not self._failed:
                    _log.warning("audit witness %s: cannot update: %s", self, exc)
                self._failed = True
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
                with self._cond:
                    if self._pending is None:
                        self._pending = data  # keep it for the next attempt
                    self._cond.wait(1.0)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the latest head is shipped; ``False`` if it is not within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy,
                                       timeout)

    def read(self) -> tuple[bytes, int] | None:
        """The head the database holds for this log; ``None`` if it holds none."""
        import psycopg

        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                row = conn.execute(f"SELECT substring(head from 1 for {READ_LIMIT}), "
                                   f"octet_length(head) FROM {TABLE} WHERE log = %s",
                                   (self.log,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return None
        except psycopg.Error as exc:
            raise OSError(f"cannot read the witness {self}: {exc}") from exc
        return None if row is None else (bytes(row[0]), int(row[1]))

    def close(self) -> None:
        """Ship what is pending (up to 5 s)."""
        if self._thread is not None and self._pid == os.getpid():
            self.flush()


def open_witness(spec: str | os.PathLike[str], log: str | os.PathLike[str]) -> Witness:
    """The witness ``spec`` names, for the log at ``log``."""
    text = os.fspath(spec)
    if is_dsn(text):
        return PostgresWitness(text, log)
    return FileWitness(text)


__all__ = ["FileWitness", "PostgresWitness", "Witness", "is_dsn", "open_witness"]
