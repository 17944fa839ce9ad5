"""The plugin's hooks as users meet them: ``neuroflow plugins``, ``doctor`` and ``console``'s
choice of sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def neuroflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neuroflow", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_plugin_is_listed_and_adds_the_console_command() -> None:
    listed = json.loads(neuroflow("plugins", "--json").stdout)
    plugins = listed if isinstance(listed, list) else listed.get("plugins", [])
    console = next(p for p in plugins if p["name"] == "console")
    assert console["status"] == "loaded"
    help_text = neuroflow("console", "--help").stdout
    for option in ("--port", "--host", "--allow-remote", "--open", "--traces", "--audit-log"):
        assert option in help_text


def test_doctor_reports_the_console_s_needs() -> None:
    report = json.loads(neuroflow("doctor", "--json").stdout)
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("console: Starlette", "console: uvicorn", "console: sse-starlette",
                 "console: OTLP receiver (opentelemetry-proto)"):
        assert checks[name]["ok"] is True, checks[name]
    assert "console: a local web browser" in checks


def test_without_options_the_configured_files_are_followed(tmp_path: Path) -> None:
    (tmp_path / "neuroflow.toml").write_text(
        '[tracer.local]\nfile = "spans/t.jsonl"\n[security.audit]\nfile = "logs/a.log"\n')
    code = ("from neuroflow_console.serve import pick_sources; "
            "t, a, s = pick_sources(None, None); print(t); print(a); print(s is not None)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=True)
    traces, audit, configured = done.stdout.split()
    assert traces == str(tmp_path / "spans" / "t.jsonl")
    assert audit == str(tmp_path / "logs" / "a.log")
    assert configured == "True"  # its key file and witness are used to verify it
