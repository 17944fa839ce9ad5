"""The process's OpenTelemetry metrics: a Prometheus scrape endpoint and OTLP export.

``MetricsCollector`` (and any OpenTelemetry-instrumented code) records on the global
``MeterProvider``.  :class:`MetricsSetup` installs one whose readers are a
``PrometheusMetricReader`` (served by ``prometheus_client`` over HTTP) and/or a periodic
OTLP exporter -- unless the application installed its own, which is then kept.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

log = logging.getLogger("neuroflow_otel")
_lock = threading.Lock()
_installed: list[MeterProvider] = []


def _otlp_metric_exporter(endpoint: str | None, protocol: str, headers: dict[str, str],
                          timeout: float) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        insecure = endpoint is not None and endpoint.startswith("http://")
        return OTLPMetricExporter(endpoint=endpoint, insecure=insecure,
                                  headers=headers or None, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    if endpoint is not None:
        endpoint = endpoint.rstrip("/").removesuffix("/v1/traces") + "/v1/metrics"
    return HttpMetricExporter(endpoint=endpoint, headers=headers or None, timeout=timeout)


class MetricsSetup:
    """The meter provider's readers and the Prometheus endpoint of one ``otel`` backend.

    Args:
        resource: ``service.name``/``service.version``.
        prometheus: ``(host, port)`` to serve ``/metrics`` on (port 0: a free one), or None.
        otlp: ``(endpoint, protocol, headers, timeout)`` to export to, or None.
        interval_seconds: how often OTLP metrics are exported.
    """

    def __init__(self, resource: Resource, *, prometheus: tuple[str, int] | None,
                 otlp: tuple[str | None, str, dict[str, str], float] | None,
                 interval_seconds: float) -> None:
        readers: list[MetricReader] = []
        self.otlp_reader: PeriodicExportingMetricReader | None = None
        if otlp is not None:
            self.otlp_reader = PeriodicExportingMetricReader(
                _otlp_metric_exporter(*otlp), export_interval_millis=interval_seconds * 1000)
            readers.append(self.otlp_reader)
        if prometheus is not None:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader

            readers.append(PrometheusMetricReader())
        self.installed = self._install(resource, readers)
        self._server: Any = None
        self.host, self.port = "", 0
        if prometheus is not None:
            from prometheus_client import start_http_server

            self._server, _thread = start_http_server(prometheus[1], addr=prometheus[0])
            self.host, self.port = prometheus[0], self._server.server_port

    @staticmethod
    def _install(resource: Resource, readers: list[MetricReader]) -> bool:
        with _lock:
            current = metrics.get_meter_provider()
            if _installed or isinstance(current, MeterProvider):
                log.warning("a MeterProvider is already installed; it is kept, and its readers "
                            "decide where metrics go")
                return False
            provider = MeterProvider(resource=resource, metric_readers=readers)
            metrics.set_meter_provider(provider)
            _installed.append(provider)
            return True

    @property
    def url(self) -> str:
        """The Prometheus scrape URL (empty without the endpoint)."""
        return f"http://{self.host}:{self.port}/metrics" if self._server is not None else ""

    def flush(self) -> None:
        """Export the OTLP metrics now."""
        if self.otlp_reader is not None and self.installed:
            self.otlp_reader.force_flush()

    def close(self) -> None:
        """Export the OTLP metrics and stop serving Prometheus."""
        self.flush()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def serve(host: str, port: int, *, service_name: str = "neuroflow",
          echo: Any = print, stop: threading.Event | None = None) -> None:
    """Serve this process's metrics for Prometheus on ``host:port`` (port 0: a free one)
    until interrupted (Ctrl-C, SIGTERM) or ``stop`` is set: ``neuroflow metrics serve``.

    Installs a ``MeterProvider`` with a ``PrometheusMetricReader``, so the built-in
    metrics (:data:`neuroflow.observability.metrics.OPERATIONS` and the rest) and every
    ``MetricsCollector`` series recorded in this process appear there, with the Python
    process's own metrics.

    Raises:
        OSError: the port cannot be bound (the message names it).
    """
    import signal

    from opentelemetry.sdk.resources import Resource

    from neuroflow.observability import builtin_instruments

    stop = stop or threading.Event()
    try:
        setup = MetricsSetup(Resource.create({"service.name": service_name}),
                             prometheus=(host, port), otlp=None, interval_seconds=60.0)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve metrics on {host}:{port}: "
                                 f"{exc.strerror or exc}") from None
    builtin_instruments()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    echo(f"serving NeuroFlow metrics for Prometheus on {setup.url}")
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        setup.close()
