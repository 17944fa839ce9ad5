"""Entry point ``console``: adds ``neuroflow console`` and its ``doctor`` checks.  Cheap to
import: Starlette, uvicorn and the OTLP messages load when the console starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from neuroflow import Check, hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow console``."""
    import click

    @cli.command("console")
    @click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
                  help="Port to listen on (0: a free one).")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to listen on; beyond loopback only with --allow-remote.")
    @click.option("--allow-remote", is_flag=True,
                  help="Allow a --host that is not loopback (anyone reaching it with the "
                       "token sees your traces, audit log and memory).")
    @click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
    @click.option("--traces", type=click.Path(dir_okay=False, path_type=Path),
                  help="JSON-lines span file to follow (default: [tracer.local] file, else "
                       ".neuroflow-demo/traces.jsonl).")
    @click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path),
                  help="Audit log to follow and verify (default: [security.audit] file, "
                       "else .neuroflow-demo/audit.log).")
    @click.option("--db", help="SQLite file the console keeps spans in "
                               "(default: ~/.local/state/neuroflow/console.sqlite3).")
    def console(port: int, host: str, allow_remote: bool, open_browser: bool,
                traces: Path | None, audit_log: Path | None, db: str | None) -> None:
        """A local web console: runs, traces, audit log, memory, sandboxes, MCP, A2A.

        Prints a URL holding a token made for this launch; requests without it, with
        another Host, or from another site are refused.  Read-only; it also receives
        OTLP/HTTP traces on /v1/traces.
        """
        from neuroflow.errors import ConfigError
        from neuroflow_console.serve import serve

        try:
            serve(host=host, port=port, db=db, traces=traces, audit_log=audit_log,
                  allow_remote=allow_remote, open_browser=open_browser,
                  echo=lambda line: click.echo(line))
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None


@hookimpl
def neuroflow_doctor_checks() -> list[Check]:
    """What ``neuroflow console`` needs: its web stack, the OTLP messages, a browser."""
    import importlib.util
    import shutil

    checks = []
    for module, what in (("starlette", "console: Starlette"), ("uvicorn", "console: uvicorn"),
                         ("sse_starlette", "console: sse-starlette"),
                         ("opentelemetry.proto", "console: OTLP receiver (opentelemetry-proto)")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        checks.append(Check(what, found, "" if found else
                            "pip install --force-reinstall neuroflow-console"))
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome",
                                              "firefox") if shutil.which(b)), None)
    checks.append(Check("console: a local web browser", browser is not None,
                        browser or "open the printed URL from another machine's browser "
                                   "through an SSH tunnel (ssh -L PORT:127.0.0.1:PORT)"))
    return checks
