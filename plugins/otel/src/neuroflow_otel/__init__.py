"""NeuroFlow's ``otel`` tracer backend: spans exported over OTLP (gRPC or HTTP), to the
console or a JSON-lines file, sampled, with ``service.name``/``service.version``, flushed
on stop and at exit; metrics on a Prometheus scrape endpoint.

Select it with ``TracingService(service_name, exporter_endpoint="http://collector:4317")``
or ``[tracer] backend = "otel"`` (options under ``[tracer.otel]``, see
:class:`~neuroflow_otel.tracer.OtelTracerConfig`).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
