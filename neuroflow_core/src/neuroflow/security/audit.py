"""The tamper-evident audit log: append-only JSON lines, each keyed and chained.

Each line is one record::

    {"seq":7,"prev":"<mac of record 6>","time":"2026-11-26T13:05:00.123456+00:00",
     "event":"guard_decision","actor":"agent-1","action":"command","resource":"rm",
     "decision":"deny","rule":"allowlist.deny","outcome":null,"trace_id":"...",
     "pid":4242,"details":{...},"mac":"<HMAC-SHA256 of everything before ,\\"mac\\">"}

``mac`` is an HMAC-SHA256, under a key the log's readers do not need, of the record's
exact bytes without the ``mac`` field; ``prev`` is the ``mac`` of the record before it,
so editing, removing, inserting or reordering any record breaks the chain at that point
(:func:`neuroflow.security.verify.verify_audit_log` finds it).

Writers share the file safely: a ``threading.Lock`` and an ``fcntl.flock`` on
``<log>.head`` are held around "read the chain head, append one line, update the head",
so threads, tasks and several processes never interleave or fork the chain.  Each
writer caches the chain head with the file's inode and size and re-reads the file's last
line only when another writer (or a rotation) changed it.  ``<log>.head`` holds the last
sequence number and MAC (keyed), so removing records from the end is detected too.  A new
log's head is written (at seq 0) before its first record; a head missing or empty while
records exist makes writers refuse (:class:`SecurityError`) until an operator runs
``neuroflow audit reset-head`` (:meth:`AuditLogger.reset_head`), which records the reset.
Readers take the same lock shared (:func:`neuroflow.security.verify.verify_audit_log`
opens every file under it), so a log verified while it is written and rotated is seen as
one consistent chain.

Rotation by size renames ``audit.log`` to ``audit.log.1`` (``.1`` to ``.2`` ...) like
logrotate; the first record of the new file chains to the last of the old one.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import json
import os
import stat
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from json.encoder import (  # type: ignore[attr-defined]
    c_make_encoder,
    encode_basestring_ascii,
)
from pathlib import Path
from typing import Any

from neuroflow.errors import ConfigError, SecurityError
from neuroflow.security.config import DEFAULT_REDACT_KEYS, AuditConfig
from neuroflow.security.keys import resolve_key
from neuroflow.security.model import AuditEvent
from neuroflow.security.redaction import SHORT_SECRET_FLAGS, Redactor
from neuroflow.security.witness import Witness, open_witness

GENESIS = "0" * 64
#: The longest record (one line) written or read: a longer one is refused when written
#: and reported as not a record when verified, so reading a log needs bounded memory.
MAX_RECORD_BYTES = 32 * 1024 * 1024
MAC_SUFFIX_LEN = len(',"mac":"') + 64 + len('"}')
_HEAD_LEN = 20 + 1 + 64 + 1 + 20 + 1 + 64 + 1 + 64 + 1

_encoder = json.JSONEncoder(separators=(",", ":"), default=str)
# The C encoder built once (JSONEncoder.encode builds one per call).  No circular-reference
# check: what it encodes comes from Redactor.clean, a fresh tree of bounded depth.
_c_encoder = c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",", False, False,
                            True) if c_make_encoder is not None else None


def _encode(value: Any) -> str:
    if _c_encoder is None:
        return _encoder.encode(value)
    return "".join(_c_encoder(value, 0))


_quote = encode_basestring_ascii

#: Details larger than this (characters of text, roughly) are cleaned and encoded in a
#: worker thread, so a huge tool argument never blocks the event loop.
OFF_LOOP_BYTES = 64 * 1024


def is_large(value: Any, limit: int = OFF_LOOP_BYTES) -> bool:
    """Whether ``value`` holds more than about ``limit`` characters (or very many items).

    Looks at no more than a few thousand items: a value with more counts as large.
    """
    if not value:
        return False
    if type(value) is dict:  # the common case: a flat dict of short scalars and argv lists
        total = 0
        for k, v in value.items():
            kind = type(v)
            if kind is str:
                total += len(v) + len(k)
            elif kind is list or kind is tuple:
                if len(v) > 64:
                    return _walk_large(value, limit)
                for item in v:
                    if type(item) is str:
                        total += len(item)
                    elif not (item is None or type(item) in _SCALARS):
                        return _walk_large(value, limit)
            elif not (v is None or kind in _SCALARS):
                return _walk_large(value, limit)
        return total > limit
    return _walk_large(value, limit)


_SCALARS = frozenset({int, float, bool})


def _walk_large(value: Any, limit: int) -> bool:
    budget = [limit, 4096]  # characters, items

    def walk(v: Any, depth: int) -> bool:
        budget[1] -= 1
        if budget[1] < 0 or depth > 20:
            return True
        kind = type(v)
        if kind is str or kind is bytes:
            budget[0] -= len(v)
            return budget[0] < 0
        if isinstance(v, Mapping):
            return any(walk(k, depth + 1) or walk(x, depth + 1) for k, x in v.items())
        if isinstance(v, (list, tuple, set, frozenset)):
            return any(walk(x, depth + 1) for x in v)
        return False

    return walk(value, 0)


def _opt(value: str | None) -> str:
    return "null" if value is None else _quote(value)


class _Clock:
    """ISO-8601 UTC timestamps with microseconds; the seconds part is formatted once a second."""

    __slots__ = ("cached",)

    def __init__(self) -> None:
        self.cached = (-1, "")

    def now(self) -> str:
        t = time.time()
        second = int(t)
        # One tuple, read and replaced at once: with two attributes, a thread could pair
        # another thread's new seconds with its own fraction (a time a second off).
        cached_second, prefix = self.cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.cached = (second, prefix)
        return f"{prefix}.{int((t - second) * 1e6):06d}+00:00"


def mac_of(key: bytes, body: bytes) -> str:
    """The record MAC: hex HMAC-SHA256 of ``body`` under ``key``."""
    return hmac.digest(key, body, "sha256").hex()


def hmac_sha256_hex(key: bytes) -> Callable[[bytes], str]:
    """A fast ``body -> hex HMAC-SHA256(key, body)`` (RFC 2104 with the pads hashed once).

    The same result as :func:`mac_of`, about three times faster on this hot path.
    """
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    inner_copy, outer_copy = inner.copy, outer.copy

    def mac(body: bytes) -> str:
        i = inner_copy()
        i.update(body)
        o = outer_copy()
        o.update(i.digest())
        return o.hexdigest()

    return mac


def split_record(line: bytes) -> tuple[bytes, str] | None:
    """Split a line (without its newline) into (signed body, mac), or ``None`` if malformed."""
    if len(line) < MAC_SUFFIX_LEN + 2 or not line.endswith(b'"}'):
        return None
    suffix = line[-MAC_SUFFIX_LEN:]
    if not suffix.startswith(b',"mac":"'):
        return None
    mac = suffix[8:72]
    try:
        text = mac.decode("ascii")
    except UnicodeDecodeError:
        return None
    return line[:-MAC_SUFFIX_LEN] + b"}", text


def head_path(log_file: Path) -> Path:
    """The lock-and-head file of a log: ``<log>.head``."""
    return log_file.with_name(log_file.name + ".head")


def rotated_path(log_file: Path, index: int) -> Path:
    """The ``index``-th rotated file (``audit.log.1`` is the most recent)."""
    return log_file.with_name(f"{log_file.name}.{index}")


def head_signer(key: bytes) -> Callable[[bytes], str]:
    """The keyed hash of ``<log>.head``: BLAKE2b-256 under a key derived from the log key."""
    head_key = hashlib.sha256(b"neuroflow audit head\x00" + key).digest()
    blake2b = hashlib.blake2b

    def sign(data: bytes) -> str:
        return blake2b(data, key=head_key, digest_size=32).hexdigest()

    return sign


def encode_base(base_seq: int, base_prev: str) -> bytes:
    """The part of the head naming where the log starts (after pruned files)."""
    return b"%020d %s" % (base_seq, base_prev.encode())


def encode_head(sign: Callable[[bytes], str], seq: int, mac: str, base: bytes) -> bytes:
    """The fixed-length, keyed content of ``<log>.head``; ``base`` from :func:`encode_base`."""
    text = b"%020d %s %s" % (seq, mac.encode(), base)
    return text + b" " + sign(text).encode() + b"\n"


def decode_head(key: bytes, data: bytes) -> tuple[int, str, int, str] | None:
    """Parse ``<log>.head``: (last seq, last mac, pruned-through seq, its mac), or ``None``.

    Raises:
        ValueError: the content is not a head written with ``key``.
    """
    if not data:
        return None
    parts = data.decode("ascii", "replace").split()
    if len(parts) != 5:
        raise ValueError("malformed")
    text = " ".join(parts[:4]).encode()
    if not hmac.compare_digest(head_signer(key)(text), parts[4]):
        raise ValueError("its MAC does not match (edited, or written with another key)")
    return int(parts[0]), parts[1], int(parts[2]), parts[3]


_loggers: weakref.WeakSet[AuditLogger] = weakref.WeakSet()


def _after_fork() -> None:
    for logger in list(_loggers):
        logger._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class AuditLogger:
    """Writes the tamper-evident audit log.

    Args:
        output_file: the log file (an :class:`~neuroflow.security.config.AuditConfig` is
            accepted too, and then the other settings come from it).
        key: the HMAC key; default: ``key_file``, then ``$NEUROFLOW_AUDIT_KEY``, then
            ``<log>.key`` (created with mode 0600).
        key_file: a file holding the key.
        key_env: the environment variable that may hold the key.
        max_bytes: rotate before the file would grow past this; 0 never rotates.
        backups: rotated files kept (``audit.log.1`` ...); 0 keeps all.
        fsync: ``fsync`` each record (always then written from a worker thread).
        redact_keys: detail keys whose values are written as keyed digests.
        listeners: callables given each :class:`AuditEvent` after it is written; their
            errors are reported through :mod:`logging` and do not undo the record.
        witness: a file path or a PostgreSQL URL that receives a copy of ``<log>.head``
            after every record (:mod:`neuroflow.security.witness`); kept where the
            sandboxed code (and whoever may edit the log) cannot write, it lets
            ``neuroflow audit verify --witness`` catch a wiped or rewound log, and tells a
            writer starting on an empty log that records were there before.

    Example::

        logger = AuditLogger(output_file="/var/log/neuroflow/audit.log")
        await logger.log_event(event_type="command_execution", agent_id="agent-1",
                               details={"command": "python3 script.py"}, result="success")
    """

    def __init__(
        self,
        output_file: str | os.PathLike[str] | AuditConfig = ".neuroflow/audit.log",
        key: bytes | str | None = None,
        *,
        key_file: str | os.PathLike[str] | None = None,
        key_env: str | None = "NEUROFLOW_AUDIT_KEY",
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 0,
        fsync: bool = False,
        redact_keys: Sequence[str] = DEFAULT_REDACT_KEYS,
        listeners: Sequence[Callable[[AuditEvent], Any]] = (),
        witness: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(output_file, AuditConfig):
            cfg = output_file
            output_file = cfg.file
            witness = witness if witness is not None else cfg.witness
            key = key if key is not None else cfg.key
            key_file = key_file if key_file is not None else cfg.key_file
            key_env, max_bytes, backups = cfg.key_env, cfg.max_bytes, cfg.backups
            fsync, redact_keys = cfg.fsync, cfg.redact_keys
        from neuroflow.config import structure  # the one converter checks the kwargs
        from neuroflow.security.config import AuditConfig as _Check

        structure({"max_bytes": max_bytes, "backups": backups, "fsync": fsync},
                  _Check, path="AuditLogger")
        if max_bytes < 0 or backups < 0:
            raise ConfigError("AuditLogger: max_bytes and backups must be >= 0, "
                              f"got {max_bytes} and {backups}")
        self.path = Path(os.path.abspath(os.fspath(output_file)))
        self._key_arg, self._key_file, self._key_env = key, key_file, key_env
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        self._redact_keys = tuple(redact_keys)
        self.listeners: list[Callable[[AuditEvent], Any]] = list(listeners)
        self._key: bytes | None = None
        self._redactor: Redactor | None = None
        self._tlock = threading.Lock()
        self._fd = -1
        self._head_fd = -1
        #: where the head is mirrored (a file or PostgreSQL), or ``None``
        self.witness: Witness | None = (open_witness(witness, self.path) if witness
                                        else None)
        self._reset_note: dict[str, Any] | None = None
        self._ino = -1
        self._size = -1
        self._seq = 0
        self._mac = GENESIS
        self._base_text = encode_base(0, GENESIS)
        self._head_sign: Callable[[bytes], str] | None = None
        self._clock = _Clock()
        self._pid = os.getpid()
        self._sign: Callable[[bytes], str] | None = None
        self._head_checked = -1e9
        #: Seconds between checks that the open ``<log>.head`` is still the file on disk
        #: (a writer notices its head deleted within this time, and then fails closed).
        self.head_check_interval = 1.0
        _loggers.add(self)

    # --- key and redaction -------------------------------------------------------------

    @property
    def key(self) -> bytes:
        """The HMAC key (resolved, and the default key file created, on first use)."""
        if self._key is None:
            self._key = resolve_key(self.path, self._key_arg, self._key_file, self._key_env)
        return self._key

    @property
    def sign(self) -> Callable[[bytes], str]:
        """``body -> hex HMAC-SHA256`` under the log's key."""
        if self._sign is None:
            self._sign = hmac_sha256_hex(self.key)
        return self._sign

    def _make_head_sign(self) -> Callable[[bytes], str]:
        self._head_sign = head_signer(self.key)
        return self._head_sign

    def _set_base(self, base: tuple[int, str]) -> None:
        self._base_text = encode_base(*base)

    @property
    def redactor(self) -> Redactor:
        """The redactor for details, keyed like the log."""
        if self._redactor is None:
            self._redactor = Redactor(self.key, self._redact_keys)
        return self._redactor

    # --- public API --------------------------------------------------------------------

    async def log_event(
        self,
        event_type: str,
        agent_id: str,
        details: Mapping[str, Any] | None = None,
        result: str | None = None,
        *,
        resource: str | None = None,
        trace_id: str | None = None,
    ) -> int:
        """Record one event (SPEC §6) and return its sequence number.

        Args:
            event_type: what happened (``"command_execution"``).
            agent_id: who did it.
            details: further data; secrets in it are written as keyed digests.
            result: how it ended (``"success"``, ``"error"``...).
            resource: what it acted on; default: ``details["command"]``, ``["tool"]``,
                ``["path"]``, ``["resource"]`` or ``["target"]``, whichever exists.
            trace_id: the trace it belongs to.

        Raises:
            SecurityError: the record could not be written.
        """
        details = dict(details or {})
        if resource is None:
            for name in ("resource", "target", "command", "tool", "path", "host"):
                if isinstance(details.get(name), str):
                    resource = details[name]
                    break
        event = AuditEvent(event_type=event_type, actor=agent_id, action=event_type,
                           resource=resource or "", outcome=result, details=details,
                           trace_id=trace_id)
        return await self.log(event)

    async def log(self, event: AuditEvent) -> int:
        """Append ``event``; return its sequence number.

        The append is done inline when the file lock is free (a few microseconds) and
        in a worker thread when another writer holds it or ``fsync`` is on, so the
        event loop is never blocked waiting.  Details larger than
        :data:`OFF_LOOP_BYTES` are cleaned and encoded in a worker thread too.

        Raises:
            SecurityError: the record could not be written (the caller must fail closed).
        """
        if is_large(event.details) or len(event.resource) > OFF_LOOP_BYTES:
            import anyio.to_thread

            # Cancellable: a deadline ends the wait (nothing is recorded, so nothing runs).
            middle = await anyio.to_thread.run_sync(self._encode_event, event,
                                                    abandon_on_cancel=True)
        else:
            middle = self._encode_event(event)
        seq = await self._append_async(middle)
        if self.listeners:
            self._notify(event)
        return seq

    async def record(
        self,
        event_type: str,
        actor: str,
        action: str = "",
        resource: str = "",
        decision: str | None = None,
        rule: str | None = None,
        outcome: str | None = None,
        details: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> int:
        """:meth:`log` from the fields of an :class:`AuditEvent` (built only for listeners)."""
        fields = (event_type, actor, action, resource, decision, rule, outcome, details,
                  trace_id)
        if (details and is_large(details)) or len(resource) > OFF_LOOP_BYTES:
            import anyio.to_thread

            middle = await anyio.to_thread.run_sync(lambda: self._encode(*fields),
                                                    abandon_on_cancel=True)
        else:
            middle = self._encode(*fields)
        seq = await self._append_async(middle)
        if self.listeners:
            self._notify(AuditEvent(event_type, actor, action, resource, decision, rule,
                                    outcome, details or {}, trace_id))
        return seq

    def log_sync(self, event: AuditEvent) -> int:
        """Append ``event`` from synchronous code; blocks while another writer holds the lock."""
        seq = self._append(self._encode_event(event))
        if self.listeners:
            self._notify(event)
        return seq

    def record_sync(
        self,
        event_type: str,
        actor: str,
        action: str = "",
        resource: str = "",
        decision: str | None = None,
        rule: str | None = None,
        outcome: str | None = None,
        details: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> int:
        """:meth:`record` for synchronous code."""
        seq = self._append(self._encode(
            event_type, actor, action, resource, decision, rule, outcome, details, trace_id))
        if self.listeners:
            self._notify(AuditEvent(event_type, actor, action, resource, decision, rule,
                                    outcome, details or {}, trace_id))
        return seq

    async def log_many(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append several events under one lock, in order; return their sequence numbers.

        Cheaper per record than :meth:`log` (one lock, one ``write`` per file); the
        records are chained exactly as if logged one by one.
        """
        middles = [self._encode_event(e) for e in events]
        if not middles:
            return []
        import anyio.to_thread

        seqs = await anyio.to_thread.run_sync(self._append_batch, middles)
        if self.listeners:
            for event in events:
                self._notify(event)
        return seqs

    def log_many_sync(self, events: Sequence[AuditEvent]) -> list[int]:
        """:meth:`log_many` for synchronous code."""
        middles = [self._encode_event(e) for e in events]
        seqs = self._append_batch(middles) if middles else []
        if self.listeners:
            for event in events:
                self._notify(event)
        return seqs

    def _append_batch(self, middles: Sequence[str]) -> list[int]:
        self._lock()
        try:
            return self._append_batch_locked(middles)
        finally:
            self._unlock()

    async def _append_async(self, middle: str) -> int:
        if not self.fsync and self._try_lock():
            try:
                return self._append_locked(middle)
            finally:
                self._unlock()
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self._append, middle)

    def reset_head(self, reason: str, actor: str | None = None) -> int:
        """Re-anchor ``<log>.head`` at the log's last record, after a human decision.

        For a head that is missing, empty, not valid, or ahead of the log (records cut
        from the end, accepted as lost).  The records present must still chain intact
        (from the first one found).  The reset is itself appended to the log as an
        ``audit_head_reset`` record naming the previous head, the records found and
        ``reason``; its sequence number is returned.

        Raises:
            SecurityError: the chain of the records present is broken, or the log
                cannot be written.
        """
        from neuroflow.security.verify import verify_chain_unlocked

        if not reason.strip():
            raise SecurityError("reset_head: reason must say why the head is reset, got ''")
        if actor is None:
            import getpass

            actor = getpass.getuser()
        existed = head_path(self.path).exists()
        self._lock()
        try:
            try:
                data = os.pread(self._head_fd, _HEAD_LEN + 1, 0)
                old = decode_head(self.key, data)
                previous = ("missing" if not existed else "empty") if old is None else \
                    f"seq {old[0]}"
            except ValueError as exc:
                previous = f"not valid ({exc})"
            report, base = verify_chain_unlocked(self.path, self.key)
            if not report.ok:
                raise SecurityError(
                    f"audit log {self.path}: the head is not reset because the chain itself "
                    f"is broken: {report.summary()}")
            last = (_last_record(self.path, None)
                    or _last_record(rotated_path(self.path, 1), None) or base)
            self._set_base(base)
            self._seq, self._mac = last
            os.ftruncate(self._head_fd, 0)
            self._write_head()
            self._size = -1  # re-read at the next append, from the head just written
            details = {"previous_head": previous, "first_seq": report.first_seq,
                       "last_seq": report.last_seq, "records": report.records,
                       "reason": reason}
            middle = self._encode("audit_head_reset", actor, "audit_head_reset",
                                  str(head_path(self.path)), None, None, "success", details,
                                  None)
            return self._append_locked(middle)
        except OSError as exc:
            raise self._error("cannot reset the head", exc) from exc
        finally:
            self._unlock()

    def close(self) -> None:
        """Close the file descriptors (a later write reopens them); flush the witness."""
        with self._tlock:
            self._close_fds()
            if self.witness is not None:
                self.witness.close()

    # --- encoding ----------------------------------------------------------------------

    def _encode_event(self, event: AuditEvent) -> str:
        return self._encode(event.event_type, event.actor, event.action, event.resource,
                            event.decision, event.rule, event.outcome, event.details,
                            event.trace_id)

    def _encode(
        self,
        event_type: str,
        actor: str,
        action: str,
        resource: str,
        decision: str | None,
        rule: str | None,
        outcome: str | None,
        details: Mapping[str, Any] | None,
        trace_id: str | None,
    ) -> str:
        """The record as JSON without ``seq``/``prev``/``mac`` (built outside the lock)."""
        try:
            redactor = self._redactor or self.redactor
            text = _encode(redactor.clean(details)) if details else "{}"
            resource = redactor.clean_text(resource)
            return (
                f'{{"time":"{self._clock.now()}","event":{_quote(event_type)},'
                f'"actor":{_quote(actor)},"action":{_quote(action)},'
                f'"resource":{_quote(resource)},"decision":{_opt(decision)},'
                f'"rule":{_opt(rule)},"outcome":{_opt(outcome)},'
                f'"trace_id":{_opt(trace_id)},"pid":{self._pid},"details":{text}}}'
            )
        except SecurityError:
            raise
        except ConfigError as exc:  # e.g. a key that is too short
            raise SecurityError(f"audit log {self.path}: {exc}") from exc
        except Exception as exc:  # any failure to record fails closed
            raise SecurityError(f"audit log {self.path}: cannot encode the record: "
                                f"{type(exc).__name__}: {exc}") from exc

    def _notify(self, event: AuditEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # an observer must not undo the record
                import logging

                logging.getLogger("neuroflow.security.audit").exception(
                    "audit listener %r failed for a %s event", listener, event.event_type)

    # --- locking -----------------------------------------------------------------------

    def _open_head(self) -> None:
        if self._head_fd < 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._head_fd = _open_regular(head_path(self.path), os.O_RDWR | os.O_CREAT)

    def _try_lock(self) -> bool:
        if not self._tlock.acquire(blocking=False):
            return False
        try:
            if self._head_fd < 0:
                self._open_head()
            self._flock(fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            self._tlock.release()
            return False
        except OSError as exc:
            self._tlock.release()
            raise self._error("cannot lock", exc) from exc

    def _lock(self) -> None:
        self._tlock.acquire()
        try:
            if self._head_fd < 0:
                self._open_head()
            self._flock(fcntl.LOCK_EX)
        except OSError as exc:
            self._tlock.release()
            raise self._error("cannot lock", exc) from exc

    def _flock(self, flags: int) -> None:
        fcntl.flock(self._head_fd, flags)
        now = time.monotonic()
        if now < self._head_checked + self.head_check_interval:
            return  # an fstat costs about as much as the rest of the lock: not every time
        self._head_checked = now
        if os.fstat(self._head_fd).st_nlink == 0:
            # <log>.head was deleted while this writer held it open: lock (and read) the
            # file other writers and `audit verify` see instead, which then fails closed
            # as a missing head rather than this writer carrying on unnoticed.
            fcntl.flock(self._head_fd, fcntl.LOCK_UN)
            os.close(self._head_fd)
            self._head_fd = -1
            self._size = -1
            self._open_head()
            fcntl.flock(self._head_fd, flags)

    def _unlock(self) -> None:
        try:
            fcntl.flock(self._head_fd, fcntl.LOCK_UN)
        finally:
            self._tlock.release()

    def _error(self, what: str, exc: OSError) -> SecurityError:
        return SecurityError(f"audit log {self.path}: {what}: {exc.strerror or exc} "
                             "(the action is refused: nothing runs unless it is recorded)")

    # --- appending ---------------------------------------------------------------------

    def _append(self, middle: str) -> int:
        self._lock()
        try:
            return self._append_locked(middle)
        finally:
            self._unlock()

    def _current(self) -> int:
        """Make sure the fd is the current file and the cached chain head is valid; its size."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        # The inode is a safe identity: self._fd keeps the cached one open, so even when
        # rotation prunes that file, the kernel cannot give its number to a new audit.log.
        if st is None or st.st_ino != self._ino or self._fd < 0:
            self._reopen()
            st = os.fstat(self._fd)
        if st.st_size != self._size:
            self._load_head(st.st_size)
        return st.st_size

    def _write(self, data: bytes, size: int) -> None:
        """Append ``data`` to the file, which is ``size`` bytes long (the lock is held)."""
        written = os.write(self._fd, data)
        if written != len(data):
            # Cut the partial record off: a file ending in half a line would make every
            # later append (by any writer) refuse, and the half line would break the chain.
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                pass
            raise OSError(errno.EIO, f"short write ({written} of {len(data)} bytes)")
        if self.fsync:
            os.fsync(self._fd)

    def _write_head(self) -> None:
        data = encode_head(self._head_sign or self._make_head_sign(), self._seq, self._mac,
                           self._base_text)
        os.pwrite(self._head_fd, data, 0)
        if self.witness is not None:
            self.witness.write(data)

    def _read_witness(self) -> tuple[int, str, int, str] | None:
        """The head the witness last saw, or ``None`` (no witness, or an empty one)."""
        if self.witness is None:
            return None
        found = self.witness.read()
        if found is None:
            return None
        try:
            if found[1] > _HEAD_LEN + 1:
                raise ValueError(f"it is {found[1]} bytes, a head is {_HEAD_LEN}")
            return decode_head(self.key, found[0])
        except ValueError as exc:
            raise SecurityError(f"audit log {self.path}: the witness {self.witness} is not "
                                f"valid: {exc}") from None

    def _append_locked(self, middle: str) -> int:
        try:
            sign = self._sign or self.sign
            size = self._current()
            if self._reset_note is not None:
                note, self._reset_note = self._reset_note, None
                self._append_one(sign, self._encode(
                    "audit_log_reset", "neuroflow", "audit_log_reset", str(self.path), None,
                    None, "warning", note, None), size)
                size = self._size
            return self._append_one(sign, middle, size)
        except OSError as exc:
            self._size = -1
            raise self._error("cannot write", exc) from exc

    def _append_one(self, sign: Callable[[bytes], str], middle: str, size: int) -> int:
        """Chain, write and head one record (the lock is held, ``size`` is current)."""
        seq = self._seq + 1
        body = f'{{"seq":{seq},"prev":"{self._mac}",{middle[1:]}'.encode()
        mac = sign(body)
        line = body[:-1] + b',"mac":"' + mac.encode() + b'"}\n'
        _check_length(len(line))
        if self.max_bytes and size > 0 and size + len(line) > self.max_bytes:
            self._rotate()
            size = 0
        self._write(line, size)
        self._size = size + len(line)
        self._seq, self._mac = seq, mac
        self._write_head()
        return seq

    def _append_batch_locked(self, middles: Sequence[str]) -> list[int]:
        """Chain and write several records with as few ``write`` calls as rotation allows."""
        try:
            sign = self._sign or self.sign
            size = self._current()
            if self._reset_note is not None:
                note, self._reset_note = self._reset_note, None
                self._append_one(sign, self._encode(
                    "audit_log_reset", "neuroflow", "audit_log_reset", str(self.path), None,
                    None, "warning", note, None), size)
                size = self._size
            seqs: list[int] = []
            pending: list[bytes] = []
            pending_len = 0
            seq, prev = self._seq, self._mac
            for middle in middles:
                seq += 1
                body = f'{{"seq":{seq},"prev":"{prev}",{middle[1:]}'.encode()
                mac = sign(body)
                line = body[:-1] + b',"mac":"' + mac.encode() + b'"}\n'
                _check_length(len(line))
                if (self.max_bytes and size + pending_len > 0
                        and size + pending_len + len(line) > self.max_bytes):
                    if pending:
                        self._write(b"".join(pending), size)
                        self._seq, self._mac = seq - 1, prev
                        self._write_head()
                        pending, pending_len = [], 0
                    self._rotate()
                    size = 0
                pending.append(line)
                pending_len += len(line)
                seqs.append(seq)
                prev = mac
            if pending:
                self._write(b"".join(pending), size)
            self._size = size + pending_len
            self._seq, self._mac = seq, prev
            self._write_head()
            return seqs
        except OSError as exc:
            self._size = -1
            raise self._error("cannot write", exc) from exc

    def _reopen(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._fd = _open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._ino = os.fstat(self._fd).st_ino
        self._size = -1

    def _load_head(self, size: int) -> None:
        """Re-read the chain head: another writer (or a rotation) changed the file."""
        head = self._read_head_file()
        self._set_base((head[2], head[3]) if head else (0, GENESIS))
        last = _last_record(self.path, size)
        if last is None:
            last = _last_record(rotated_path(self.path, 1), None)
        if head is None and (last is not None or rotated_path(self.path, 1).exists()):
            raise SecurityError(self._headless_message())
        if head is not None and (last is None or head[0] > last[0]):
            # The head file saw later records than the file holds: records were removed.
            # Continue after the head so the gap stays visible to `audit verify`.
            last = (head[0], head[1])
        if head is None and last is None:
            self._note_reset()
        self._seq, self._mac = last if last is not None else (0, GENESIS)
        self._size = size
        if head is None:
            # A new log: anchor the head at seq 0 before the first record, so that from
            # now on the head is never empty (a crash right after the first record then
            # leaves it one behind, which is fine, not empty, which is refused).
            self._write_head()

    def _note_reset(self) -> None:
        """A new, empty chain: if records existed before (this writer's, or the witness's),
        warn and have the reset recorded as the first record of the new chain."""
        try:
            witnessed = self._read_witness()
        except OSError as exc:  # e.g. the witness database is down: say so, go on
            import logging

            logging.getLogger("neuroflow.security.audit").warning(
                "audit log %s: cannot read the witness %s: %s", self.path, self.witness, exc)
            witnessed = None
        before = max(self._seq, witnessed[0] if witnessed else 0)
        if before <= 0:
            return
        import logging

        what = (f"audit log {self.path}: the log and its head are gone or empty, but seq "
                f"{before} was written before ({'this writer' if self._seq else 'witness'}); "
                "a new chain starts, and its first record says so")
        logging.getLogger("neuroflow.security.audit").warning(what)
        self._reset_note = {"previous_seq": before, "seen_by": (
            "writer" if self._seq >= (witnessed[0] if witnessed else 0) else "witness"),
            "witness": str(self.witness) if self.witness else None}

    def _headless_message(self) -> str:
        return (f"audit log {self.path}: it holds records but {head_path(self.path)} is "
                "missing or empty, so records cut from its end could not be detected; "
                "nothing more is written until an operator decides (fail closed). Check the "
                f"chain with `neuroflow audit verify {self.path} --no-head`; if the log is "
                "complete, re-anchor the head with `neuroflow audit reset-head "
                f"{self.path} --reason TEXT` (which records the reset in the log)")

    def _read_head_file(self) -> tuple[int, str, int, str] | None:
        data = os.pread(self._head_fd, _HEAD_LEN, 0)
        try:
            return decode_head(self.key, data)
        except ValueError as exc:
            raise SecurityError(f"audit log {self.path}: {head_path(self.path)} is not valid: "
                                f"{exc}; run `neuroflow audit verify {self.path}`") from None

    def _rotate(self) -> None:
        """``log`` -> ``log.1`` -> ``log.2`` ...; the chain continues in the new file."""
        os.close(self._fd)
        self._fd = -1
        highest = 0
        while rotated_path(self.path, highest + 1).exists():
            highest += 1
        if self.backups and highest >= self.backups:
            for index in range(highest, self.backups - 1, -1):
                doomed = rotated_path(self.path, index)
                last = _last_record(doomed, None)
                if last is not None and index == self.backups:
                    self._set_base(last)
                doomed.unlink()
            highest = self.backups - 1
        for index in range(highest, 0, -1):
            os.rename(rotated_path(self.path, index), rotated_path(self.path, index + 1))
        os.rename(self.path, rotated_path(self.path, 1))
        self._reopen()

    def _close_fds(self) -> None:
        for fd in (self._fd, self._head_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._head_fd = -1
        self._ino = self._size = -1

    def _forget_after_fork(self) -> None:
        # The child must not share the parent's open file descriptions: flock locks
        # belong to them, so a shared one would not exclude the parent.  Closing the
        # child's copies leaves the parent's descriptors (and any lock it holds) alone.
        self._tlock = threading.Lock()
        for fd in (self._fd, self._head_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = self._head_fd = -1
        self._ino = self._size = -1
        self._pid = os.getpid()

    def __del__(self) -> None:
        try:
            self._close_fds()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


def _open_regular(path: Path, flags: int) -> int:
    """Open a file of the log without blocking (a FIFO would hang); refuse non-regular files."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # a FIFO without reader, a directory
            raise OSError(errno.EINVAL, f"{path} is not a regular file") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file (mode "
                          f"{stat.filemode(mode)})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_length(length: int) -> None:
    if length > MAX_RECORD_BYTES:
        raise SecurityError(f"audit log: a record of {length} bytes is longer than "
                            f"MAX_RECORD_BYTES ({MAX_RECORD_BYTES}); it is not written")


def _last_record(path: Path, size: int | None) -> tuple[int, str] | None:
    """(seq, mac) of the last record of ``path``, or ``None`` if it has none."""
    try:
        fd = _open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if size is None:
            size = os.fstat(fd).st_size
        if size == 0:
            return None
        chunk = 4096
        data = b""
        pos = size
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            data = os.pread(fd, step, pos) + data
            if data.count(b"\n") >= 2 or pos == 0:
                break
            if len(data) > MAX_RECORD_BYTES + 1:
                raise SecurityError(f"audit log {path}: its last line is longer than "
                                    f"{MAX_RECORD_BYTES} bytes; run `neuroflow audit "
                                    f"verify {path}`")
            chunk *= 2
    finally:
        os.close(fd)
    if not data.endswith(b"\n"):
        raise SecurityError(f"audit log {path}: the last record is incomplete; "
                            f"run `neuroflow audit verify {path}`")
    line = data[:-1].rsplit(b"\n", 1)[-1]
    try:
        record = json.loads(line)
        return int(record["seq"]), str(record["mac"])
    except (ValueError, KeyError, TypeError):
        raise SecurityError(f"audit log {path}: the last record is not valid; "
                            f"run `neuroflow audit verify {path}`") from None


__all__ = ["GENESIS", "SHORT_SECRET_FLAGS", "AuditLogger", "Redactor"]
