"""W3C Trace Context: a child process, given TRACEPARENT, continues the parent's trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from neuroflow.observability import (
    TracingService,
    attach_context,
    current_trace_id,
    inject,
    traceparent_env,
)

CHILD = """
import json
from opentelemetry import context
from neuroflow.observability import TracingService, from_env
tracing = TracingService("child", backend="local")
token = context.attach(from_env())
with tracing.span("in child") as span:
    print(json.dumps({"trace_id": span.trace_id, "parent": span.parent_span_id}))
"""


def test_a_child_process_continues_the_trace_from_traceparent() -> None:
    tracing = TracingService("parent")
    with tracing.span("spawn") as span:
        env = traceparent_env()
    assert env["TRACEPARENT"].startswith(f"00-{span.trace_id}-{span.span_id}-")
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env}, check=True)
    child = json.loads(proc.stdout)
    assert child == {"trace_id": span.trace_id, "parent": span.span_id}


def test_headers_round_trip_and_nothing_outside_a_span() -> None:
    assert inject() == {} and traceparent_env() == {}
    tracing = TracingService("svc")
    with tracing.span("client") as client:
        headers = inject({"Content-Type": "application/json"})
    assert headers["traceparent"].split("-")[1:3] == [client.trace_id, client.span_id]
    with attach_context({"TraceParent": headers["traceparent"]}):
        assert current_trace_id() == client.trace_id
        with tracing.span("server side") as server:
            pass
    assert server.parent_span_id == client.span_id
    assert current_trace_id() is None
