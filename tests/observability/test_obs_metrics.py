"""MetricsCollector: totals across tags, per-tag series, percentiles, validation, threads."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuroflow.errors import ConfigError
from neuroflow.observability import MetricsCollector
from neuroflow.observability.metrics import percentile


def test_spec_example() -> None:
    metrics = MetricsCollector()
    metrics.increment("tool_invocations", tags={"tool": "search"})
    metrics.gauge("active_connections", 42)
    metrics.histogram("request_latency", 123.45, tags={"endpoint": "/api"})
    stats = metrics.get_summary()
    assert stats["counters"]["tool_invocations"] == 1
    assert stats["gauges"]["active_connections"] == 42
    latency = stats["histograms"]["request_latency"]
    assert latency == {
        "count": 1, "sum": 123.45, "min": 123.45, "max": 123.45, "mean": 123.45,
        "p50": 123.45, "p95": 123.45, "p99": 123.45,
    }


def test_counters_total_across_tags_and_list_each_tag_set() -> None:
    metrics = MetricsCollector()
    metrics.increment("tool_invocations", tags={"tool": "search"})
    metrics.increment("tool_invocations", tags={"tool": "search"})
    metrics.increment("tool_invocations", 3, tags={"tool": "fetch"})
    metrics.increment("tool_invocations")
    metrics.increment("bytes", 1.5)
    stats = metrics.get_summary()
    assert stats["counters"] == {"bytes": 1.5, "tool_invocations": 6}
    assert isinstance(stats["counters"]["tool_invocations"], int)
    assert stats["series"]["counters"]["tool_invocations"] == [
        {"tags": {}, "value": 1},
        {"tags": {"tool": "fetch"}, "value": 3},
        {"tags": {"tool": "search"}, "value": 2},
    ]


def test_tag_order_does_not_make_a_new_series() -> None:
    metrics = MetricsCollector()
    metrics.increment("calls", tags={"a": "1", "b": "2"})
    metrics.increment("calls", tags={"b": "2", "a": "1"})
    assert metrics.get_summary()["series"]["counters"]["calls"] == [
        {"tags": {"a": "1", "b": "2"}, "value": 2}
    ]


def test_gauges_keep_the_last_value_and_sum_across_tags() -> None:
    metrics = MetricsCollector()
    metrics.gauge("active_connections", 10, tags={"pool": "a"})
    metrics.gauge("active_connections", 4, tags={"pool": "a"})
    metrics.gauge("active_connections", 3, tags={"pool": "b"})
    stats = metrics.get_summary()
    assert stats["gauges"]["active_connections"] == 7
    assert [s["value"] for s in stats["series"]["gauges"]["active_connections"]] == [4, 3]


def test_histogram_figures_match_numpy() -> None:
    rng = random.Random(7)
    metrics = MetricsCollector()
    api = [rng.lognormvariate(3, 1) for _ in range(997)]
    health = [rng.uniform(0, 5) for _ in range(251)]
    for value in api:
        metrics.histogram("request_latency", value, tags={"endpoint": "/api"})
    for value in health:
        metrics.histogram("request_latency", value, tags={"endpoint": "/health"})
    stats = metrics.get_summary()

    def expected(values: list[float]) -> dict[str, float]:
        data = np.array(values)
        return {
            "count": len(values), "sum": data.sum(), "min": data.min(), "max": data.max(),
            "mean": data.mean(), "p50": np.percentile(data, 50),
            "p95": np.percentile(data, 95), "p99": np.percentile(data, 99),
        }

    total = stats["histograms"]["request_latency"]
    for key, value in expected(api + health).items():
        assert total[key] == pytest.approx(value, rel=1e-12), key
    per_tag = {s["tags"]["endpoint"]: s for s in stats["series"]["histograms"]["request_latency"]}
    for label, values in (("/api", api), ("/health", health)):
        for key, value in expected(values).items():
            assert per_tag[label][key] == pytest.approx(value, rel=1e-12), (label, key)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60),
       st.floats(0, 100))
def test_percentile_is_numpys_linear_method(values: list[float], p: float) -> None:
    assert percentile(sorted(values), p) == pytest.approx(
        float(np.percentile(values, p)), rel=1e-9, abs=1e-6
    )


def test_histogram_beyond_max_samples_keeps_exact_totals() -> None:
    metrics = MetricsCollector(max_samples=50)
    for value in range(1, 1001):
        metrics.histogram("size", value)
    figures = metrics.get_summary()["histograms"]["size"]
    assert (figures["count"], figures["sum"], figures["min"], figures["max"]) == (
        1000, 500500, 1, 1000
    )
    assert figures["mean"] == 500.5
    assert 1 <= figures["p50"] <= 1000


def test_timer_records_milliseconds_also_on_error() -> None:
    metrics = MetricsCollector()
    with metrics.timer("step", tags={"name": "ok"}):
        sum(range(1000))
    with pytest.raises(ZeroDivisionError), metrics.timer("step", tags={"name": "bad"}):
        1 / 0  # noqa: B018
    series = metrics.get_summary()["series"]["histograms"]["step"]
    assert [(s["tags"]["name"], s["count"]) for s in series] == [("bad", 1), ("ok", 1)]
    assert all(s["min"] >= 0 for s in series)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.increment("c", "1"),
         r"increment\('c'\): value must be an int or float, got str '1'"),
        (lambda m: m.increment("c", True), "value must be an int or float, got bool"),
        (lambda m: m.increment("c", -1), r"a counter only goes up, got -1 \(use gauge\(\)\)"),
        (lambda m: m.gauge("g", float("nan")), "value must be a finite number"),
        (lambda m: m.gauge("g", None), "value must be an int or float, got NoneType"),
        (lambda m: m.histogram("h", 1, tags={"code": 200}),
         "tag 'code'=200: tag names and values must be strings, got str=int"),
        (lambda m: m.histogram("h", 1, tags={1: "x"}), "tag names and values must be strings"),
        (lambda m: m.increment("c", tags=["a"]), "tags must be a dict of str to str, got list"),
        (lambda m: m.increment(""), "increment: metric name must be a non-empty string"),
        (lambda m: m.timer("t", tags={"a": 1}), "timer"),
    ],
)
def test_bad_input_is_a_clear_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    metrics = MetricsCollector()
    with pytest.raises(ConfigError, match=message):
        result = call(metrics)
        if hasattr(result, "__enter__"):
            with result:
                pass
    assert metrics.get_summary()["counters"] == {}


def test_bad_max_samples() -> None:
    with pytest.raises(ConfigError, match="max_samples: expected a positive integer"):
        MetricsCollector(max_samples=0)


def test_concurrent_updates_are_not_lost() -> None:
    metrics = MetricsCollector()

    def work(tag: str) -> None:
        for i in range(5000):
            metrics.increment("hits", tags={"worker": tag})
            metrics.histogram("values", i)

    threads = [threading.Thread(target=work, args=(str(n),)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = metrics.get_summary()
    assert stats["counters"]["hits"] == 20000
    assert stats["histograms"]["values"]["count"] == 20000
    metrics.reset()
    assert metrics.get_summary()["counters"] == {}
