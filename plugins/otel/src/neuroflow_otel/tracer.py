"""The ``otel`` tracer backend: the OpenTelemetry SDK configured from ``[tracer.otel]``.

::

    [tracer]
    backend = "otel"
    [tracer.otel]
    endpoint = "http://localhost:4317"   # OTLP collector (Jaeger, Tempo, the Collector...)
    protocol = "auto"                    # "grpc", "http/protobuf"; auto: gRPC on port 4317
    exporters = ["otlp"]                 # and/or "console", "file"
    file = "spans.jsonl"                 # for "file"
    sampling_ratio = 1.0
    service_version = "1.2.3"
    prometheus_port = 9464               # serve metrics for Prometheus to scrape
    logs = true                          # export `logging` records over OTLP too
    metrics = true                       # export MetricsCollector's series over OTLP too

If the application already configured an SDK ``TracerProvider``, the exporters are added to
it (its resource and sampler stay); otherwise one is installed with ``service.name``,
``service.version`` and a parent-based ratio sampler.
"""

from __future__ import annotations

import atexit
import sys
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from neuroflow.config import file_relative
from neuroflow.errors import ConfigError
from neuroflow.observability import (
    LocalSpanExporter,
    add_span_processor,
    remove_span_processor,
)

_EXPORTERS = ("otlp", "console", "file")
_PROTOCOLS = ("auto", "grpc", "http/protobuf")


def _ratio(_instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{attribute.name}: expected a number from 0 to 1, got {value!r}")


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(_instance: object, attribute: attrs.Attribute, value: Any) -> None:
        values = value if isinstance(value, tuple | list) else (value,)
        for item in values:
            if item not in choices:
                raise ConfigError(
                    f"{attribute.name}: expected one of {', '.join(choices)}, got {item!r}")
    return check


def _port(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and not 0 <= value <= 65535:
        raise ConfigError(f"{attribute.name}: expected a TCP port 0..65535, got {value!r}")


@attrs.frozen
class OtelTracerConfig:
    """``[tracer.otel]``: options of the ``otel`` tracer backend.

    Attributes:
        endpoint: the OTLP collector URL (``exporter_endpoint`` of ``TracingService``).
        protocol: ``"grpc"``, ``"http/protobuf"`` or ``"auto"`` (gRPC on port 4317,
            else OTLP/HTTP, which posts to ``<endpoint>/v1/traces``).
        exporters: which of ``otlp``, ``console``, ``file`` receive spans.
        file: the JSON-lines file of the ``file`` exporter.
        sampling_ratio: the share of new traces recorded (children follow their parent).
        service_name: ``service.name``; filled in by ``TracingService``.
        service_version: ``service.version`` (left out if empty).
        headers: extra OTLP request headers (an API key...).
        timeout_seconds: how long one export may take.
        batch: export in the background in batches (``False``: each span as it ends).
        prometheus_port: serve the process's metrics for Prometheus on this port
            (0: any free port); ``None``: no endpoint.
        prometheus_host: the address the Prometheus endpoint listens on.
        logs: export ``logging`` records of ``logs_logger`` over OTLP too (the
            OpenTelemetry logs bridge), stamped with the current trace and span ids.
        logs_logger: the ``logging`` logger whose records are exported (``""``: all).
        metrics: export the process's OpenTelemetry metrics (``MetricsCollector``'s
            included) over OTLP every ``metrics_interval_seconds`` and on stop.
        metrics_interval_seconds: how often metrics are exported over OTLP.
    """

    endpoint: str | None = None
    protocol: str = attrs.field(default="auto", validator=_one_of(_PROTOCOLS))
    exporters: tuple[str, ...] = attrs.field(default=("otlp",), converter=tuple,
                                             validator=_one_of(_EXPORTERS))
    file: Path | None = file_relative(default=None)
    sampling_ratio: float = attrs.field(default=1.0, validator=_ratio)
    service_name: str = "neuroflow"
    service_version: str = ""
    headers: dict[str, str] = attrs.field(factory=dict)
    timeout_seconds: float = 10.0
    batch: bool = True
    prometheus_port: int | None = attrs.field(default=None, validator=_port)
    prometheus_host: str = "127.0.0.1"
    logs: bool = False
    logs_logger: str = "neuroflow"
    metrics: bool = False
    metrics_interval_seconds: float = 60.0

    def resolved_protocol(self) -> str:
        """``grpc`` or ``http/protobuf``: what ``"auto"`` means for this endpoint."""
        if self.protocol != "auto":
            return self.protocol
        port = urlsplit(self.endpoint or "").port
        return "grpc" if port == 4317 else "http/protobuf"


def _otlp_exporter(config: OtelTracerConfig) -> SpanExporter:
    if config.resolved_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = config.endpoint
        insecure = endpoint is not None and endpoint.startswith("http://")
        return OTLPSpanExporter(endpoint=endpoint, insecure=insecure,
                                headers=dict(config.headers) or None,
                                timeout=config.timeout_seconds)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    endpoint = config.endpoint
    if endpoint is not None and not urlsplit(endpoint).path.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return HttpSpanExporter(endpoint=endpoint, headers=dict(config.headers) or None,
                            timeout=config.timeout_seconds)


def build_exporters(config: OtelTracerConfig) -> list[SpanExporter]:
    """The span exporters ``config`` asks for."""
    exporters: list[SpanExporter] = []
    for name in config.exporters:
        if name == "otlp":
            exporters.append(_otlp_exporter(config))
        elif name == "console":
            exporters.append(ConsoleSpanExporter(out=sys.stdout))
        elif config.file is None:
            raise ConfigError('tracer.otel.file: the "file" exporter needs a file path')
        else:
            exporters.append(LocalSpanExporter(1, config.file, config.service_name,
                                               field="tracer.otel.file"))
    return exporters


def _flush_at_exit(ref: weakref.ref[OtelTracer]) -> None:
    tracer = ref()
    if tracer is not None and tracer.processor is not None:
        tracer.processor.force_flush()
    if tracer is not None and tracer.logs is not None:
        tracer.logs.flush()
    if tracer is not None and tracer.metrics is not None:
        tracer.metrics.flush()


class OtelTracer:
    """The ``otel`` tracer backend (see the module docstring).

    Args:
        config: its options.
    """

    name = "otel"

    def __init__(self, config: OtelTracerConfig | None = None) -> None:
        self.config = config if config is not None else OtelTracerConfig()
        self.provider: TracerProvider | None = None
        self.processor: SpanProcessor | None = None
        self.metrics: Any = None
        self.logs: Any = None
        self._attach()
        atexit.register(_flush_at_exit, weakref.ref(self))

    @property
    def resource(self) -> Resource:
        """``service.name`` and ``service.version`` (used if this backend installs the
        provider)."""
        attributes = {"service.name": self.config.service_name}
        if self.config.service_version:
            attributes["service.version"] = self.config.service_version
        return Resource.create(attributes)

    def _attach(self) -> None:
        if self.processor is None:
            processors = SynchronousMultiSpanProcessor()
            for exporter in build_exporters(self.config):
                processors.add_span_processor(
                    BatchSpanProcessor(exporter) if self.config.batch
                    else SimpleSpanProcessor(exporter))
            self.processor = processors
        sampler = ParentBased(TraceIdRatioBased(self.config.sampling_ratio))
        self.provider = add_span_processor(self, self.processor, resource=self.resource,
                                           sampler=sampler)

    async def start(self) -> None:
        """Receive spans (again, after a stop); serve Prometheus metrics and export logs if
        configured."""
        self._attach()
        if self.config.logs and self.logs is None:
            from neuroflow_otel.logs import LogsBridge

            self.logs = LogsBridge(endpoint=self.config.endpoint,
                                   protocol=self.config.resolved_protocol(),
                                   headers=dict(self.config.headers),
                                   timeout=self.config.timeout_seconds,
                                   resource=self.resource, logger=self.config.logs_logger)
        config = self.config
        if (config.prometheus_port is not None or config.metrics) and self.metrics is None:
            from neuroflow_otel.metrics import MetricsSetup

            self.metrics = MetricsSetup(
                self.resource,
                prometheus=None if config.prometheus_port is None
                else (config.prometheus_host, config.prometheus_port),
                otlp=(config.endpoint, config.resolved_protocol(), dict(config.headers),
                      config.timeout_seconds) if config.metrics else None,
                interval_seconds=config.metrics_interval_seconds)

    async def stop(self) -> None:
        """Export every span (and log record and metric) so far, stop receiving spans,
        close the exporters and the Prometheus endpoint."""
        remove_span_processor(self)
        processor, self.processor = self.processor, None
        if processor is not None:
            processor.force_flush()
            processor.shutdown()
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        if self.logs is not None:
            self.logs.close()
            self.logs = None

    def force_flush(self) -> bool:
        """Export every span finished so far now."""
        return self.processor is None or self.processor.force_flush()
