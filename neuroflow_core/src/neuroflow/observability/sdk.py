"""Where tracer backends plug into the OpenTelemetry SDK.

A tracer backend adds a span processor (an exporter behind it) to the process's
``TracerProvider`` with :func:`add_span_processor`, and takes it out again with
:func:`remove_span_processor` when it stops:

* if the application already configured an SDK ``TracerProvider``
  (``trace.set_tracer_provider(...)``), NeuroFlow's processors are added to it and its
  resource and sampler stay as the application chose;
* otherwise the first backend installs one (with the resource and sampler it passes), and
  later backends add their processors to it.

Processors are held through one forwarding processor per provider, keyed weakly by the
backend that added them, so a backend that is dropped without ``stop()`` stops receiving
spans instead of piling up.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.sampling import Sampler

log = logging.getLogger("neuroflow.observability")

_lock = threading.Lock()


class _Forward(SpanProcessor):
    """The one processor NeuroFlow adds to a provider: forwards to each backend's own."""

    def __init__(self) -> None:
        self.processors: weakref.WeakKeyDictionary[Any, SpanProcessor] = (
            weakref.WeakKeyDictionary()
        )
        self._snapshot: tuple[SpanProcessor, ...] = ()
        self.dirty = False

    def refresh(self) -> None:
        self.dirty = False
        self._snapshot = tuple(self.processors.values())

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        if self.dirty:  # an owner was garbage-collected
            self.refresh()
        for processor in self._snapshot:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._snapshot:
            try:
                processor.on_end(span)
            except Exception:  # one broken exporter must not break the traced code
                log.exception("span processor %r failed", processor)

    def shutdown(self) -> None:
        for processor in tuple(self.processors.values()):
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in tuple(self.processors.values()))


_forwarders: weakref.WeakKeyDictionary[TracerProvider, _Forward] = weakref.WeakKeyDictionary()


def sdk_provider(
    resource: Resource | None = None, sampler: Sampler | None = None
) -> TracerProvider | None:
    """The process's SDK ``TracerProvider``, installed with ``resource``/``sampler`` if the
    application set none; ``None`` if the application set a provider that is not the SDK's
    (spans then go wherever it sends them)."""
    with _lock:
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            trace.set_tracer_provider(TracerProvider(resource=resource, sampler=sampler))
            provider = trace.get_tracer_provider()
        return provider if isinstance(provider, TracerProvider) else None


def add_span_processor(
    owner: object,
    processor: SpanProcessor,
    *,
    resource: Resource | None = None,
    sampler: Sampler | None = None,
) -> TracerProvider | None:
    """Send every span the process ends to ``processor`` while ``owner`` lives (or until
    :func:`remove_span_processor`); return the provider, or ``None`` (and log why) if
    the application's provider is not the SDK's."""
    provider = sdk_provider(resource, sampler)
    if provider is None:
        log.warning("the application's TracerProvider (%s) is not the OpenTelemetry SDK's; "
                    "NeuroFlow's span exporter is not added to it",
                    type(trace.get_tracer_provider()).__name__)
        return None
    with _lock:
        forward = _forwarders.get(provider)
        if forward is None:
            forward = _forwarders[provider] = _Forward()
            provider.add_span_processor(forward)
        if owner not in forward.processors:
            weakref.finalize(owner, setattr, forward, "dirty", True)
        forward.processors[owner] = processor
        forward.refresh()
    return provider


def remove_span_processor(owner: object) -> SpanProcessor | None:
    """Stop sending spans to ``owner``'s processor; return it (not shut down) or ``None``."""
    with _lock:
        for forward in _forwarders.values():
            processor = forward.processors.pop(owner, None)
            if processor is not None:
                forward.refresh()
                return processor
    return None
