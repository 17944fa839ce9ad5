"""The session cluster's fixed coordinates, importable by the test modules (a module
name of its own: every plugin's tests folder has a ``conftest``)."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: Fixed for the session, so test classes can name the cluster in a config class variable.
STATE_DIR = Path(tempfile.mkdtemp(prefix="nf-remote-"))
PORT = _free_port()
NODE_SPANS = STATE_DIR / "node-spans.jsonl"
