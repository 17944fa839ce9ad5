"""A local Ray cluster for trying the ``remote`` backend on one machine.

``neuroflow cluster up`` starts a head node (and ``--workers`` more nodes) with
``ray start --block``, each in its own process group, all on 127.0.0.1, with token
authentication on and a fresh random token kept in ``<state dir>/auth_token`` (mode 0600).
No dashboard.  Ray's own RPC servers listen on every interface whatever the node
address (Ray has no setting for it): the token is what guards them.
``down`` signals exactly the process groups ``up`` recorded.  The state directory
(``~/.neuroflow/cluster`` by default) holds ``cluster.json`` and the token.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from neuroflow.errors import SandboxError
from neuroflow_sandbox_remote.config import DEFAULT_PORT

STATE_FILE = "cluster.json"
#: Each node's object store: results (two capped output streams) pass through it.
OBJECT_STORE_BYTES = 256 * 1024 * 1024
TOKEN_FILE = "auth_token"


def default_state_dir() -> Path:
    """``~/.neuroflow/cluster``."""
    return Path.home() / ".neuroflow" / "cluster"


def _ray_command() -> list[str]:
    found = shutil.which("ray", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "ray.scripts.scripts"]


@attrs.define
class LocalCluster:
    """The processes of a local cluster started by :func:`up`."""

    state_dir: Path
    address: str
    token_file: Path
    host: str = "127.0.0.1"
    pgids: list[int] = attrs.field(factory=list)
    started_at: float = 0.0
    #: Variables added to every node's environment (``NEUROFLOW_*`` settings the nodes'
    #: runners read, e.g. where their tracer writes spans).
    extra_env: dict[str, str] = attrs.field(factory=dict)

    def environment(self) -> dict[str, str]:
        """The environment every node of this cluster (and each caller) runs with."""
        env = dict(os.environ)
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_file),
                   RAY_USAGE_STATS_ENABLED="0")
        env.pop("RAY_AUTH_TOKEN", None)
        env.update(self.extra_env)
        return env

    def _start(self, arguments: list[str], wait_for: str, timeout: float) -> int:
        log_path = self.state_dir / f"node-{len(self.pgids)}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [*_ray_command(), "start", "--block", "--disable-usage-stats",
                 f"--node-ip-address={self.host}", "--num-cpus=1",
                 # Requests and results are small: no need for Ray's default object
                 # store (30% of memory, in /dev/shm).
                 f"--object-store-memory={OBJECT_STORE_BYTES}", *arguments],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.environment(), start_new_session=True)
        self.pgids.append(proc.pid)
        self.save()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SandboxError(f"ray start exited with {proc.returncode}: see {log_path}")
            if wait_for in log_path.read_text(errors="replace"):
                return proc.pid
            time.sleep(0.2)
        raise SandboxError(f"ray start did not come up within {timeout:g} s: see {log_path}")

    def start_head(self, timeout: float = 120.0) -> None:
        """Start the head node (GCS on ``address``)."""
        port = self.address.rpartition(":")[2]
        self._start(["--head", f"--port={port}", "--include-dashboard=false"],
                    "Ray runtime started", timeout)

    def add_node(self, timeout: float = 120.0) -> int:
        """Start one more node joining the head; its process group id."""
        return self._start([f"--address={self.address}"], "Ray runtime started", timeout)

    def kill_node(self, pgid: int, sig: int = signal.SIGKILL) -> None:
        """Signal one node's process group (tests kill a node this way)."""
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        if pgid in self.pgids:
            self.pgids.remove(pgid)
            self.save()

    def down(self, grace: float = 15.0) -> None:
        """Stop every node (``SIGTERM``, then ``SIGKILL`` after ``grace`` seconds)."""
        for pgid in reversed(self.pgids):
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_group_alive(p) for p in self.pgids):
            time.sleep(0.2)
        for pgid in self.pgids:
            _signal_group(pgid, signal.SIGKILL)
        self.pgids = []
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)

    def save(self) -> None:
        """Write ``cluster.json``."""
        data = {"address": self.address, "token_file": str(self.token_file),
                "host": self.host, "pgids": self.pgids, "started_at": self.started_at}
        (self.state_dir / STATE_FILE).write_text(json.dumps(data))


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def up(state_dir: Path | None = None, port: int = DEFAULT_PORT, workers: int = 0,
       timeout: float = 120.0, extra_env: dict[str, str] | None = None) -> LocalCluster:
    """Start a local cluster: a head node on ``127.0.0.1:port`` and ``workers`` more
    (``extra_env``: variables added to every node's environment)."""
    state_dir = Path(state_dir or default_state_dir())
    existing = load(state_dir)
    if existing is not None and any(_group_alive(p) for p in existing.pgids):
        raise SandboxError(f"a cluster is already up at {existing.address} "
                           f"(state in {state_dir}); `neuroflow cluster down` first")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_file = state_dir / TOKEN_FILE
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    cluster = LocalCluster(state_dir, f"127.0.0.1:{port}", token_file,
                           started_at=time.time(), extra_env=dict(extra_env or {}))
    try:
        cluster.start_head(timeout)
        for _ in range(workers):
            cluster.add_node(timeout)
    except BaseException:
        cluster.down(grace=5)
        raise
    return cluster


def load(state_dir: Path | None = None) -> LocalCluster | None:
    """The cluster ``up`` recorded in ``state_dir``, or ``None``."""
    state_dir = Path(state_dir or default_state_dir())
    try:
        data: dict[str, Any] = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return LocalCluster(state_dir, data["address"], Path(data["token_file"]),
                        data.get("host", "127.0.0.1"), list(data.get("pgids", [])),
                        data.get("started_at", 0.0))
