"""The observability capability's role: what a tracer backend implements.

NeuroFlow's spans are OpenTelemetry spans, opened through ``opentelemetry-api``; a tracer
backend decides where they go by configuring the OpenTelemetry SDK (adding span processors
and exporters, see :func:`neuroflow.observability.add_span_processor`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


@runtime_checkable
class Tracer(Protocol):
    """A tracer backend: where spans are sent.

    Built by :func:`neuroflow.create_backend` from a ``neuroflow_backends`` BackendSpec of
    kind ``tracer``.  If the backend's config class has a ``service_name`` field,
    :class:`~neuroflow.observability.TracingService` fills it in; if it has an
    ``endpoint`` field, ``exporter_endpoint`` goes there.

    Attributes:
        provider: the SDK ``TracerProvider`` its processors are on, or ``None`` if it
            configures none (``noop``).
    """

    provider: TracerProvider | None

    async def start(self) -> None:
        """Acquire resources (files, exporters) and receive spans."""

    async def stop(self) -> None:
        """Flush every span finished so far and release resources."""
