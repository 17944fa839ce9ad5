"""Observability: distributed tracing, metrics and structured JSON logs.

``TracingService`` opens spans on a tracer backend chosen by configuration
(``[tracer] backend = "local"`` by default; ``noop``; ``otel`` from the
``neuroflow-otel`` plugin; or a third party's, registered through ``neuroflow_tracers``).
``MetricsCollector`` keeps counters, gauges and histograms in process;
``StructuredLogger`` writes JSON lines through ``logging`` stamped with the current
trace id.
"""

from __future__ import annotations

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
    Span,
    SpanKind,
    SpanStatus,
    Tracer,
    new_span_id,
    new_trace_id,
)
from neuroflow.observability.tracing import SpanScope, TracingService

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
