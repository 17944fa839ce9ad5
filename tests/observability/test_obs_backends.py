"""Tracer selection: configuration, the JSON-lines file, the otel hint, third-party tracers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from neuroflow.backends import BackendKind, BackendSpec
from neuroflow.config import load_config, reload_config
from neuroflow.errors import BackendNotFoundError, ConfigError, MissingPluginError
from neuroflow.hookspecs import hookimpl
from neuroflow.observability import (
    LocalTracer,
    Span,
    SpanKind,
    Tracer,
    TracingService,
    add_span_processor,
    current_trace_id,
    remove_span_processor,
)
from neuroflow.plugins import get_plugin_manager


def test_builtin_tracers_are_registered_through_the_hook() -> None:
    tracers = get_plugin_manager().backends(BackendKind.TRACER)
    assert {"local", "noop"} <= set(tracers)
    assert tracers["local"].plugin == tracers["noop"].plugin == "neuroflow.observability"


@pytest.mark.anyio
async def test_local_tracer_appends_json_lines_from_config_file() -> None:
    Path("neuroflow.toml").write_text(
        '[tracer]\nbackend = "local"\n[tracer.local]\nfile = "out/traces.jsonl"\n'
    )
    tracing = TracingService("file-service")
    await tracing.start()
    with tracing.span("request", kind=SpanKind.SERVER, attributes={"path": "/api"}) as root:
        with tracing.span("tool_execution", kind=SpanKind.CLIENT) as child:
            child.set_attribute("tool_name", "search")
            child.add_event("cache miss")
        try:
            with tracing.span("broken"):
                raise OSError("disk full")
        except OSError:
            pass
    await tracing.stop()

    lines = Path("out/traces.jsonl").read_text().splitlines()
    records = {r["name"]: r for r in map(json.loads, lines)}
    assert list(records) == ["tool_execution", "broken", "request"]
    request, tool, broken = records["request"], records["tool_execution"], records["broken"]
    assert request["trace_id"] == root.trace_id and request["span_id"] == root.span_id
    assert request["parent_span_id"] is None
    assert tool["parent_span_id"] == root.span_id == broken["parent_span_id"]
    assert request["service"] == "file-service"
    assert request["kind"] == "server" and tool["kind"] == "client"
    assert request["attributes"] == {"path": "/api"}
    assert tool["attributes"] == {"tool_name": "search"}
    assert tool["status"] == {"code": "unset", "description": None}
    assert [e["name"] for e in tool["events"]] == ["cache miss"]
    assert broken["status"] == {"code": "error", "description": "OSError: disk full"}
    assert broken["events"][0]["attributes"]["exception.type"] == "OSError"
    for record in records.values():
        assert record["start_time"].endswith("Z") and record["end_time"].endswith("Z")
        assert record["end_time_unix_nano"] >= record["start_time_unix_nano"]
        assert record["duration_ms"] == pytest.approx(
            (record["end_time_unix_nano"] - record["start_time_unix_nano"]) / 1e6
        )

    # A second service appends to the same file.
    again = TracingService("file-service")
    with again.span("second run"):
        pass
    await again.stop()
    assert len(Path("out/traces.jsonl").read_text().splitlines()) == 4


def test_json_lines_without_start_and_with_options_object(tmp_path: Path) -> None:
    from neuroflow.observability import LocalTracerConfig

    target = tmp_path / "spans.jsonl"
    tracing = TracingService("svc", config=LocalTracerConfig(file=target))
    with tracing.span("root"):
        pass  # a root span's end flushes the file, even without start()/stop()
    assert json.loads(target.read_text())["name"] == "root"
    anyio.run(tracing.stop)


def test_unwritable_trace_file_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    tracing = TracingService("svc", config={"file": str(blocker / "traces.jsonl")})
    with pytest.raises(ConfigError, match=r"tracer\.local\.file: cannot open .* for appending"):
        anyio.run(tracing.start)


@pytest.fixture
def without_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """No installed plugin is loaded (as if ``neuroflow-otel`` were not installed)."""
    monkeypatch.setenv("NEUROFLOW_DISABLE_PLUGIN_AUTOLOAD", "1")


def test_exporter_endpoint_without_otel_says_what_to_install(without_plugins: None) -> None:
    with pytest.raises(MissingPluginError) as caught:
        TracingService(service_name="my-agent", exporter_endpoint="http://localhost:4317")
    message = str(caught.value)
    assert "exporter_endpoint='http://localhost:4317'" in message
    assert "needs the OpenTelemetry tracer, which is not installed" in message
    assert "pip install 'neuroflow[otel]'" in message


def test_selecting_otel_by_config_without_the_plugin_says_what_to_install(
    without_plugins: None,
) -> None:
    with pytest.raises(MissingPluginError, match="is selected, which is not installed"):
        TracingService("svc", backend="otel")
    Path("neuroflow.toml").write_text('[tracer]\nbackend = "otel"\n')
    reload_config()
    with pytest.raises(MissingPluginError, match="is selected, which is not installed"):
        TracingService("svc")


def test_exporter_endpoint_with_local_selected_explicitly_keeps_spans_local() -> None:
    tracing = TracingService("svc", "http://localhost:4317", backend="local")
    assert isinstance(tracing.tracer, LocalTracer)
    assert tracing.exporter_endpoint == "http://localhost:4317"
    Path("neuroflow.toml").write_text('[tracer]\nbackend = "local"\n')
    reload_config()
    assert TracingService("svc", "http://localhost:4317").backend_name == "local"


def test_unknown_backend_name_lists_the_installed_ones() -> None:
    with pytest.raises(BackendNotFoundError, match=r"'loacl' \(installed: .*did you mean 'local'"):
        TracingService("svc", backend="loacl")


def test_loaded_config_object_is_used() -> None:
    from neuroflow.observability import LocalTracerConfig

    cfg = load_config(files=[], environ={}, check=False,
                      tracer={"backend": "local", "local": {"max_spans": 2}})
    tracing = TracingService("svc", "http://localhost:4317", config=cfg)
    assert tracing.backend_name == "local"  # selected explicitly, so the endpoint is ignored
    assert tracing.tracer.config == LocalTracerConfig(max_spans=2, service_name="svc")


# --- a third-party tracer, registered at run time ------------------------------------


@attrs.frozen
class RecordingConfig:
    """Options of the test tracer: its own option plus the two the service fills in."""

    label: str = "default"
    service_name: str = ""
    endpoint: str | None = None


class RecordingTracer:
    """A third party's tracer backend: the SDK's in-memory exporter on the provider."""

    def __init__(self, config: RecordingConfig) -> None:
        self.config = config
        self.exporter = InMemorySpanExporter()
        self.calls: list[str] = []
        self.provider = None

    async def start(self) -> None:
        self.calls.append("start")
        self.provider = add_span_processor(self, SimpleSpanProcessor(self.exporter))

    async def stop(self) -> None:
        self.calls.append("stop")
        remove_span_processor(self)

    def by_name(self) -> dict[str, Any]:
        return {s.name: s for s in self.exporter.get_finished_spans()}


class RecordingPlugin:
    """A plugin object implementing the ``neuroflow_backends`` hook."""

    @hookimpl
    def neuroflow_backends(self) -> list[BackendSpec]:
        return [
            BackendSpec(
                name="recording",
                kind="tracer",
                factory=f"{__name__}:RecordingTracer",
                config_class=RecordingConfig,
                description="test tracer",
            )
        ]


@pytest.fixture
def recording_plugin() -> None:
    """Register the recording tracer plugin on the process-wide plugin manager."""
    get_plugin_manager().register(RecordingPlugin(), "test-recording-tracer")


@pytest.mark.anyio
async def test_third_party_tracer_selected_by_config(recording_plugin: None) -> None:
    manager = get_plugin_manager()
    spec = manager.backends("tracer")["recording"]
    assert spec.plugin == "test-recording-tracer"
    info = {i.name: i for i in manager.plugin_infos()}["test-recording-tracer"]
    assert info.status == "loaded" and info.provides["tracer"] == ["recording"]

    Path("neuroflow.toml").write_text(
        '[tracer]\nbackend = "recording"\n[tracer.recording]\nlabel = "from-file"\n'
    )
    reload_config()
    tracing = TracingService("third-party", "http://collector:4317")
    tracer = tracing.tracer
    assert isinstance(tracer, RecordingTracer) and isinstance(tracer, Tracer)
    assert tracer.config == RecordingConfig("from-file", "third-party", "http://collector:4317")

    await tracing.start()
    assert tracer.provider is trace.get_tracer_provider()
    with tracing.span("outer", kind=SpanKind.CONSUMER, attributes={"a": 1}) as outer:
        assert isinstance(outer, Span)
        assert current_trace_id() == outer.trace_id
        with pytest.raises(LookupError), tracing.span("inner") as inner:
            raise LookupError("missing")
    await tracing.stop()
    with tracing.span("after stop"):
        pass

    assert tracer.calls == ["start", "stop"]
    spans = tracer.by_name()
    assert set(spans) == {"outer", "inner"}
    assert inner.parent_span_id == outer.span_id and inner.trace_id == outer.trace_id
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id
    assert dict(spans["outer"].attributes) == {"a": 1}
    assert spans["outer"].kind is trace.SpanKind.CONSUMER
    assert [e.name for e in spans["inner"].events] == ["exception"]
    assert spans["inner"].status.description == "LookupError: missing"


def test_third_party_tracer_options_are_checked(recording_plugin: None) -> None:
    with pytest.raises(ConfigError, match=r"tracer\.recording\.label: expected a string"):
        TracingService("svc", backend="recording", config={"label": 5})
    tracing = TracingService("svc", backend="recording", config={"label": "kw"})
    assert tracing.tracer.config.label == "kw"
    assert tracing.tracer.config.endpoint is None


def test_spans_nest_with_other_opentelemetry_code_both_ways() -> None:
    """Third-party code instrumented with OpenTelemetry and NeuroFlow share one trace."""
    tracing = TracingService("svc")
    other = trace.get_tracer("some.library")
    with other.start_as_current_span("library request") as library:
        with tracing.span("neuroflow step") as step:
            with other.start_as_current_span("library call"):
                pass
    spans = {s.name: s for s in tracing.tracer.finished_spans()}
    assert set(spans) == {"library request", "neuroflow step", "library call"}
    assert step.trace_id == f"{library.get_span_context().trace_id:032x}"
    assert step.parent_span_id == f"{library.get_span_context().span_id:016x}"
    assert spans["library call"].parent.span_id == int(step.span_id, 16)
    assert spans["neuroflow step"].instrumentation_scope.name == "neuroflow"


def test_registering_the_builtin_tracers_imports_no_tracer_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, neuroflow.observability.builtin as b\n"
        "specs = b.neuroflow_backends()\n"
        "loaded = [m for m in sys.modules if m.startswith('neuroflow.observability.')]\n"
        "print(sorted(loaded), [s.name for s in specs])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['neuroflow.observability.builtin'] ['local', 'noop']"
