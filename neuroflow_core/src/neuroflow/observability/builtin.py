"""Built-in plugin ``neuroflow.observability``: registers the ``local`` and ``noop`` tracers
and the ``neuroflow trace`` commands.

Cheap to import: only names and ``"module:attr"`` references.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendSpec, hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """The built-in tracers."""
    return [
        BackendSpec(
            name="local",
            kind="tracer",
            factory="neuroflow.observability.local:LocalTracer",
            config_class="neuroflow.observability.local:LocalTracerConfig",
            description=("OpenTelemetry spans kept in memory, optionally appended to a "
                         "JSON-lines file"),
        ),
        BackendSpec(
            name="noop",
            kind="tracer",
            factory="neuroflow.observability.local:NoopTracer",
            description=("Configures nothing: spans go where the application's "
                         "OpenTelemetry setup sends them"),
        ),
    ]


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow trace``."""
    from neuroflow.observability.cli import trace_group

    cli.add_command(trace_group())
