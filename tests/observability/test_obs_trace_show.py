"""``neuroflow trace show FILE`` renders a recorded JSON-lines trace as a tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio

from neuroflow.observability import TracingService


def _show(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neuroflow", "trace", "show", *args],
                          capture_output=True, text=True, timeout=120)


def test_a_recorded_trace_is_shown_as_a_tree_with_durations(tmp_path: Path) -> None:
    target = tmp_path / "traces.jsonl"
    tracing = TracingService("svc", config={"file": str(target)})
    with tracing.span("request") as root, tracing.span("step", attributes={"n": 1}):
        pass
    try:
        with tracing.span("failing"):
            raise ValueError("bad")
    except ValueError:
        pass
    anyio.run(tracing.stop)

    proc = _show(str(target))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"trace {root.trace_id}"
    assert lines[1].startswith("  request  ") and lines[1].split()[2] == "ms"
    assert lines[2].startswith("    step  ") and lines[2].endswith("n=1")
    assert lines[3].startswith("trace ") and "[error: ValueError: bad]" in lines[4]
    only = _show(str(target), "--trace-id", root.trace_id).stdout.splitlines()
    assert only == lines[:3]


def test_a_file_that_is_not_a_trace_is_reported_by_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"trace_id": "a", "span_id": "b", "name": "x"}\nnot json\n')
    proc = _show(str(bad))
    assert proc.returncode != 0
    assert f"{bad}:2: not a JSON span record" in proc.stderr
