"""SPEC §5's logger prints JSON lines even when the application configured no logging."""

from __future__ import annotations

import json
import subprocess
import sys

SPEC_LOGGING = """
from neuroflow.observability import StructuredLogger
logger = StructuredLogger("neuroflow")
logger.info("Request received", request_id="123", method="GET")
try:
    raise ValueError("boom")
except ValueError as e:
    logger.error("Request failed", exc_info=e, request_id="123")
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)


def test_without_logging_configured_records_are_json_lines_on_stderr() -> None:
    lines = [json.loads(line) for line in _run(SPEC_LOGGING).stderr.splitlines()]
    assert [(r["level"], r["message"], r["fields"]["request_id"]) for r in lines] == [
        ("INFO", "Request received", "123"), ("ERROR", "Request failed", "123")]
    assert lines[1]["exception"]["type"] == "ValueError"


def test_an_application_handler_takes_over_and_nothing_is_written_twice() -> None:
    err = _run("import logging; logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
               + SPEC_LOGGING).stderr
    assert err.splitlines()[:2] == ["Request received", "Request failed"]
    assert "{" not in err.splitlines()[0]
