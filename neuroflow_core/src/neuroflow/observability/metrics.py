"""``MetricsCollector``: counters, gauges and histograms in process, with tags, also recorded
on OpenTelemetry metrics.

Each call is kept in process (for :meth:`MetricsCollector.get_summary`) and recorded on the
OpenTelemetry instrument of the same name (meter ``"neuroflow"``, tags as attributes):
a no-op until an SDK ``MeterProvider`` is configured -- by the application, or by the
``otel`` plugin's Prometheus endpoint (``[tracer.otel] prometheus_port``).

Every series is identified by a metric name and its tags.  :meth:`MetricsCollector.get_summary`
totals each metric across its tag sets (``stats["counters"]["tool_invocations"]``) and also
lists each tag set's own figures under ``"series"``.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics as otel_metrics

from neuroflow.errors import ConfigError

Tags = tuple[tuple[str, str], ...]

_NUMBERS = (int, float)


def _number(value: object, what: str, name: str) -> float | int:
    if type(value) in _NUMBERS or (isinstance(value, _NUMBERS) and not isinstance(value, bool)):
        if math.isfinite(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        raise ConfigError(f"{what}({name!r}): value must be a finite number, got {value!r}")
    raise ConfigError(
        f"{what}({name!r}): value must be an int or float, got {type(value).__name__} {value!r}"
    )


def _tags(tags: Mapping[str, str] | None, what: str, name: str) -> Tags:
    if not tags:
        if tags is None or isinstance(tags, Mapping):
            return ()
    if not isinstance(tags, Mapping):
        raise ConfigError(
            f"{what}({name!r}): tags must be a dict of str to str, got {type(tags).__name__}"
        )
    for key, value in tags.items():
        if type(key) is not str or type(value) is not str:
            raise ConfigError(
                f"{what}({name!r}): tag {key!r}={value!r}: tag names and values must be "
                f"strings, got {type(key).__name__}={type(value).__name__}"
            )
    return tuple(sorted(tags.items()))


def _check_name(name: object, what: str) -> str:
    if type(name) is not str or not name:
        raise ConfigError(f"{what}: metric name must be a non-empty string, got {name!r}")
    return name  # type: ignore[return-value]


_METER = otel_metrics.get_meter("neuroflow")
_instruments: dict[tuple[str, str], Any] = {}
_instruments_lock = threading.Lock()


def _instrument(kind: str, name: str) -> Any:
    """The OpenTelemetry instrument ``kind`` (counter, gauge, histogram) named ``name``."""
    found = _instruments.get((kind, name))
    if found is None:
        with _instruments_lock:
            found = _instruments.get((kind, name))
            if found is None:
                create = {"counter": _METER.create_counter, "gauge": _METER.create_gauge,
                          "histogram": _METER.create_histogram}[kind]
                found = _instruments[(kind, name)] = create(name)
    return found


def percentile(sorted_values: list[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of sorted values, interpolated linearly
    (numpy's default method)."""
    n = len(sorted_values)
    rank = (n - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


class _Histogram:
    """Exact count/sum/min/max, and up to ``limit`` samples for percentiles."""

    __slots__ = ("count", "limit", "max", "min", "samples", "sum")

    def __init__(self, limit: int) -> None:
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.samples: list[float] = []
        self.limit = limit

    def add(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if len(self.samples) < self.limit:
            self.samples.append(value)
        else:
            # Reservoir sampling: every value seen has the same chance to be kept.
            slot = random.randrange(self.count)
            if slot < self.limit:
                self.samples[slot] = value


def _stats(count: int, total: float, low: float, high: float, samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "count": count,
        "sum": total,
        "min": low,
        "max": high,
        "mean": total / count,
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
    }


class MetricsCollector:
    """Counters, gauges and histograms, thread-safe, kept in this process.

    Args:
        max_samples: how many values each histogram series keeps for percentiles; beyond
            that a uniform random sample of this size is kept (count, sum, min, max and
            mean stay exact, percentiles become estimates).
    """

    def __init__(self, *, max_samples: int = 10_000) -> None:
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ConfigError(f"max_samples: expected a positive integer, got {max_samples!r}")
        self.max_samples = max_samples
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, Tags], float | int] = {}
        self._gauges: dict[tuple[str, Tags], float | int] = {}
        self._histograms: dict[tuple[str, Tags], _Histogram] = {}

    def increment(
        self, name: str, value: float | int = 1, tags: Mapping[str, str] | None = None
    ) -> None:
        """Add ``value`` (default 1, never negative) to counter ``name`` for these tags."""
        key = (_check_name(name, "increment"), _tags(tags, "increment", name))
        value = _number(value, "increment", name)
        if value < 0:
            raise ConfigError(
                f"increment({name!r}): a counter only goes up, got {value!r} (use gauge())"
            )
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + value
        _instrument("counter", name).add(value, dict(key[1]))

    def gauge(self, name: str, value: float | int, tags: Mapping[str, str] | None = None) -> None:
        """Set gauge ``name`` for these tags to ``value`` (the last value wins)."""
        key = (_check_name(name, "gauge"), _tags(tags, "gauge", name))
        value = _number(value, "gauge", name)
        with self._lock:
            self._gauges[key] = value
        _instrument("gauge", name).set(value, dict(key[1]))

    def histogram(
        self, name: str, value: float | int, tags: Mapping[str, str] | None = None
    ) -> None:
        """Record one observation (a latency in ms, a size...) in histogram ``name``."""
        key = (_check_name(name, "histogram"), _tags(tags, "histogram", name))
        value = _number(value, "histogram", name)
        with self._lock:
            series = self._histograms.get(key)
            if series is None:
                series = self._histograms[key] = _Histogram(self.max_samples)
            series.add(value)
        _instrument("histogram", name).record(value, dict(key[1]))

    @contextmanager
    def timer(self, name: str, tags: Mapping[str, str] | None = None) -> Iterator[None]:
        """Record the block's wall time in milliseconds in histogram ``name``.

        Recorded also when the block raises; check the inputs before the block runs.
        """
        _check_name(name, "timer")
        _tags(tags, "timer", name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.histogram(name, (time.perf_counter() - start) * 1000.0, tags)

    def reset(self) -> None:
        """Forget every series."""
        with self._lock:
            self._counters.clear()
            self._gauges.clear()
            self._histograms.clear()

    def get_summary(self) -> dict[str, Any]:
        """Return every metric as plain data.

        ``"counters"``, ``"gauges"``: name -> total across tag sets (for a gauge, the sum of
        each tag set's last value).  ``"histograms"``: name -> ``count``, ``sum``, ``min``,
        ``max``, ``mean``, ``p50``, ``p95``, ``p99`` over every tag set's observations.
        ``"series"``: the same three keys, each name -> a list of ``{"tags": {...}, ...}``
        with the figures of each tag set (``"value"`` for counters and gauges).
        """
        with self._lock:
            counters = dict(self._counters)
            gauges = dict(self._gauges)
            histograms = {
                key: (h.count, h.sum, h.min, h.max, list(h.samples))
                for key, h in self._histograms.items()
            }
        summary: dict[str, Any] = {"counters": {}, "gauges": {}, "histograms": {}}
        series: dict[str, dict[str, list[dict[str, Any]]]] = {
            "counters": {}, "gauges": {}, "histograms": {}
        }
        for kind, data in (("counters", counters), ("gauges", gauges)):
            for (name, tags), value in sorted(data.items()):
                summary[kind][name] = summary[kind].get(name, 0) + value
                series[kind].setdefault(name, []).append({"tags": dict(tags), "value": value})
        merged: dict[str, list[Any]] = {}
        for (name, tags), (count, total, low, high, samples) in sorted(
            histograms.items(), key=lambda item: item[0]
        ):
            series["histograms"].setdefault(name, []).append(
                {"tags": dict(tags), **_stats(count, total, low, high, samples)}
            )
            acc = merged.setdefault(name, [0, 0.0, math.inf, -math.inf, []])
            acc[0] += count
            acc[1] += total
            acc[2] = min(acc[2], low)
            acc[3] = max(acc[3], high)
            acc[4].extend(samples)
        for name, (count, total, low, high, samples) in merged.items():
            summary["histograms"][name] = _stats(count, total, low, high, samples)
        summary["series"] = series
        return summary


#: The built-in metrics (meter ``"neuroflow"``), attributes ``neuroflow.component``
#: (``agent``, ``tool``, ``sandbox``, ``memory``, ``mcp``) and ``neuroflow.operation``;
#: errors also carry ``error.type``.  Prometheus shows them as ``neuroflow_operations_total``,
#: ``neuroflow_operation_duration_milliseconds`` and ``neuroflow_operation_errors_total``.
OPERATIONS = "neuroflow.operations"
OPERATION_DURATION = "neuroflow.operation.duration"
OPERATION_ERRORS = "neuroflow.operation.errors"

_builtin: tuple[Any, Any, Any] | None = None


def builtin_instruments() -> tuple[Any, Any, Any]:
    """The OpenTelemetry instruments of the built-in metrics: the operation counter, the
    latency histogram (milliseconds) and the error counter."""
    global _builtin
    if _builtin is None:
        with _instruments_lock:
            if _builtin is None:
                _builtin = (
                    _METER.create_counter(OPERATIONS, unit="{operation}",
                                          description="Operations started, by component"),
                    _METER.create_histogram(OPERATION_DURATION, unit="ms",
                                            description="How long operations took"),
                    _METER.create_counter(OPERATION_ERRORS, unit="{error}",
                                          description="Operations that failed"),
                )
    return _builtin


def _meter_provider_set() -> bool:
    # The API's global, read directly: the check is the whole cost of a metric recorded
    # before any MeterProvider is installed.
    from opentelemetry.metrics import _internal

    return getattr(_internal, "_METER_PROVIDER", True) is not None


def record_operation(component: str, operation: str, duration_ms: float,
                     error: str | None = None) -> None:
    """Record one operation of ``component`` in the built-in metrics: one more request,
    its latency (milliseconds) and, when ``error`` (the error type) is given, one more
    error.  Nothing is done until an SDK ``MeterProvider`` is installed (by the
    application, or the ``otel`` plugin's Prometheus endpoint or OTLP metrics)."""
    if not _meter_provider_set():
        return
    requests, latency, errors = builtin_instruments()
    attributes = {"neuroflow.component": component, "neuroflow.operation": operation}
    requests.add(1, attributes)
    latency.record(duration_ms, attributes)
    if error is not None:
        errors.add(1, {**attributes, "error.type": error})


class metered:
    """Record the block as one operation in the built-in metrics (:func:`record_operation`):
    its latency, and an error if an exception leaves it or ``error`` is set inside."""

    __slots__ = ("_start", "component", "error", "operation")

    def __init__(self, component: str, operation: str) -> None:
        self.component = component
        self.operation = operation
        self.error: str | None = None

    def __enter__(self) -> metered:
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        if exc is not None and self.error is None:
            self.error = type(exc).__name__
        record_operation(self.component, self.operation,
                         (time.perf_counter() - self._start) * 1000.0, self.error)
