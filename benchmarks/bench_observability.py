"""Tracing overhead: one ``TracingService.span`` and one agent round trip, with and without
an OpenTelemetry SDK.

Each setting runs in its own process (a process has one global ``TracerProvider``):

* ``no-sdk``: ``backend="noop"`` and no SDK configured -- spans are API no-ops;
* ``sdk-batch``: the SDK with a ``BatchSpanProcessor`` and an exporter that drops spans
  (what the ``otel`` plugin does, minus the network);
* ``local``: the default ``local`` backend (in-memory exporter, synchronous).

Anchor: an empty ``with nullcontext():`` block in the same process.  The agent round trip
(scripted provider, one tool call: four spans) is reported for ``no-sdk`` and
``sdk-batch``, and their ratio is the cost of tracing a run.  Last, the flagship example
(``run_research_agent``: a sandboxed analysis, memory, guards, audit) runs with its
``local`` tracer against ``noop`` with no SDK, alternating, and the median ratio is printed
(the issue's target: at most 5% slower).

    python benchmarks/bench_observability.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, statistics, sys, time
from contextlib import nullcontext
import anyio

mode, rounds = sys.argv[1], int(sys.argv[2])
if mode == "sdk-batch":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)

from neuroflow.agent import AINativeAgent, ScriptedProvider
from neuroflow.observability import TracingService

tracing = TracingService("bench", backend="local" if mode == "local" else "noop",
                         config={"max_spans": 1000} if mode == "local" else None)

def timed(block, n):
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            block()
        samples.append((time.perf_counter() - start) / n)
    return min(samples)

def anchor():
    with nullcontext():
        pass

def span():
    with tracing.span("work") as s:
        s.set_attribute("k", 1)

async def lookup(key: str) -> str:
    '''Look a key up.'''
    return key

async def agent_runs(n):
    provider = ScriptedProvider(steps=[{"tool": "lookup", "arguments": {"key": "k"}}, "done"])
    agent = AINativeAgent("bench", provider=provider, gate=False)
    agent.tool(lookup)
    await agent.handle("warm up")
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await agent.handle("x", session_id=f"s{i}")
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)

print(json.dumps({"anchor": timed(anchor, rounds), "span": timed(span, rounds),
                  "agent": anyio.run(agent_runs, max(rounds // 50, 50))}))
"""


FLAGSHIP = r"""
import json, statistics, sys, tempfile, time
import anyio
import neuroflow.examples.research_agent as example

mode, runs = sys.argv[1], int(sys.argv[2])
settings = example.demo_settings

def traced_or_not(workdir):
    chosen = settings(workdir)
    if mode == "off":
        chosen["tracer"] = {"backend": "noop"}
    return chosen

example.demo_settings = traced_or_not
times = []
for i in range(runs + 1):
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        anyio.run(lambda: example.run_research_agent("Research AI trends", workdir=workdir,
                                                     echo=lambda line: None))
        if i:  # the first run warms up imports and caches
            times.append(time.perf_counter() - start)
print(json.dumps({"flagship": statistics.median(times)}))
"""


def _flagship(mode: str, runs: int) -> float:
    out = subprocess.run([sys.executable, "-c", FLAGSHIP, mode, str(runs)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])["flagship"]


def _measure(mode: str, rounds: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(rounds)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    """Run each setting and print µs per span and per agent run, with ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    rounds = 2000 if args.quick else 20000
    started = time.perf_counter()
    results = {mode: _measure(mode, rounds) for mode in ("no-sdk", "sdk-batch", "local")}
    for mode, figures in results.items():
        print(f"span [{mode:9}]  {figures['span'] * 1e6:8.2f} µs   "
              f"({figures['span'] / figures['anchor']:.0f}x an empty with-block, "
              f"{figures['anchor'] * 1e6:.3f} µs)")
    ratio = results["sdk-batch"]["span"] / results["no-sdk"]["span"]
    print(f"span with SDK + batch exporter / without SDK: {ratio:.2f}")
    off, on = results["no-sdk"]["agent"], results["sdk-batch"]["agent"]
    print(f"agent round trip (4 spans): no SDK {off * 1e6:.0f} µs, SDK + batch "
          f"{on * 1e6:.0f} µs, ratio {on / off:.3f}")
    runs = 3 if args.quick else 10
    ons, offs = [], []
    for _ in range(2):  # alternate, so load changes hit both alike
        ons.append(_flagship("on", runs))
        offs.append(_flagship("off", runs))
    on, off = statistics.median(ons), statistics.median(offs)
    print(f"flagship run: tracing on (local) {on * 1e3:.1f} ms, off (noop, no SDK) "
          f"{off * 1e3:.1f} ms, ratio {on / off:.3f}")
    print(f"({rounds} spans per sample; {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
