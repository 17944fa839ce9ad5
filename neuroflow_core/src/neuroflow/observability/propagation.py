"""W3C Trace Context across process and protocol boundaries.

:func:`inject` writes the current span's ``traceparent`` (and ``tracestate``) into a
carrier -- HTTP headers, an MCP request's ``_meta``; :func:`extract` reads one back into an
OpenTelemetry context to open spans under (``with attach_context(carrier):``);
:func:`traceparent_env` gives ``{"TRACEPARENT": ...}`` for a child process's environment,
and :func:`from_env` reads it there.  They use OpenTelemetry's global propagator (W3C
Trace Context by default, whatever ``OTEL_PROPAGATORS`` says otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.context import Context


def inject(carrier: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Write the current span's ``traceparent``/``tracestate`` into ``carrier`` (a new dict
    if ``None``) and return it; nothing is written outside a span with ids."""
    carrier = {} if carrier is None else carrier
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> Context:
    """The OpenTelemetry context whose parent is the span ``carrier`` names (keys are
    matched case-insensitively, as HTTP headers are)."""
    lowered = {str(k).lower(): v for k, v in carrier.items()}
    return propagate.extract(lowered)


@contextmanager
def attach_context(carrier: Mapping[str, str]) -> Iterator[Context]:
    """Make the span ``carrier`` names the parent of spans opened inside the block."""
    ctx = extract(carrier)
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)


def traceparent_env() -> dict[str, str]:
    """``{"TRACEPARENT": ..., "TRACESTATE": ...}`` of the current span, for a child
    process's environment (empty outside a span with ids)."""
    if not otel_context.get_current():
        return {}  # nothing attached (no span, no baggage): nothing to propagate
    return {key.upper(): value for key, value in inject().items()}


def from_env(environ: Mapping[str, str] | None = None) -> Context:
    """The context a parent process passed in ``TRACEPARENT``/``TRACESTATE``."""
    environ = os.environ if environ is None else environ
    return extract({key.lower(): environ[key] for key in ("TRACEPARENT", "TRACESTATE")
                    if key in environ})
