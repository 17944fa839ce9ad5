"""The OpenTelemetry logs bridge: ``logging`` records exported over OTLP with the trace and
span ids of the span they were made in (``[tracer.otel] logs = true``).

It uses the handler of ``opentelemetry-instrumentation-logging`` on a ``LoggerProvider`` of
its own (``BatchLogRecordProcessor`` + the OTLP log exporter of the configured protocol),
attached to one ``logging`` logger (``logs_logger``, default ``"neuroflow"``; ``""`` for
every logger).  :class:`~neuroflow.observability.StructuredLogger`'s fields travel as the
record's ``neuroflow_fields`` attribute.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource


def _log_exporter(endpoint: str | None, protocol: str, headers: dict[str, str],
                  timeout: float) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        insecure = endpoint is not None and endpoint.startswith("http://")
        return OTLPLogExporter(endpoint=endpoint, insecure=insecure, headers=headers or None,
                               timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HttpLogExporter,
    )

    if endpoint is not None:
        endpoint = endpoint.rstrip("/")
        endpoint = endpoint.removesuffix("/v1/traces") + "/v1/logs"
    return HttpLogExporter(endpoint=endpoint, headers=headers or None, timeout=timeout)


class LogsBridge:
    """A ``logging`` handler exporting records over OTLP until :meth:`close`."""

    def __init__(self, *, endpoint: str | None, protocol: str, headers: dict[str, str],
                 timeout: float, resource: Resource, logger: str) -> None:
        self.provider = LoggerProvider(resource=resource)
        self.provider.add_log_record_processor(
            BatchLogRecordProcessor(_log_exporter(endpoint, protocol, headers, timeout)))
        self.handler = LoggingHandler(logger_provider=self.provider)
        self.logger = logging.getLogger(logger)
        self.logger.addHandler(self.handler)

    def flush(self) -> None:
        """Export every record so far."""
        self.provider.force_flush()

    def close(self) -> None:
        """Export what is left and detach the handler."""
        self.logger.removeHandler(self.handler)
        self.provider.force_flush()
        self.provider.shutdown()
