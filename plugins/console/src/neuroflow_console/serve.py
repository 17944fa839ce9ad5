"""``neuroflow console``: pick the sources, bind loopback, print the URL, serve."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neuroflow.errors import ConfigError

#: Where ``neuroflow demo`` writes, used when the configuration names no files.
DEMO_DIR = Path(".neuroflow-demo")


def default_db() -> Path:
    """``~/.local/state/neuroflow/console.sqlite3`` (or under ``$XDG_STATE_HOME``)."""
    import os

    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "neuroflow" / "console.sqlite3"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def pick_sources(traces: Path | None, audit_log: Path | None
                 ) -> tuple[Path | None, Path | None, Any]:
    """The trace file, the audit log and ``[security.audit]`` if the log is the configured
    one: the options given, else the configuration's, else ``neuroflow demo``'s files."""
    from neuroflow import get_config
    from neuroflow_console.sources import audit_settings

    if traces is None:
        configured = None
        try:
            local = get_config().options("tracer", "local")
            configured = getattr(local, "file", None)
        except Exception:  # noqa: BLE001 - an invalid [tracer] leaves the demo's file
            configured = None
        demo = DEMO_DIR / "traces.jsonl"
        traces = Path(configured) if configured else (demo if demo.exists() else None)
    settings = audit_settings()
    if audit_log is None:
        configured_log = Path(settings.file) if settings is not None else None
        demo_log = DEMO_DIR / "audit.log"
        if configured_log is not None and configured_log.exists():
            audit_log = configured_log
        elif demo_log.exists():
            audit_log = demo_log
        else:
            audit_log = configured_log
    same = (settings is not None and audit_log is not None
            and Path(settings.file).resolve() == audit_log.resolve())
    return (None if traces is None else traces.resolve(),
            None if audit_log is None else audit_log.resolve(), settings if same else None)


def serve(*, host: str = "127.0.0.1", port: int = 0, db: str | None = None,
          traces: Path | None = None, audit_log: Path | None = None,
          allow_remote: bool = False, open_browser: bool = False,
          poll_seconds: float = 0.5, echo: Callable[[str], None] = print) -> None:
    """Serve the console until interrupted.

    The first line printed is the URL to open (it holds the launch token).

    Raises:
        ConfigError: ``host`` is not loopback and ``allow_remote`` is false, or the port
            cannot be bound.
    """
    import uvicorn

    from neuroflow_console.app import Settings, build_app

    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"--host: {host!r} is not a loopback address; the console shows "
                          "your traces, audit log and memory to whoever reaches it -- pass "
                          "--allow-remote to bind beyond loopback")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--port: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    bound_port = sock.getsockname()[1]
    traces_path, audit_path, audit_cfg = pick_sources(traces, audit_log)
    token = secrets.token_urlsafe(24)
    database = db if db is not None else str(default_db())
    settings = Settings(db=database, token=token, port=bound_port, host=host,
                        traces=traces_path, audit_log=audit_path, audit_settings=audit_cfg,
                        poll_seconds=poll_seconds)
    app = build_app(settings)
    shown = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    url = f"http://{shown}:{bound_port}/?token={token}"
    echo(url)
    echo(f"  traces:    {traces_path or '(none: give --traces FILE)'}")
    echo(f"  audit log: {audit_path or '(none: give --audit-log FILE)'}")
    echo(f"  database:  {database}")
    echo(f"  OTLP/HTTP: http://{shown}:{bound_port}/v1/traces  "
         f"(header Authorization: Bearer {token})")
    echo("  read-only; Ctrl-C stops it")
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
