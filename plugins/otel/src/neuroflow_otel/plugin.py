"""Entry point ``otel``: registers the ``otel`` tracer backend and ``neuroflow metrics
serve``.  Cheap to import: the
OpenTelemetry SDK and its exporters load only when the backend is selected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendKind, BackendSpec, hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """The ``otel`` tracer."""
    return [
        BackendSpec(
            name="otel",
            kind=BackendKind.TRACER,
            factory="neuroflow_otel.tracer:OtelTracer",
            config_class="neuroflow_otel.tracer:OtelTracerConfig",
            description=("OpenTelemetry SDK: OTLP over gRPC/HTTP, console and file exporters, "
                         "sampling, Prometheus metrics"),
        ),
    ]


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow metrics serve``: a Prometheus scrape endpoint."""
    import click

    group = cli.commands.get("metrics")
    if not isinstance(group, click.Group):
        @cli.group("metrics")
        def group() -> None:
            """NeuroFlow's metrics (OpenTelemetry)."""

    @group.command("serve")
    @click.option("--port", default=9464, show_default=True, type=click.IntRange(0, 65535),
                  help="Port to serve /metrics on (0: a free one, printed).")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to listen on.")
    @click.option("--service-name", default="neuroflow", show_default=True,
                  help="The service.name resource (Prometheus target_info).")
    def serve(port: int, host: str, service_name: str) -> None:
        """Serve this process's metrics for Prometheus to scrape, until interrupted."""
        from neuroflow_otel.metrics import serve as run

        try:
            run(host, port, service_name=service_name,
                echo=lambda line: click.echo(line, nl=True))
        except OSError as exc:
            raise click.ClickException(str(exc)) from None
