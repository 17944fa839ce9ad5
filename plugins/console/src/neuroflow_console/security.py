"""The console's gate: a per-launch token, the ``Host`` and ``Origin`` checks, read-only.

Local dashboards have been read and driven from web pages through DNS rebinding (a
hostile name that resolves to 127.0.0.1, so the browser sends the page's requests to the
local port with a foreign ``Host``) and through cross-site requests a page may send to
``localhost``.  Every request here must:

* name an allowed ``Host`` (``127.0.0.1:PORT``, ``localhost:PORT``, ``[::1]:PORT``, or
  the address the console was explicitly bound to) -- else **403**;
* carry no cross-site ``Origin`` (and no ``Sec-Fetch-Site: cross-site``) -- else **403**;
* carry the launch token: ``Authorization: Bearer TOKEN``, ``?token=TOKEN`` or the
  cookie set when the page was opened with ``?token=`` -- else **401**;
* be ``GET``/``HEAD``, or the OTLP receiver's ``POST /v1/traces`` -- else **405**.

Responses carry a strict Content-Security-Policy (scripts and styles only from the
console itself) and forbid framing.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

#: Requests that write: only the OTLP receiver.
WRITE_PATHS = {"/v1/traces"}


def allowed_hosts(port: int, bound: str) -> set[str]:
    """The ``Host`` values the console answers to when listening on ``bound:port``: the
    loopback names, the bound address, and for a wildcard bind (``0.0.0.0``, ``::``) this
    machine's name and addresses -- never a name someone else's DNS points here."""
    import socket

    names = {"127.0.0.1", "localhost", "[::1]"}
    if bound in ("0.0.0.0", "::"):
        hostname = socket.gethostname()
        names |= {hostname.lower(), socket.getfqdn().lower()}
        try:
            names |= {info[4][0] for info in socket.getaddrinfo(hostname, None)}
        except OSError:
            pass
        names |= set(_interface_addresses())
    elif bound not in ("localhost",):
        names.add(bound.strip("[]"))
    return {f"[{n.strip('[]')}]:{port}" if ":" in n.strip("[]") else f"{n}:{port}"
            for n in names}


def _interface_addresses() -> list[str]:
    """This machine's IPv4 addresses as the kernel routes from them (no extra library)."""
    import socket

    found = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent; picks the source
        found.append(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    return found


def cookie_name(port: int) -> str:
    """The token cookie's name: per port, since cookies are not scoped by port."""
    return f"neuroflow_console_{port}"


class ConsoleGate:
    """ASGI middleware enforcing the rules in this module's docstring.

    Args:
        app: the application behind the gate.
        token: the launch token.
        hosts: the allowed ``Host`` header values (see :func:`allowed_hosts`); read on each
            request, so it may be filled in once the port is known.
        port: the port, for the cookie's name.
    """

    def __init__(self, app: ASGIApp, token: str, hosts: Iterable[str], port: int) -> None:
        self.app = app
        self.token = token
        self.hosts = set(hosts)
        self.port = port

    def _token_ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(),
                                                             self.token.encode())

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host.lower() not in self.hosts:
            await _plain(send, 403, "forbidden: unexpected Host header "
                                    "(use the URL the console printed)")
            return
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in {f"http://{h}" for h in self.hosts}:
            await _plain(send, 403, "forbidden: cross-site request")
            return
        if headers.get("sec-fetch-site") == "cross-site":
            await _plain(send, 403, "forbidden: cross-site request")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_query = query.get("token", [None])[0]
        auth = headers.get("authorization", "")
        from_header = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no token
            cookies = SimpleCookie()
        morsel = cookies.get(cookie_name(self.port))
        from_cookie = morsel.value if morsel is not None else None
        if not any(self._token_ok(t) for t in (from_header, from_query, from_cookie)):
            await _plain(send, 401, "unauthorized: open the URL with the token that "
                                    "`neuroflow console` printed")
            return
        method = scope["method"]
        if method not in ("GET", "HEAD") and not (method == "POST"
                                                  and scope["path"] in WRITE_PATHS):
            await _plain(send, 405, "method not allowed: the console is read-only")
            return
        set_cookie = self._token_ok(from_query) and not self._token_ok(from_cookie)

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if set_cookie:
                    extra.append((b"set-cookie", (
                        f"{cookie_name(self.port)}={self.token}; Path=/; HttpOnly; "
                        "SameSite=Strict").encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _plain(send: Any, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
