"""Attacks on the console: no or a wrong token, DNS rebinding (a foreign ``Host``), a
cross-site page, writes, binding beyond loopback, and another local user."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from console_helpers import Console, start_console

#: An unprivileged identity with no account: what another local user can do.
UID = 59_998


def raw(console: Console, path: str = "/api/runs", *, token: str | None = "good",
        **headers: str) -> httpx.Response:
    """A request with exactly these headers (the fixture's client adds the token)."""
    sent = dict(headers)
    if token == "good":
        sent["authorization"] = f"Bearer {console.token}"
    elif token is not None:
        sent["authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=console.base, timeout=10) as client:
        return client.get(path, headers=sent)


def test_no_token_or_a_wrong_one_is_401(console: Console) -> None:
    for path in ["/", "/api/runs", "/api/summary", "/api/events", "/static/app.js",
                 "/api/memory", "/api/traces/" + "0" * 32 + "/export"]:
        assert raw(console, path, token=None).status_code == 401, path
    last = "y" if console.token.endswith("x") else "x"  # a token differing in its last character
    assert raw(console, token=console.token[:-1] + last).status_code == 401
    assert raw(console, token="x" * len(console.token)).status_code == 401
    with httpx.Client(base_url=console.base) as client:
        assert client.get("/api/runs", params={"token": "nope"}).status_code == 401
        assert client.get("/api/runs", headers={
            "cookie": f"neuroflow_console_{console.port}=nope"}).status_code == 401
        assert client.post("/v1/traces", content=b"").status_code == 401
    assert raw(console).status_code == 200


def test_the_launch_url_sets_a_strict_cookie_and_drops_the_token(console: Console) -> None:
    with httpx.Client(base_url=console.base) as client:
        first = client.get(console.url)
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = client.get("/")  # the cookie alone now
        assert page.status_code == 200 and "<script type=\"module\"" in page.text
        assert client.get("/api/runs").status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"


def test_a_foreign_host_is_403_even_with_the_token(console: Console) -> None:
    # DNS rebinding: evil.example resolves to 127.0.0.1; the browser sends its Host
    for host in [f"evil.example:{console.port}", "127.0.0.1", f"127.0.0.1:{console.port + 1}",
                 f"localhost.evil.example:{console.port}"]:
        response = raw(console, host=host)
        assert response.status_code == 403, host
    for host in [f"127.0.0.1:{console.port}", f"localhost:{console.port}"]:
        assert raw(console, host=host).status_code == 200


def test_a_cross_site_origin_is_403_even_with_the_token(console: Console) -> None:
    for origin in ["http://evil.example", "null", f"http://127.0.0.1:{console.port + 1}",
                   f"https://127.0.0.1:{console.port}"]:
        assert raw(console, origin=origin).status_code == 403, origin
    assert raw(console, **{"sec-fetch-site": "cross-site"}).status_code == 403
    assert raw(console, origin=f"http://127.0.0.1:{console.port}").status_code == 200
    # an OTLP post from a page of another site, token or not
    with httpx.Client(base_url=console.base) as client:
        response = client.post("/v1/traces", content=b"", headers={
            "origin": "http://evil.example", "authorization": f"Bearer {console.token}",
            "content-type": "application/x-protobuf"})
        assert response.status_code == 403


def test_the_console_is_read_only(console: Console) -> None:
    with httpx.Client(base_url=console.base, headers={
            "authorization": f"Bearer {console.token}"}) as client:
        for method in ["POST", "PUT", "DELETE", "PATCH"]:
            for path in ["/api/runs", "/api/memory/researcher", "/api/audit", "/"]:
                assert client.request(method, path).status_code == 405, (method, path)


def test_binding_beyond_loopback_needs_the_explicit_flag(project: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "neuroflow", "console", "--host", "0.0.0.0",
                           "--port", "0", "--db", str(tmp_path / "c.db")], cwd=project,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "--allow-remote" in done.stderr and "0.0.0.0" in done.stderr
    assert not (tmp_path / "c.db").exists()  # refused before anything was opened
    console = start_console(project, "--host", "0.0.0.0", "--allow-remote", "--db",
                            str(tmp_path / "c.db"))
    try:
        assert raw(console).status_code == 200
        assert raw(console, token=None).status_code == 401
        address = _outbound_address()
        if address is not None:  # reachable by this machine's address, with its Host
            with httpx.Client(base_url=f"http://{address}:{console.port}", timeout=10) as c:
                auth = {"authorization": f"Bearer {console.token}"}
                assert c.get("/api/runs", headers=auth).status_code == 200
                assert c.get("/api/runs", headers={
                    **auth, "host": f"evil.example:{console.port}"}).status_code == 403
    finally:
        console.stop()


def test_the_default_bind_is_loopback_only(console: Console) -> None:
    addresses = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None,
                                                     socket.AF_INET)} - {"127.0.0.1"}
    addresses |= {_outbound_address()} - {None, "127.0.0.1"}
    if not addresses:
        pytest.skip("this machine has no address besides loopback")
    for address in addresses:
        with pytest.raises(OSError):
            socket.create_connection((address, console.port), timeout=2).close()


def _outbound_address() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
        return probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()


CHECKS = r"""
import json, sys, urllib.request, urllib.error
port, db, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
out = {}
try:
    open(db, "rb").read(16)
    out["db"] = "read"
except PermissionError:
    out["db"] = "denied"
try:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=5)
    out["http"] = 200
except urllib.error.HTTPError as exc:
    out["http"] = exc.code
out["cmdline"] = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
try:
    out["environ"] = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
except PermissionError:
    out["environ"] = "denied"
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another local user")
def test_another_local_user_gets_neither_data_nor_token(project: Path) -> None:
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="console-shared-", dir="/tmp"))
    shared.chmod(0o755)  # a folder everyone may enter: only the file's mode protects it
    db = shared / "console.sqlite3"
    console = start_console(project, "--db", str(db))
    try:
        done = subprocess.run(
            ["/usr/bin/python3", "-I", "-c", CHECKS, str(console.port), str(db),
             str(console.process.pid)], user=UID, group=UID, extra_groups=[],
            capture_output=True, text=True, timeout=60, check=False, cwd="/")
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert seen["db"] == "denied"
        assert seen["http"] == 401
        assert console.token not in seen["cmdline"]
        assert seen["environ"] == "denied"
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{db}{suffix}")
            if path.exists():
                assert path.stat().st_mode & 0o077 == 0, path
    finally:
        console.stop()
        shutil.rmtree(shared)
