"""How NeuroFlow's tracing meets a process's OpenTelemetry setup, each in a fresh process:
no SDK at all, an application that configured its own provider first."""

from __future__ import annotations

import json
import subprocess
import sys

NO_SDK = """
import anyio, json
from opentelemetry import trace
from neuroflow import AINativeAgent
from neuroflow.agent import LLMConfig
from neuroflow.observability import TracingService, current_trace_id

tracing = TracingService("svc", backend="noop")
with tracing.span("outer") as outer:
    inside = current_trace_id()
agent = AINativeAgent("a", LLMConfig(provider="scripted", extra={"script": ["hi"]}), gate=False)
result = anyio.run(agent.handle, "x")
print(json.dumps({"trace_id": outer.trace_id, "inside": inside,
                  "provider": type(trace.get_tracer_provider()).__name__,
                  "agent_trace": result["trace_id"]}))
"""

APP_PROVIDER = """
import json
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

app_exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "the-app"}))
provider.add_span_processor(SimpleSpanProcessor(app_exporter))
trace.set_tracer_provider(provider)

from neuroflow.observability import TracingService
local = TracingService("svc")
noop = TracingService("svc2", backend="noop")
with local.span("a"), noop.span("b"):
    pass
print(json.dumps({
    "same_provider": local.tracer.provider is provider,
    "app": sorted(s.name for s in app_exporter.get_finished_spans()),
    "local": sorted(s.name for s in local.tracer.finished_spans()),
    "resource": app_exporter.get_finished_spans()[0].resource.attributes["service.name"],
}))
"""


def _run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_without_an_sdk_spans_are_no_ops_and_the_agent_still_has_a_trace_id() -> None:
    out = _run(NO_SDK)
    assert out["trace_id"] is None and out["inside"] is None
    assert out["provider"] == "ProxyTracerProvider"  # noop installed nothing
    assert len(out["agent_trace"]) == 32 and int(out["agent_trace"], 16)


def test_an_application_s_provider_is_used_not_replaced() -> None:
    out = _run(APP_PROVIDER)
    assert out["same_provider"] is True
    assert out["app"] == ["a", "b"]  # the application's exporter sees NeuroFlow's spans
    assert out["local"] == ["a", "b"]  # and the local backend's exporter too
    assert out["resource"] == "the-app"
