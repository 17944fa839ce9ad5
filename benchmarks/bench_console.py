"""``neuroflow console``: span ingest cost and how fast a large trace is on screen.

1. **Ingest of 100,000 spans** from a JSON-lines trace file (the format of
   ``[tracer.local] file``) into the console's SQLite store: reading, parsing, building
   rows, inserting with the indexes and updating the per-trace summaries.  Anchor, in the
   same run: raw ``sqlite3`` writing the same rows (already built) into the same table
   with the same indexes, batch for batch.  The two alternate; medians are printed.
2. **Time until a 5,000-span trace is shown** in headless Chromium (Debian's
   ``chromium``, driven by playwright): from navigating to the trace's address to the
   waterfall being drawn (its first levels; the rest load when opened).  Anchor, same
   browser: a static HTML page holding the same 5,000 spans as one table, from a file.

    python benchmarks/bench_console.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def make_spans(count: int, per_trace: int, seed: int = 7) -> list[dict]:
    """Span records shaped like NeuroFlow's: an agent root, model and tool children, a
    sandbox and a memory span under some tools."""
    rnd = random.Random(seed)
    spans = []
    start = 1_790_000_000_000_000_000
    while len(spans) < count:
        trace_id = f"{rnd.getrandbits(128):032x}"
        root = f"{rnd.getrandbits(64):016x}"
        t0 = start + len(spans) * 1_000_000
        spans.append(_span(trace_id, root, None, "invoke_agent researcher", t0,
                           t0 + per_trace * 100_000,
                           {"gen_ai.operation.name": "invoke_agent",
                            "gen_ai.agent.name": "researcher"}))
        parents = [root]
        for i in range(1, per_trace):
            if len(spans) >= count:
                break
            parent = rnd.choice(parents[-20:])
            span_id = f"{rnd.getrandbits(64):016x}"
            kind = i % 4
            name, attrs = [
                ("chat", {"gen_ai.operation.name": "chat", "gen_ai.response.model": "m1",
                          "gen_ai.usage.input_tokens": 120}),
                ("execute_tool search", {"gen_ai.operation.name": "execute_tool",
                                         "gen_ai.tool.name": "search",
                                         "neuroflow.guard.decision": "allow",
                                         "neuroflow.audit.seq": i}),
                ("execute_sandbox python3", {"neuroflow.sandbox.backend": "process",
                                             "neuroflow.sandbox.command": "python3",
                                             "process.exit.code": 0,
                                             "neuroflow.sandbox.reason": "exited"}),
                ("store_memory", {"neuroflow.memory.agent_id": "researcher",
                                  "neuroflow.memory.key": f"k{i}"}),
            ][kind]
            begin = t0 + i * 90_000
            spans.append(_span(trace_id, span_id, parent, name, begin, begin + 50_000, attrs))
            if kind == 1:
                parents.append(span_id)
    return spans


def _span(trace_id: str, span_id: str, parent: str | None, name: str, start: int, end: int,
          attrs: dict) -> dict:
    return {"trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": name,
            "kind": "internal", "service": "researcher", "scope": "neuroflow",
            "start_time": "", "end_time": "", "start_time_unix_nano": start,
            "end_time_unix_nano": end, "duration_ms": (end - start) / 1e6,
            "attributes": attrs, "status": {"code": "unset", "description": None},
            "events": []}


def ingest_console(path: Path, db: Path) -> float:
    from neuroflow_console.sources import TraceFileReader
    from neuroflow_console.store import SpanStore

    store = SpanStore(db)
    start = time.perf_counter()
    TraceFileReader(path, store).poll()
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def ingest_raw(batches: list[list[tuple]], db: Path) -> float:
    from neuroflow_console.records import COLUMNS
    from neuroflow_console.store import SCHEMA

    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(SCHEMA)
    insert = (f"INSERT INTO spans ({', '.join(COLUMNS)}) "
              f"VALUES ({', '.join('?' for _ in COLUMNS)})")
    start = time.perf_counter()
    for rows in batches:
        con.execute("BEGIN")
        con.executemany(insert, rows)
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def bench_ingest(count: int, rounds: int) -> None:
    from neuroflow_console.records import rows_from_lines
    from neuroflow_console.sources import CHUNK_BYTES

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "spans.jsonl"
        data = "".join(json.dumps(s, separators=(",", ":")) + "\n"
                       for s in make_spans(count, per_trace=100)).encode()
        path.write_bytes(data)
        # the same batches the reader makes (one per CHUNK_BYTES of whole lines)
        batches, offset = [], 0
        while offset < len(data):
            chunk = data[offset:offset + CHUNK_BYTES]
            end = chunk.rfind(b"\n") + 1
            batches.append(rows_from_lines(chunk[:end])[0])
            offset += end
        parse = []
        ours, raw = [], []
        for n in range(rounds):
            start = time.perf_counter()
            for i in range(0, len(data), CHUNK_BYTES):
                rows_from_lines(data[i:i + CHUNK_BYTES])
            parse.append(time.perf_counter() - start)
            ours.append(ingest_console(path, folder / f"console-{n}.db"))
            raw.append(ingest_raw(batches, folder / f"raw-{n}.db"))
        o, r, p = (statistics.median(x) / count * 1e6 for x in (ours, raw, parse))
        print(f"ingest of {count:,} spans from the trace file (median of {rounds}):")
        print(f"  console (read, parse, rows, insert, summaries): {o:7.2f} µs/span  "
              f"({statistics.median(ours):.2f} s)")
        print(f"  anchor: raw sqlite3 insert of the same rows:     {r:7.2f} µs/span  "
              f"({statistics.median(raw):.2f} s)")
        print(f"  ratio: {o / r:.2f}x   (of which JSON parsing and row building: "
              f"{p:.2f} µs/span)")


def bench_browser(spans_in_trace: int, rounds: int) -> None:
    if not Path(CHROMIUM).exists():
        print("browser: skipped (no /usr/bin/chromium: apt-get install -y chromium)")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spans = make_spans(spans_in_trace, per_trace=spans_in_trace)
        trace_id = spans[0]["trace_id"]
        path = folder / "spans.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in spans))
        static = folder / "static.html"
        rows = "".join(f"<tr><td>{s['name']}</td><td>{s['span_id']}</td>"
                       f"<td>{s['duration_ms']:.3f} ms</td></tr>" for s in spans)
        static.write_text(f"<!doctype html><html><body><table>{rows}</table>"
                          "<p id=done>done</p></body></html>")
        process = subprocess.Popen(
            [sys.executable, "-m", "neuroflow", "console", "--port", "0", "--db",
             str(folder / "c.db"), "--traces", str(path)], cwd=folder,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            url = process.stdout.readline().strip()
            base = url.split("/?")[0]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                context = browser.new_context()
                page = context.new_page()
                page.goto(url)  # sets the token cookie
                deadline = time.monotonic() + 120
                while True:
                    counts = page.evaluate(
                        "fetch('/api/summary').then(r => r.json()).then(s => s.counts.spans)")
                    if counts >= spans_in_trace or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                console_times, static_times, shown = [], [], 0
                for _ in range(rounds):
                    fresh = context.new_page()
                    start = time.perf_counter()
                    fresh.goto(f"{base}/#/trace/{trace_id}")
                    fresh.wait_for_selector(".wf[data-ready=true]", timeout=120_000)
                    console_times.append(time.perf_counter() - start)
                    shown = fresh.locator(".wf-row").count()
                    fresh.close()
                    fresh = context.new_page()
                    start = time.perf_counter()
                    fresh.goto(static.as_uri())
                    fresh.wait_for_selector("#done")
                    static_times.append(time.perf_counter() - start)
                    fresh.close()
                browser.close()
        finally:
            process.terminate()
            process.wait(10)
        c, s = statistics.median(console_times) * 1e3, statistics.median(static_times) * 1e3
        print(f"time until a {spans_in_trace:,}-span trace is shown (median of {rounds}):")
        print(f"  console: waterfall drawn ({shown} rows open; the rest load on click): "
              f"{c:7.1f} ms")
        print(f"  anchor: a static page with all {spans_in_trace:,} spans as one table:  "
              f"{s:7.1f} ms")
        print(f"  ratio: {c / s:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer spans and repetitions")
    args = parser.parse_args()
    bench_ingest(20_000 if args.quick else 100_000, 1 if args.quick else 3)
    bench_browser(5_000, 2 if args.quick else 5)


if __name__ == "__main__":
    main()
