"""``neuroflow trace show FILE``: a recorded trace as a tree with durations, in the terminal.

FILE is a JSON-lines span file (``[tracer.local] file``, or the ``otel`` backend's ``file``
exporter).
"""

from __future__ import annotations

from pathlib import Path

import click


def trace_group() -> click.Group:
    """The ``neuroflow trace`` command group."""

    @click.group("trace")
    def trace() -> None:
        """Look at recorded traces."""

    @trace.command("show")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--trace-id", default=None, metavar="ID", help="Only this trace (32 hex).")
    def show(file: Path, trace_id: str | None) -> None:
        """Render the spans of FILE as trees, one per trace, with durations."""
        from neuroflow.errors import ConfigError
        from neuroflow.observability.local import format_spans, read_spans

        try:
            records = read_spans(file)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        if trace_id is not None:
            records = [r for r in records if r["trace_id"] == trace_id]
            if not records:
                raise click.ClickException(f"--trace-id: no span of trace {trace_id} in {file}")
        click.echo(format_spans(records) if records else f"{file}: no spans")

    return trace
