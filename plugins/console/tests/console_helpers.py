"""Helpers of the console's tests: a real ``neuroflow demo`` run in a project folder, and
``neuroflow console`` started on it as users start it (a subprocess on a free loopback port).

(A module of its own, not ``conftest``: every plugin's tests have a ``conftest``, and a
name imported from "conftest" could come from another plugin's when all run together.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

#: The project's configuration: memory in SQLite (so the console can browse what the demo
#: remembered), and the demo's own trace file and audit log as the configured ones.
PROJECT_TOML = """\
[memory]
backend = "sqlite"

[memory.sqlite]
url = "sqlite:///memory.db"

[tracer.local]
file = ".neuroflow-demo/traces.jsonl"

[security.audit]
file = ".neuroflow-demo/audit.log"
"""


def run_demo(project: Path, message: str | None = None) -> dict[str, Any]:
    """Run ``neuroflow demo`` in ``project``; return what it printed, parsed by hand."""
    args = [sys.executable, "-m", "neuroflow", "demo"] + ([message] if message else [])
    done = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    trace_id = re.search(r"trace id: ([0-9a-f]{32})", out).group(1)
    calls = re.findall(r"^\s+\d+\. (\w+)\(.*\)\s+-> (\w+)", out, flags=re.M)
    return {"stdout": out, "trace_id": trace_id, "tool_calls": calls,
            "model": re.search(r"^Model: (.*?)\s{3}", out, flags=re.M).group(1)}


class Console:
    """A running ``neuroflow console``: its URL, token and an HTTP client."""

    def __init__(self, process: subprocess.Popen[str], url: str, lines: list[str]) -> None:
        self.process = process
        self.url = url
        self.lines = lines
        match = re.match(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)$", url)
        assert match, url
        self.port = int(match.group(1))
        self.token = match.group(2)
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.base, timeout=30,
                                   headers={"authorization": f"Bearer {self.token}"})

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> Any:
        """Poll ``predicate()`` until it returns something true."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {predicate}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_console(cwd: Path, *args: str) -> Console:
    """Start ``neuroflow console --port 0`` in ``cwd``; wait until it answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "neuroflow", "console", "--port", "0", *args], cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [process.stdout.readline().strip() for _ in range(6)]
    if not lines[0].startswith("http://"):
        process.kill()
        raise AssertionError("neuroflow console did not start:\n" + "\n".join(lines)
                             + process.stdout.read())
    console = Console(process, lines[0], lines)
    console.wait_for(lambda: _answers(console))
    return console


def _answers(console: Console) -> bool:
    try:
        summary = console.get("/api/summary").json()
    except httpx.HTTPError:
        return False
    # ready once the first poll of the sources is done
    return summary["audit"]["state"] != "unknown" or summary["sources"]["audit_log"] is None


