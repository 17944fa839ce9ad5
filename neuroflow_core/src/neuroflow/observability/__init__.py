"""Observability: distributed tracing, metrics and structured JSON logs.

Spans are OpenTelemetry spans: ``TracingService`` (and the agent runtime) open them through
``opentelemetry-api``, and the tracer backend chosen by configuration decides where they go
(``[tracer] backend = "local"`` by default: in memory and a JSON-lines file; ``noop``;
``otel`` from the ``neuroflow-otel`` plugin: OTLP, console, file; or a third party's,
registered through ``neuroflow_backends``).  ``MetricsCollector`` keeps counters, gauges
and histograms in process and records them on OpenTelemetry metrics too;
``StructuredLogger`` writes JSON lines through ``logging`` stamped with the current trace
and span ids.

Names are imported on first use, so registering the built-in tracers stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "current_span": "neuroflow.observability.context",
    "current_span_id": "neuroflow.observability.context",
    "current_trace_id": "neuroflow.observability.context",
    "LocalSpanExporter": "neuroflow.observability.local",
    "LocalTracer": "neuroflow.observability.local",
    "LocalTracerConfig": "neuroflow.observability.local",
    "NoopTracer": "neuroflow.observability.local",
    "format_spans": "neuroflow.observability.local",
    "read_spans": "neuroflow.observability.local",
    "span_to_dict": "neuroflow.observability.local",
    "add_span_processor": "neuroflow.observability.sdk",
    "remove_span_processor": "neuroflow.observability.sdk",
    "sdk_provider": "neuroflow.observability.sdk",
    "JsonFormatter": "neuroflow.observability.logs",
    "StructuredLogger": "neuroflow.observability.logs",
    "configure_logging": "neuroflow.observability.logs",
    "MetricsCollector": "neuroflow.observability.metrics",
    "builtin_instruments": "neuroflow.observability.metrics",
    "metered": "neuroflow.observability.metrics",
    "record_operation": "neuroflow.observability.metrics",
    "Operation": "neuroflow.observability.operations",
    "operation": "neuroflow.observability.operations",
    "attach_context": "neuroflow.observability.propagation",
    "extract": "neuroflow.observability.propagation",
    "from_env": "neuroflow.observability.propagation",
    "inject": "neuroflow.observability.propagation",
    "traceparent_env": "neuroflow.observability.propagation",
    "AttributeValue": "neuroflow.observability.model",
    "Span": "neuroflow.observability.span",
    "SpanKind": "neuroflow.observability.model",
    "SpanStatus": "neuroflow.observability.model",
    "Tracer": "neuroflow.observability.protocol",
    "SpanScope": "neuroflow.observability.tracing",
    "TracingService": "neuroflow.observability.tracing",
}

if TYPE_CHECKING:
    from neuroflow.observability.context import current_span, current_span_id, current_trace_id
    from neuroflow.observability.local import (
        LocalSpanExporter,
        LocalTracer,
        LocalTracerConfig,
        NoopTracer,
        format_spans,
        read_spans,
        span_to_dict,
    )
    from neuroflow.observability.logs import JsonFormatter, StructuredLogger, configure_logging
    from neuroflow.observability.metrics import (
        MetricsCollector,
        builtin_instruments,
        metered,
        record_operation,
    )
    from neuroflow.observability.model import (
        AttributeValue,
        SpanKind,
        SpanStatus,
    )
    from neuroflow.observability.operations import Operation, operation
    from neuroflow.observability.propagation import (
        attach_context,
        extract,
        from_env,
        inject,
        traceparent_env,
    )
    from neuroflow.observability.protocol import Tracer
    from neuroflow.observability.sdk import (
        add_span_processor,
        remove_span_processor,
        sdk_provider,
    )
    from neuroflow.observability.span import Span
    from neuroflow.observability.tracing import SpanScope, TracingService


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "AttributeValue",
    "JsonFormatter",
    "LocalSpanExporter",
    "LocalTracer",
    "LocalTracerConfig",
    "MetricsCollector",
    "NoopTracer",
    "Operation",
    "Span",
    "SpanKind",
    "SpanScope",
    "SpanStatus",
    "StructuredLogger",
    "Tracer",
    "TracingService",
    "add_span_processor",
    "attach_context",
    "builtin_instruments",
    "configure_logging",
    "current_span",
    "current_span_id",
    "current_trace_id",
    "extract",
    "format_spans",
    "from_env",
    "inject",
    "metered",
    "operation",
    "read_spans",
    "record_operation",
    "remove_span_processor",
    "sdk_provider",
    "span_to_dict",
    "traceparent_env",
]
