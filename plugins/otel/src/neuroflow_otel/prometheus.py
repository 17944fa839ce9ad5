"""A Prometheus scrape endpoint for the process's OpenTelemetry metrics.

``MetricsCollector`` (and any OpenTelemetry-instrumented code) records on the global
``MeterProvider``; this installs one whose reader is a ``PrometheusMetricReader`` (unless
the application installed its own, which is then kept) and serves
``prometheus_client``'s registry over HTTP.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import start_http_server

log = logging.getLogger("neuroflow_otel")
_lock = threading.Lock()
_installed: list[PrometheusMetricReader] = []


def install_meter_provider(resource: Resource) -> bool:
    """Install a ``MeterProvider`` read by Prometheus, once per process; ``False`` if the
    application's provider is kept."""
    with _lock:
        if _installed:
            return True
        current = metrics.get_meter_provider()
        if isinstance(current, MeterProvider):
            log.warning("the application's MeterProvider is kept; its readers decide what "
                        "the Prometheus endpoint shows")
            return False
        reader = PrometheusMetricReader()
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
        _installed.append(reader)
        return True


class PrometheusEndpoint:
    """``/metrics`` on ``host:port`` (``port`` 0: a free one; see :attr:`port`)."""

    def __init__(self, host: str, port: int, resource: Resource) -> None:
        install_meter_provider(resource)
        self._server: Any
        self._server, self._thread = start_http_server(port, addr=host)
        self.host = host
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        """The scrape URL."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
