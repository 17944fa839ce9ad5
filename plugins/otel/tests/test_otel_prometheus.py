"""MetricsCollector's series on the ``otel`` plugin's Prometheus endpoint, scraped over HTTP
and parsed with ``prometheus_client``'s parser (in a fresh process: one MeterProvider)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CODE = """
import anyio, json, urllib.request
from neuroflow.observability import MetricsCollector, TracingService

async def main():
    tracing = TracingService("metrics-svc", backend="otel",
                             config={"exporters": [], "prometheus_port": 0})
    await tracing.start()
    metrics = MetricsCollector()
    metrics.increment("tool_invocations", tags={"tool": "search"})
    metrics.increment("tool_invocations", 2, tags={"tool": "search"})
    metrics.gauge("active_connections", 42)
    metrics.histogram("request_latency", 123.45, tags={"endpoint": "/api"})
    url = tracing.tracer.metrics.url
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    await tracing.stop()
    print(json.dumps({"text": text, "summary": metrics.get_summary()["counters"]}))

anyio.run(main)
"""


def test_metrics_are_scraped_and_parsed(installed_path: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": installed_path})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["summary"] == {"tool_invocations": 3}  # still kept in process
    samples = {}
    for family in text_string_to_metric_families(out["text"]):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    counter = [v for (name, labels), v in samples.items()
               if name.startswith("tool_invocations") and ("tool", "search") in labels]
    assert counter == [3.0]
    assert [v for (name, _), v in samples.items() if name == "active_connections"] == [42.0]
    latency = {name: v for (name, labels), v in samples.items()
               if name.startswith("request_latency") and ("endpoint", "/api") in labels
               and "le" not in dict(labels)}
    assert latency["request_latency_count"] == 1.0
    assert latency["request_latency_sum"] == 123.45
