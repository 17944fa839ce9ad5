"""``TracingService``: the facade that opens OpenTelemetry spans.

Spans are opened through ``opentelemetry-api`` (the tracer ``"neuroflow"``), so they nest
with any other OpenTelemetry-instrumented code in the process, both ways, and cost next to
nothing when no SDK is configured.  Where they go is chosen by configuration
(``[tracer] backend = "local"``): the backend, built by :func:`neuroflow.create_backend`,
configures the OpenTelemetry SDK (the ``otel`` plugin's exports over OTLP, a third party's
wherever it likes).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from neuroflow.backends import BackendKind, install_hint
from neuroflow.errors import BackendNotFoundError, ConfigError, MissingPluginError
from neuroflow.observability.model import AttributeValue, SpanKind
from neuroflow.observability.protocol import Tracer
from neuroflow.observability.span import Span, checked_attributes

F = TypeVar("F", bound=Callable[..., Any])

#: NeuroFlow's OpenTelemetry tracer (a proxy until an SDK provider is installed).
TRACER = trace.get_tracer("neuroflow")


class SpanScope:
    """What :meth:`TracingService.span` returns: enter it (``with`` or ``async with``).

    On entry an OpenTelemetry span starts as a child of the current span and becomes the
    current span; on exit the previous span is current again, an escaping exception is
    recorded with status ``error``, and the span ends.
    """

    __slots__ = ("_attributes", "_kind", "_name", "_span", "_token")

    def __init__(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue] | None,
    ) -> None:
        self._name = name
        self._kind = kind
        self._attributes = checked_attributes(attributes)

    def __enter__(self) -> Span:
        span = TRACER.start_span(self._name, kind=self._kind.otel,
                                 attributes=self._attributes)
        self._token = otel_context.attach(trace.set_span_in_context(span))
        self._span = span
        return Span(span)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        otel_context.detach(self._token)
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _check_name(name: object) -> str:
    if type(name) is not str or not name:
        raise ConfigError(f"span name: expected a non-empty string, got {name!r}")
    return name


def _check_kind(kind: object) -> SpanKind:
    if isinstance(kind, SpanKind):
        return kind
    try:
        return SpanKind(str(kind).lower())
    except ValueError:
        names = ", ".join(k.value for k in SpanKind)
        raise ConfigError(f"span kind: expected one of {names}, got {kind!r}") from None


class TracingService:
    """Distributed tracing for one service.

    Args:
        service_name: the name spans are reported under.
        exporter_endpoint: where to export spans (an OTLP collector such as Jaeger's,
            ``"http://localhost:4317"``).  Unless a backend is selected explicitly, an
            endpoint selects the ``otel`` backend, and :class:`MissingPluginError` says
            ``pip install 'neuroflow[otel]'`` when it is not installed.  An explicitly
            selected backend receives it only if its config class has an ``endpoint`` field.
        backend: a tracer backend name (``"local"``, ``"noop"``, ``"otel"``, ...) or a
            ready :class:`Tracer` object; default from ``[tracer] backend`` (``"local"``).
        config: a loaded :class:`~neuroflow.config.NeuroflowConfig` to read ``[tracer]``
            from, or the backend's options (its config object or a mapping checked
            against its config class).  Default: read configuration files and environment.

    Raises:
        MissingPluginError: the selected backend (or ``otel``, for an endpoint) is not
            installed; the message says what to install.
        ConfigError: invalid arguments or backend options.
    """

    def __init__(
        self,
        service_name: str,
        exporter_endpoint: str | None = None,
        *,
        backend: str | Tracer | None = None,
        config: Any = None,
    ) -> None:
        if type(service_name) is not str or not service_name:
            raise ConfigError(f"service_name: expected a non-empty string, got {service_name!r}")
        if exporter_endpoint is not None and (
            type(exporter_endpoint) is not str or not exporter_endpoint
        ):
            raise ConfigError(
                f"exporter_endpoint: expected a URL string or None, got {exporter_endpoint!r}"
            )
        self.service_name = service_name
        self.exporter_endpoint = exporter_endpoint
        self.backend_name, self._tracer = self._resolve(backend, config)
        self._started = False

    def _resolve(self, backend: str | Tracer | None, config: Any) -> tuple[str, Tracer]:
        if backend is not None and not isinstance(backend, str):
            if not isinstance(backend, Tracer):
                raise ConfigError(
                    "backend: expected a backend name or an object with provider, start "
                    f"and stop (neuroflow.observability.Tracer), got {type(backend).__name__}"
                )
            return getattr(backend, "name", type(backend).__name__), backend
        from neuroflow.backends import backend_config_class, create_backend
        from neuroflow.config import NeuroflowConfig, get_config

        loaded = config if isinstance(config, NeuroflowConfig) else get_config()
        options = None if isinstance(config, NeuroflowConfig) else config
        explicit = backend is not None or "tracer.backend" in loaded.sources
        name = backend if backend is not None else (
            "otel" if self.exporter_endpoint is not None and not explicit
            else loaded.selection(BackendKind.TRACER)[0])
        try:
            config_class = backend_config_class(BackendKind.TRACER, name, field="tracer.backend")
        except BackendNotFoundError:
            if name != "otel":
                raise
            why = (
                f"exporter_endpoint={self.exporter_endpoint!r} needs the OpenTelemetry tracer"
                if self.exporter_endpoint is not None
                else "the 'otel' tracer backend is selected"
            )
            raise MissingPluginError(
                f"{why}, which is not installed: {install_hint(BackendKind.TRACER, 'otel')} "
                "(or select backend='local' to keep spans in this process)") from None
        fields = attrs.fields_dict(config_class) if config_class is not None else {}
        overrides: dict[str, Any] = {}
        if "service_name" in fields:
            overrides["service_name"] = self.service_name
        if "endpoint" in fields and self.exporter_endpoint is not None:
            overrides["endpoint"] = self.exporter_endpoint
        return name, create_backend(BackendKind.TRACER, name, options, config=loaded,
                                    overrides=overrides, field="tracer.backend")

    @property
    def tracer(self) -> Tracer:
        """The backend object (a :class:`~neuroflow.observability.LocalTracer` by default)."""
        return self._tracer

    async def start(self) -> None:
        """Start the backend (open files, connect exporters).  Calling it twice is harmless."""
        if not self._started:
            await self._tracer.start()
            self._started = True

    async def stop(self) -> None:
        """Flush finished spans (exported before this returns) and release the backend's
        resources."""
        await self._tracer.stop()
        self._started = False

    async def __aenter__(self) -> TracingService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def span(
        self,
        name: str,
        kind: SpanKind | str = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> SpanScope:
        """Open a span: ``with tracing.span("tool_execution", kind=SpanKind.CLIENT) as span:``.

        It nests under the current OpenTelemetry span (also across ``await`` and into
        tasks and worker threads started inside it); an exception leaving the block is
        recorded and sets status ``error``.  Attribute values are checked here.
        """
        if type(name) is not str or not name:
            _check_name(name)
        if kind.__class__ is not SpanKind:
            kind = _check_kind(kind)
        return SpanScope(name, kind, attributes)  # type: ignore[arg-type]

    def traced(
        self,
        name: str | None = None,
        kind: SpanKind | str = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Callable[[F], F]:
        """Decorate a function (sync or async) so each call runs in a span.

        The span is named ``name`` or the function's qualified name.
        """
        kind = _check_kind(kind)

        def decorate(func: F) -> F:
            span_name = _check_name(name or func.__qualname__)
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    with SpanScope(span_name, kind, attributes):
                        return await func(*args, **kwargs)

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with SpanScope(span_name, kind, attributes):
                    return func(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate

    def __repr__(self) -> str:
        return f"TracingService({self.service_name!r}, backend={self.backend_name!r})"
