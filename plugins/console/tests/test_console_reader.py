"""The trace-file reader on its own: partial lines, oversized lines, replaced files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroflow_console import sources
from neuroflow_console.sources import TraceFileReader
from neuroflow_console.store import SpanStore


def line(n: int, pad: int = 0) -> str:
    record = {"trace_id": f"{1:032x}", "span_id": f"{n + 1:016x}", "parent_span_id": None,
              "name": f"span {n}", "start_time_unix_nano": 1000 + n,
              "end_time_unix_nano": 2000 + n, "attributes": {"pad": "x" * pad}}
    return json.dumps(record) + "\n"


def test_a_line_longer_than_a_chunk_is_skipped_and_reading_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "CHUNK_BYTES", 1024)
    path = tmp_path / "t.jsonl"
    path.write_text(line(0) + line(1, pad=5000) + line(2))
    store = SpanStore(tmp_path / "db")
    reader = TraceFileReader(path, store)
    reader.poll()
    names = [s["name"] for s in store.all_spans(f"{1:032x}")]
    assert names == ["span 0", "span 2"]
    assert any("longer than 1024 bytes" in p for p in reader.problems)


def test_an_unfinished_long_line_waits_and_a_replaced_file_is_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "CHUNK_BYTES", 1024)
    path = tmp_path / "t.jsonl"
    long = line(1, pad=5000)
    path.write_text(line(0) + long[:3000])
    store = SpanStore(tmp_path / "db")
    reader = TraceFileReader(path, store)
    reader.poll()
    assert store.counts()["spans"] == 1
    with path.open("a") as fh:
        fh.write(long[3000:] + line(2))
    reader.poll()
    assert store.counts()["spans"] == 2  # the long one skipped once complete, then span 2
    replacement = tmp_path / "new.jsonl"
    replacement.write_text(line(3))
    replacement.replace(path)  # another inode, smaller: read from its start
    reader.poll()
    assert store.counts()["spans"] == 3


def test_the_audit_log_is_read_a_chunk_per_poll_to_its_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroflow_console.sources import AuditReader

    monkeypatch.setattr(sources, "CHUNK_BYTES", 256)
    log = tmp_path / "audit.log"
    records = [{"seq": n, "event": "guard_decision", "resource": "r" * 40}
               for n in range(1, 41)]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    store = SpanStore(tmp_path / "db")
    reader = AuditReader(log, store)
    for _ in range(100):
        reader.poll()
        if store.counts()["audit"] == len(records):
            break
    assert [r["seq"] for r in store.audit(limit=100)] == list(range(40, 0, -1))
    assert reader.verdict["state"] == "unavailable"  # no key for this hand-made log
