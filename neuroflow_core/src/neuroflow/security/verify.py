"""``verify_audit_log``: check a whole audit log (rotated files included) against its key.

The first problem found is reported with the record's position across all files
(1-based), the file, the line and what is wrong:

* ``altered``: the record's bytes do not match its MAC (edited, forged, or written with
  another key), or it is not a record at all;
* ``removed``: the record sequence skips numbers here, and the missing ones appear nowhere
  (also: records missing at the end, seen through ``<log>.head``);
* ``reordered``: the record expected here appears later;
* ``inserted``: a valid record that was already seen earlier (a copied line), or one that
  does not chain to the record before it;
* ``head-missing``: the log holds records but ``<log>.head`` is missing or empty, so
  records cut from the end cannot be ruled out (``require_head=False`` /
  ``neuroflow audit verify --no-head`` checks the chain alone and only warns);
* ``bad-file``: the head or a log file is not a regular file (a FIFO, a directory, a
  device), or the head is far larger than a head can be;
* ``rewound``: the log ends before the sequence number its witness saw (see
  :mod:`neuroflow.security.witness`).

Any file is survived with bounded memory: files are opened without blocking and must be
regular files, the head is read up to its fixed size, and log lines are streamed, a
line longer than :data:`MAX_RECORD_BYTES` being reported (``altered``) without reading on.

A log that is being written (and rotated) while it is verified is read as one consistent
snapshot: under a shared ``flock`` on ``<log>.head`` (writers hold it exclusively around
"rotate, append, update the head") the head is read and every file is opened and its size
taken; the lock is then released and the files are read through those descriptors, up to
those sizes, so writers wait only for the few ``open`` calls, and a rotation or pruning
that happens meanwhile changes nothing that is read.
"""

from __future__ import annotations

import errno
import fcntl
import hmac
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from neuroflow.security.audit import (
    _HEAD_LEN,
    GENESIS,
    MAX_RECORD_BYTES,
    decode_head,
    head_path,
    mac_of,
    rotated_path,
    split_record,
)
from neuroflow.security.keys import resolve_key

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symlink"}


class NotRegularFile(OSError):
    """A file of the log that is not a regular file."""


def open_regular(path: Path) -> int:
    """Open ``path`` read-only without blocking (a FIFO would hang); refuse non-regular files.

    Raises:
        FileNotFoundError: it does not exist.
        NotRegularFile: it is a FIFO, a directory, a device or a socket.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise NotRegularFile(f"{path} is {kind}, not a regular file")
    return fd


@attrs.frozen
class Problem:
    """The first thing wrong with a log.

    Attributes:
        kind: ``"altered"``, ``"removed"``, ``"reordered"``, ``"inserted"`` or
            ``"head-missing"``.
        record: the 1-based position of the offending record across all files, oldest first.
        file: the file holding it.
        line: its line number in that file.
        seq: the sequence number expected at that position.
        message: what is wrong, in words.
    """

    kind: str
    record: int
    file: str
    line: int
    seq: int
    message: str


@attrs.frozen
class VerifyReport:
    """The result of :func:`verify_audit_log`.

    Attributes:
        ok: no problem found.
        records: records read (up to the problem, if any).
        files: the files checked, oldest first.
        first_seq: the sequence number the log starts at (> 1 after old files were pruned).
        last_seq: the last valid sequence number seen.
        problem: the first problem, or ``None``.
        warnings: things that are not tampering but limit what could be checked.
    """

    ok: bool
    records: int
    files: tuple[str, ...]
    first_seq: int
    last_seq: int
    problem: Problem | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return attrs.asdict(self)

    def summary(self) -> str:
        """One human line (plus the problem, if any)."""
        files = ", ".join(self.files)
        if self.ok:
            return (f"ok: {self.records} records, seq {self.first_seq}..{self.last_seq}, "
                    f"chain intact ({files})")
        p = self.problem
        assert p is not None
        if p.kind == "head-missing":
            return f"UNVERIFIED END: {p.message}"
        if p.kind == "bad-file":
            return f"TAMPERED: {p.message}"
        return (f"TAMPERED: record {p.record} ({p.file}, line {p.line}) is {p.kind}: "
                f"{p.message}")


def log_files(path: Path) -> list[Path]:
    """The files of a log, oldest first: ``log.N`` ... ``log.1``, ``log``."""
    found = []
    index = 1
    while rotated_path(path, index).exists():
        found.append(rotated_path(path, index))
        index += 1
    found.reverse()
    if path.exists() or not found:
        found.append(path)
    return found


_CHUNK = 1 << 20


class Oversized(bytes):
    """The start of a line longer than :data:`MAX_RECORD_BYTES` (the rest is not read)."""


@attrs.frozen
class _Part:
    """One file of a snapshot: a descriptor and the size it had (``fd`` -1: open by name)."""

    file: Path
    fd: int
    size: int


class _Snapshot:
    """The head and the files of a log as they were at one instant (see the module docstring).

    If the process runs out of descriptors while opening the files, the shared lock is kept
    until :meth:`close` and the files are read by name, one at a time (writers then wait for
    the whole verification).
    """

    def __init__(self, path: Path, lock: bool = True) -> None:
        self.head: bytes | None = None
        self.head_size = 0
        self.parts: list[_Part] = []
        #: (file, message) when a file of the log is not a regular file
        self.bad: tuple[str, str] | None = None
        self._lock_fd = -1
        self._locking = lock
        try:
            self._take(path)
        except BaseException:
            self.close()
            raise

    def _take(self, path: Path) -> None:
        try:
            self._lock_fd = open_regular(head_path(path))
        except FileNotFoundError:
            pass  # no writer has run here; read the files as they are
        except NotRegularFile as exc:
            self.bad = (str(head_path(path)), str(exc))
            return
        if self._lock_fd >= 0:
            if self._locking:
                fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
            self.head_size = os.fstat(self._lock_fd).st_size
            # bounded: a head has a fixed size, a huge (or sparse) one is not read whole
            self.head = os.pread(self._lock_fd, _HEAD_LEN + 1, 0)
        for file in log_files(path):
            try:
                fd = open_regular(file)
            except FileNotFoundError:
                continue  # only possible without a head file (no lock to hold)
            except NotRegularFile as exc:
                self.bad = (str(file), str(exc))
                break
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE) or self._lock_fd < 0:
                    raise
                self._read_by_name(path)
                return
            self.parts.append(_Part(file, fd, os.fstat(fd).st_size))
        if self._lock_fd >= 0 and self._locking:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _read_by_name(self, path: Path) -> None:
        """Out of descriptors: keep the shared lock and read every file by name, one at a time."""
        for part in self.parts:
            os.close(part.fd)
        self.parts = [_Part(file, -1, -1) for file in log_files(path)]


    def lines(self) -> Iterator[tuple[Path, int, bytes]]:
        """Every line of every file, oldest first: (file, 1-based line number, bytes)."""
        for part in self.parts:
            for number, line in enumerate(_part_lines(part), 1):
                yield part.file, number, line

    def count_lines(self, part: _Part) -> int:
        """How many lines ``part`` holds (a last line without a newline counts)."""
        return sum(1 for _ in _part_lines(part))

    def close(self) -> None:
        """Close every descriptor (and so release the lock if it is still held)."""
        for part in self.parts:
            if part.fd >= 0:
                os.close(part.fd)
        self.parts = []
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _part_lines(part: _Part) -> Iterator[bytes]:
    """The lines of ``part`` (each with its newline, the last one perhaps without)."""
    if part.fd >= 0:
        yield from _fd_lines(part.fd, part.size)
        return
    try:
        fd = open_regular(part.file)
    except (FileNotFoundError, NotRegularFile):
        return
    try:
        yield from _fd_lines(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _fd_lines(fd: int, size: int, limit: int | None = None) -> Iterator[bytes]:
    """The lines in the first ``size`` bytes of ``fd`` (read with ``pread``: no shared offset).

    A line longer than ``limit`` (default :data:`MAX_RECORD_BYTES`) is given as an
    :class:`Oversized` start and ends the reading of this file: memory stays bounded.
    """
    limit = MAX_RECORD_BYTES if limit is None else limit
    pos = 0
    pending: list[bytes] = []
    pending_len = 0
    while pos < size:
        chunk = os.pread(fd, min(_CHUNK, size - pos), pos)
        if not chunk:
            break
        pos += len(chunk)
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if lines:
            if pending:
                pending.append(lines[0])
                lines[0] = b"".join(pending)
                pending, pending_len = [], 0
            for line in lines:
                if len(line) > limit:
                    yield Oversized(line[:200])
                    return
                yield line + b"\n"
        if tail:
            pending.append(tail)
            pending_len += len(tail)
            if pending_len > limit:
                yield Oversized(b"".join(pending)[:200])
                return
    if pending:
        yield b"".join(pending)


def _parse(key: bytes, raw: bytes) -> tuple[int, str, str] | None:
    """(seq, prev, mac) of a valid record line, or ``None``."""
    if not raw.endswith(b"\n"):
        return None
    parts = split_record(raw[:-1])
    if parts is None:
        return None
    body, mac = parts
    if not hmac.compare_digest(mac_of(key, body), mac):
        return None
    try:
        record = json.loads(body)
        return int(record["seq"]), str(record["prev"]), mac
    except (ValueError, KeyError, TypeError):
        return None


def verify_audit_log(
    path: str | Path,
    key: bytes | str | None = None,
    *,
    key_file: str | Path | None = None,
    key_env: str | None = "NEUROFLOW_AUDIT_KEY",
    require_head: bool = True,
    witness: str | Path | None = None,
) -> VerifyReport:
    """Check the chain of the log at ``path`` and its rotated files.

    Args:
        path: the log file (``audit.log``; ``audit.log.1``... are found next to it).
        key: the HMAC key; default: ``key_file``, ``$NEUROFLOW_AUDIT_KEY``, ``<log>.key``.
        key_file: a file holding the key.
        key_env: the environment variable that may hold the key.
        require_head: a log holding records without a (non-empty) ``<log>.head`` is a
            ``head-missing`` problem; ``False`` only adds a warning.
        witness: the log's witness, a file or a PostgreSQL URL
            (``[security.audit] witness``): a log that ends
            before the record the witness saw, or holds another record there, is
            ``rewound`` (wiped, truncated with its head, or replaced by an older copy).

    Returns:
        a :class:`VerifyReport`; ``report.problem`` names the first bad record.
    """
    path = Path(path)
    if witness is None:
        # Before the key: a log that does not exist is the news, not a missing key.
        probe = _Snapshot(path)
        try:
            if probe.bad is None:
                _check_exists(path, probe)
        finally:
            probe.close()
    raw_key = resolve_key(path, key, key_file, key_env, create=False)
    seen = (_read_witness(os.fspath(witness), path, raw_key) if witness is not None
            else None)
    if isinstance(seen, VerifyReport):
        return seen
    snapshot = _Snapshot(path)
    try:
        if seen is not None and not snapshot.parts and snapshot.bad is None and seen[0] > 0:
            return VerifyReport(False, 0, (str(path),), 0, 0, Problem(
                "rewound", 1, str(path), 1, 1, f"the log does not exist, but its witness "
                f"{witness} saw seq {seen[0]}: the log was wiped"))
        report = _verify(path, raw_key, snapshot, require_head, witnessed=seen)
    finally:
        snapshot.close()
    return report


def _read_witness(spec: str, log: Path, key: bytes) -> tuple[int, str] | VerifyReport | None:
    """(seq, mac) the witness saw; a failed report if it is not a valid witness."""
    from neuroflow.security.witness import open_witness

    witness = open_witness(spec, log)

    def bad(message: str) -> VerifyReport:
        return VerifyReport(False, 0, (str(witness),), 0, 0,
                            Problem("bad-file", 0, str(witness), 0, 0, message))

    try:
        found = witness.read()
    except NotRegularFile as exc:
        return bad(f"the witness: {exc}")
    except OSError as exc:
        if "not a regular file" in str(exc):
            return bad(f"the witness {witness} is not a regular file")
        raise
    finally:
        witness.close()
    if found is None:
        return bad(f"the witness {witness} does not exist (or holds no head for this log)")
    data, size = found
    try:
        if size > _HEAD_LEN + 1:
            raise ValueError(f"it is {size} bytes, a head is {_HEAD_LEN}")
        head = decode_head(key, data[:_HEAD_LEN + 1])
    except ValueError as exc:
        return bad(f"the witness {witness} is not valid: {exc}")
    return None if head is None else (head[0], head[1])


def _check_exists(path: Path, snapshot: _Snapshot) -> None:
    """Raise ``ConfigError`` naming ``path`` when neither it nor a rotated file exists."""
    if not snapshot.parts:
        from neuroflow.errors import ConfigError

        raise ConfigError(f"audit log {path} does not exist: nothing to verify")


def verify_chain_unlocked(path: Path, key: bytes) -> tuple[VerifyReport, tuple[int, str]]:
    """The chain of the records present, ignoring the head: (report, (base seq, base prev)).

    The base is taken from the first record found (so a pruned log verifies).  For
    :meth:`neuroflow.security.audit.AuditLogger.reset_head`, whose caller already holds
    the head lock exclusively (so no lock is taken here).
    """
    snapshot = _Snapshot(path, lock=False)
    try:
        base = (0, GENESIS)
        for _file, _number, raw in snapshot.lines():
            parsed = _parse(key, raw)
            if parsed is not None:
                base = (parsed[0] - 1, parsed[1])
            break
        return _verify(path, key, snapshot, False, base), base
    finally:
        snapshot.close()


def _verify(path: Path, raw_key: bytes, snapshot: _Snapshot, require_head: bool = True,
            base: tuple[int, str] | None = None,
            witnessed: tuple[int, str] | None = None) -> VerifyReport:
    parts = snapshot.parts
    names = tuple(str(p.file) for p in parts) or (str(path),)
    if snapshot.bad is not None:
        file, message = snapshot.bad
        return VerifyReport(False, 0, names, 0, 0, Problem("bad-file", 0, file, 0, 0, message))
    _check_exists(path, snapshot)
    warnings: list[str] = []
    head = None
    hfile = head_path(path)
    if base is not None:
        head = None
    else:
        try:
            if snapshot.head_size > _HEAD_LEN + 1:
                raise ValueError(f"it is {snapshot.head_size} bytes, a head is {_HEAD_LEN}")
            head = decode_head(raw_key, snapshot.head) if snapshot.head is not None else None
        except ValueError as exc:
            return VerifyReport(False, 0, names, 0, 0, Problem(
                "altered", 0, str(hfile), 1, 0, f"the head file is not valid: {exc}"))
        if head is None and not require_head:
            warnings.append(f"{hfile} is missing or empty: records removed from the end (or, "
                            "after pruning, from the start) cannot be detected")
    base_seq, base_prev = base or ((head[2], head[3]) if head else (0, GENESIS))
    expect_seq, expect_prev = base_seq + 1, base_prev
    position = 0
    lines = snapshot.lines()
    for file, number, raw in lines:
        position += 1
        parsed = _parse(raw_key, raw)
        where = (str(file), number)
        if parsed is None:
            what = ("the line is incomplete (no newline at the end)" if not raw.endswith(b"\n")
                    else "the record does not match its MAC (edited, forged, or written "
                    "with another key)")
            if isinstance(raw, Oversized):
                what = (f"the line is longer than {MAX_RECORD_BYTES} bytes, the longest a "
                        "record may be: not a record (the rest of the file is not read)")
            return _fail(names, position - 1, base_seq, expect_seq,
                         Problem("altered", position, *where, expect_seq, what), warnings)
        seq, prev, mac = parsed
        if seq == expect_seq and prev == expect_prev:
            if witnessed is not None and seq == witnessed[0] and mac != witnessed[1]:
                return _fail(names, position - 1, base_seq, expect_seq, Problem(
                    "rewound", position, *where, expect_seq, f"record seq {seq} is not the "
                    "one the witness saw: the log was replaced (by an older or forged "
                    "copy)"), warnings)
            expect_seq, expect_prev = seq + 1, mac
            continue
        if seq < expect_seq:
            problem = Problem("inserted", position, *where, expect_seq,
                              f"a copy of record seq {seq} appears again where seq "
                              f"{expect_seq} was expected")
        elif seq > expect_seq:
            later = _find_later(raw_key, lines, expect_seq, position)
            if later is not None:
                problem = Problem("reordered", position, *where, expect_seq,
                                  f"record seq {seq} is here, but seq {expect_seq} "
                                  f"(expected here) appears later, at record {later}")
            else:
                missing = (f"seq {expect_seq}" if seq == expect_seq + 1
                           else f"seq {expect_seq}..{seq - 1}")
                problem = Problem("removed", position, *where, expect_seq,
                                  f"{missing} missing before this record (seq {seq})")
        else:
            problem = Problem("inserted", position, *where, expect_seq,
                              f"record seq {seq} does not chain to the record before it "
                              "(its prev is not that record's MAC)")
        return _fail(names, position - 1, base_seq, expect_seq, problem, warnings)
    last_seq = expect_seq - 1
    if witnessed is not None and witnessed[0] > last_seq:
        last = parts[-1]
        return _fail(names, position, base_seq, expect_seq, Problem(
            "rewound", position + 1, str(last.file), snapshot.count_lines(last) + 1,
            expect_seq, f"the log ends at seq {last_seq} but its witness saw seq "
            f"{witnessed[0]}: the log was wiped or rewound"), warnings)
    if head is not None and head[0] > last_seq:
        last = parts[-1]
        return _fail(names, position, base_seq, expect_seq, Problem(
            "removed", position + 1, str(last.file), snapshot.count_lines(last) + 1,
            expect_seq, f"the log ends at seq {last_seq} but seq {head[0]} was written "
            f"({hfile}): records removed from the end"), warnings)
    if head is None and base is None and require_head and position > 0:
        state = "missing" if snapshot.head is None else "empty"
        return _fail(names, position, base_seq, expect_seq, Problem(
            "head-missing", position, str(hfile), 1, expect_seq,
            f"{hfile} is {state} but the log holds {position} records (seq "
            f"{base_seq + 1}..{last_seq}): records cut from the end cannot be ruled out. "
            f"`neuroflow audit verify {path} --no-head` checks the chain alone; after "
            f"deciding the log is complete, `neuroflow audit reset-head {path} --reason "
            "TEXT` re-anchors the head (and records that it did)"), warnings)
    return VerifyReport(True, position, names, base_seq + 1, last_seq, None, tuple(warnings))


def _fail(names: tuple[str, ...], records: int, base_seq: int, expect_seq: int,
          problem: Problem, warnings: list[str]) -> VerifyReport:
    return VerifyReport(False, records, names, base_seq + 1, expect_seq - 1, problem,
                        tuple(warnings))


def _find_later(key: bytes, lines: Iterator[tuple[Path, int, bytes]], seq: int,
                position: int) -> int | None:
    for offset, (_file, _number, raw) in enumerate(lines, 1):
        parsed = _parse(key, raw)
        if parsed is not None and parsed[0] == seq:
            return position + offset
    return None
