"""Observability: distributed tracing, metrics and structured JSON logs.

``TracingService`` opens spans on a tracer backend chosen by configuration
(``[tracer] backend = "local"`` by default; ``noop``; ``otel`` from the
``neuroflow-otel`` plugin; or a third party's, registered through ``neuroflow_tracers``).
``MetricsCollector`` keeps counters, gauges and histograms in process;
``StructuredLogger`` writes JSON lines through ``logging`` stamped with the current
trace id.

Names are imported on first use, so registering the built-in tracers stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "current_span": "neuroflow.observability.context",
    "current_span_id": "neuroflow.observability.context",
    "current_trace_id": "neuroflow.observability.context",
    "LocalSpan": "neuroflow.observability.local",
    "LocalTracer": "neuroflow.observability.local",
    "LocalTracerConfig": "neuroflow.observability.local",
    "NoopTracer": "neuroflow.observability.local",
    "format_spans": "neuroflow.observability.local",
    "JsonFormatter": "neuroflow.observability.logs",
    "StructuredLogger": "neuroflow.observability.logs",
    "configure_logging": "neuroflow.observability.logs",
    "MetricsCollector": "neuroflow.observability.metrics",
    "AttributeValue": "neuroflow.observability.model",
    "Span": "neuroflow.observability.protocol",
    "SpanKind": "neuroflow.observability.model",
    "SpanStatus": "neuroflow.observability.model",
    "Tracer": "neuroflow.observability.protocol",
    "new_span_id": "neuroflow.observability.model",
    "new_trace_id": "neuroflow.observability.model",
    "SpanScope": "neuroflow.observability.tracing",
    "TracingService": "neuroflow.observability.tracing",
}

if TYPE_CHECKING:
    from neuroflow.observability.context import current_span, current_span_id, current_trace_id
    from neuroflow.observability.local import (
        LocalSpan,
        LocalTracer,
        LocalTracerConfig,
        NoopTracer,
        format_spans,
    )
    from neuroflow.observability.logs import JsonFormatter, StructuredLogger, configure_logging
    from neuroflow.observability.metrics import MetricsCollector
    from neuroflow.observability.model import (
        AttributeValue,
        SpanKind,
        SpanStatus,
        new_span_id,
        new_trace_id,
    )
    from neuroflow.observability.protocol import Span, Tracer
    from neuroflow.observability.tracing import SpanScope, TracingService


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "AttributeValue",
    "JsonFormatter",
    "LocalSpan",
    "LocalTracer",
    "LocalTracerConfig",
    "MetricsCollector",
    "NoopTracer",
    "Span",
    "SpanKind",
    "SpanScope",
    "SpanStatus",
    "StructuredLogger",
    "Tracer",
    "TracingService",
    "configure_logging",
    "current_span",
    "current_span_id",
    "current_trace_id",
    "format_spans",
    "new_span_id",
    "new_trace_id",
]
