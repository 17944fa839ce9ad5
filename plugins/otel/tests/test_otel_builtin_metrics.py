"""Built-in metrics (requests, latency, errors of agents, tools, sandboxes and memory) on
the Prometheus endpoint, and ``neuroflow metrics serve``: scraped over HTTP and parsed
with ``prometheus_client``'s parser, each in a fresh process (one MeterProvider)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

CODE = """
import anyio, json, urllib.request
from neuroflow import AINativeAgent
from neuroflow.errors import InvalidMemoryError
from neuroflow.agent.llm import Completion, LLMConfig, ToolCall
from neuroflow.memory import MemoryManager
from neuroflow.observability import TracingService
from neuroflow.sandbox import SandboxConfig, SandboxIsolator

class OneToolCall:
    name = "one"
    def __init__(self):
        self.calls = 0
    async def complete(self, messages, tools):
        self.calls += 1
        if self.calls == 1:
            return Completion(tool_calls=(ToolCall("c1", "lookup", {"key": "k"}),))
        return Completion(text="done")

async def main():
    tracing = TracingService("builtin-metrics", backend="otel",
                             config={"exporters": [], "prometheus_port": 0})
    await tracing.start()
    agent = AINativeAgent("helper", LLMConfig(provider="openai", model="m"),
                          provider=OneToolCall(), gate=False, tracer=tracing)

    @agent.tool
    def lookup(key: str) -> str:
        '''Look a key up.

        Args:
            key: the key.
        '''
        return "v"

    await agent.handle("question")
    async with SandboxIsolator(SandboxConfig(allow_weaker_isolation=True)) as sandbox:
        await sandbox.execute("/bin/true")
        await sandbox.execute("/bin/false")
    memory = MemoryManager(store="memory")
    await memory.store_memory("a", "k", "v")
    await memory.retrieve_memory("a", "k")
    try:  # an empty key is refused: the error counter must show it
        await memory.store_memory("a", "", "v")
    except InvalidMemoryError:
        pass
    else:
        raise SystemExit("an empty key was accepted")
    await memory.aclose()
    text = urllib.request.urlopen(tracing.tracer.metrics.url, timeout=30).read().decode()
    await tracing.stop()
    print(json.dumps(text))

anyio.run(main)
"""


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def _value(samples: list, name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples
             if n == name and all(lab.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, (name, labels, [s for s in samples if s[0] == name])
    return found[0]


def test_builtin_metrics_count_requests_latency_and_errors(installed_path: str) -> None:
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONPATH": installed_path})
    assert proc.returncode == 0, proc.stderr
    samples = _samples(json.loads(proc.stdout.splitlines()[-1]))
    ops = "neuroflow_operations_total"
    assert _value(samples, ops, neuroflow_component="agent",
                  neuroflow_operation="invoke_agent") == 1
    assert _value(samples, ops, neuroflow_component="tool",
                  neuroflow_operation="execute_tool") == 1
    assert _value(samples, ops, neuroflow_component="sandbox", neuroflow_operation="execute") == 2
    assert _value(samples, ops, neuroflow_component="memory",
                  neuroflow_operation="store_memory") == 2
    assert _value(samples, ops, neuroflow_component="memory",
                  neuroflow_operation="retrieve_memory") == 1
    errors = "neuroflow_operation_errors_total"
    assert _value(samples, errors, neuroflow_component="sandbox",
                  error_type="exit_code") == 1
    assert _value(samples, errors, neuroflow_component="memory",
                  error_type="InvalidMemoryError") == 1
    assert not [s for s in samples if s[0] == errors
                and s[1]["neuroflow_component"] in ("agent", "tool")]
    count = _value(samples, "neuroflow_operation_duration_milliseconds_count",
                   neuroflow_component="sandbox")
    total = _value(samples, "neuroflow_operation_duration_milliseconds_sum",
                   neuroflow_component="sandbox")
    assert count == 2 and total > 0


def test_neuroflow_metrics_serve_is_a_scrape_endpoint(installed_path: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuroflow", "metrics", "serve", "--port", "0",
         "--service-name", "scraped"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": installed_path})
    try:
        line = proc.stdout.readline()
        assert "serving NeuroFlow metrics for Prometheus on http://127.0.0.1:" in line, (
            line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(" on ", 1)[1].strip()
        text = urllib.request.urlopen(url, timeout=30).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    samples = _samples(text)
    # Nothing NeuroFlow did in that process yet: the process's own metrics only.
    assert any(name.startswith("python_gc_objects_collected") for name, _, _ in samples)
    assert not [name for name, _, _ in samples if name.startswith("neuroflow_")]
    assert code == 0


def test_metrics_serve_names_a_port_it_cannot_use(installed_path: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "neuroflow", "metrics", "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": installed_path})
    assert proc.returncode != 0
    assert f"cannot serve metrics on 127.0.0.1:{port}" in proc.stderr
