"""Entry point ``otel``: registers the ``otel`` tracer backend.  Cheap to import: the
OpenTelemetry SDK and its exporters load only when the backend is selected."""

from __future__ import annotations

from neuroflow import BackendKind, BackendSpec, hookimpl


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
