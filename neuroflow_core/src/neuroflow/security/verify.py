"""``verify_audit_log``: check a whole audit log (rotated files included) against its key.

The first problem found is reported with the record's position across all files
(1-based), the file, the line and what is wrong:

* ``altered``: the record's bytes do not match its MAC (edited, forged, or written with
  another key), or it is not a record at all;
* ``removed``: the record sequence skips numbers here, and the missing ones appear nowhere
  (also: records missing at the end, seen through ``<log>.head``);
* ``reordered``: the record expected here appears later;
* ``inserted``: a valid record that was already seen earlier (a copied line), or one that
  does not chain to the record before it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from neuroflow.security.audit import (
    GENESIS,
    decode_head,
    head_path,
    mac_of,
    rotated_path,
    split_record,
)
from neuroflow.security.keys import resolve_key


@attrs.frozen
class Problem:
    """The first thing wrong with a log.

    Attributes:
        kind: ``"altered"``, ``"removed"``, ``"reordered"`` or ``"inserted"``.
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


def _lines(files: list[Path]) -> Iterator[tuple[Path, int, bytes]]:
    for file in files:
        with file.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                yield file, number, line


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
) -> VerifyReport:
    """Check the chain of the log at ``path`` and its rotated files.

    Args:
        path: the log file (``audit.log``; ``audit.log.1``... are found next to it).
        key: the HMAC key; default: ``key_file``, ``$NEUROFLOW_AUDIT_KEY``, ``<log>.key``.
        key_file: a file holding the key.
        key_env: the environment variable that may hold the key.

    Returns:
        a :class:`VerifyReport`; ``report.problem`` names the first bad record.
    """
    path = Path(path)
    raw_key = resolve_key(path, key, key_file, key_env, create=False)
    files = log_files(path)
    names = tuple(str(f) for f in files)
    if not any(f.exists() for f in files):
        from neuroflow.errors import ConfigError

        raise ConfigError(f"audit log {path} does not exist")
    warnings: list[str] = []
    head = None
    hfile = head_path(path)
    try:
        head = decode_head(raw_key, hfile.read_bytes()) if hfile.exists() else None
        if head is None:
            warnings.append(f"{hfile} is missing: records removed from the end (or, after "
                            "pruning, from the start) cannot be detected")
    except ValueError as exc:
        return VerifyReport(False, 0, names, 0, 0, Problem(
            "altered", 0, str(hfile), 1, 0, f"the head file is not valid: {exc}"))
    base_seq, base_prev = (head[2], head[3]) if head else (0, GENESIS)
    expect_seq, expect_prev = base_seq + 1, base_prev
    position = 0
    lines = _lines(files)
    for file, number, raw in lines:
        position += 1
        parsed = _parse(raw_key, raw)
        where = (str(file), number)
        if parsed is None:
            what = ("the line is incomplete (no newline at the end)" if not raw.endswith(b"\n")
                    else "the record does not match its MAC (edited, forged, or written "
                    "with another key)")
            return _fail(names, position - 1, base_seq, expect_seq,
                         Problem("altered", position, *where, expect_seq, what), warnings)
        seq, prev, mac = parsed
        if seq == expect_seq and prev == expect_prev:
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
    if head is not None and head[0] > last_seq:
        last_file = files[-1]
        return _fail(names, position, base_seq, expect_seq, Problem(
            "removed", position + 1, str(last_file), _count_lines(last_file) + 1, expect_seq,
            f"the log ends at seq {last_seq} but seq {head[0]} was written "
            f"({hfile}): records removed from the end"), warnings)
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


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(1 for _ in fh)
    except FileNotFoundError:
        return 0
