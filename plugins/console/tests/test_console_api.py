"""The console's API and event stream against a running ``neuroflow console`` serving the
data of a real ``neuroflow demo`` run; OTLP/HTTP ingest in protobuf and JSON."""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from console_helpers import Console, run_demo
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span


def audit_lines(project: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (project / ".neuroflow-demo" / "audit.log").read_text().splitlines()]


def spans_in_file(project: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (project / ".neuroflow-demo" / "traces.jsonl").read_text().splitlines()]


def test_the_demo_run_is_listed_with_its_counts(console: Console, first_run: dict) -> None:
    runs = console.get("/api/runs").json()["runs"]
    run = next(r for r in runs if r["trace_id"] == first_run["trace_id"])
    assert run["agent"] == "researcher"
    assert run["status"] == "ok"
    assert run["model"] == first_run["model"] == "scripted (not a real model)"
    assert run["tool_calls"] == len(first_run["tool_calls"]) == 2
    assert run["denials"] == sum(s == "denied" for _, s in first_run["tool_calls"]) == 1
    in_file = [s for s in spans_in_file(console_project(console))
               if s["trace_id"] == first_run["trace_id"]]
    assert run["spans"] == len(in_file)
    root = next(s for s in in_file if s["parent_span_id"] is None)
    assert abs(run["duration_ms"] - root["duration_ms"]) < 1e-6


def console_project(console: Console) -> Path:
    return Path(console.get("/api/summary").json()["sources"]["traces"]).parents[1]


def test_trace_children_load_lazily_and_page(console: Console, first_run: dict) -> None:
    trace_id = first_run["trace_id"]
    in_file = [s for s in spans_in_file(console_project(console)) if s["trace_id"] == trace_id]
    roots = console.get(f"/api/traces/{trace_id}/spans").json()["spans"]
    assert [r["name"] for r in roots] == ["invoke_agent researcher"]
    root = roots[0]
    expected = sorted((s for s in in_file if s["parent_span_id"] == root["span_id"]),
                      key=lambda s: s["start_time_unix_nano"])
    assert root["child_count"] == len(expected) == 5
    children = console.get(f"/api/traces/{trace_id}/spans",
                           params={"parent": root["span_id"]}).json()["spans"]
    assert [c["span_id"] for c in children] == [s["span_id"] for s in expected]
    assert [c["category"] for c in children] == ["model", "tool", "model", "tool", "model"]
    page = console.get(f"/api/traces/{trace_id}/spans",
                       params={"parent": root["span_id"], "offset": 1, "limit": 2}).json()
    assert [c["span_id"] for c in page["spans"]] == [s["span_id"] for s in expected[1:3]]
    assert page["more"] is True
    research = next(c for c in children if c["name"] == "execute_tool research")
    below = console.get(f"/api/traces/{trace_id}/spans",
                        params={"parent": research["span_id"]}).json()["spans"]
    assert [b["name"] for b in below] == ["research_tool"]
    assert below[0]["child_count"] == 2


def test_a_denied_tool_span_links_to_its_audit_record(console: Console,
                                                      first_run: dict) -> None:
    project = console_project(console)
    shell = next(s for s in spans_in_file(project) if s["name"] == "execute_tool shell"
                 and s["trace_id"] == first_run["trace_id"])
    detail = console.get(f"/api/traces/{first_run['trace_id']}/spans/{shell['span_id']}").json()
    assert detail["decision"] == "deny"
    record = detail["audit_record"]
    from_log = next(r for r in audit_lines(project)
                    if r["seq"] == shell["attributes"]["neuroflow.audit.seq"])
    assert record["seq"] == from_log["seq"] and record["mac"] == from_log["mac"]
    assert (record["decision"], record["resource"], record["rule"]) == (
        "deny", "shell", "tools.researcher-no-shell")
    assert {"trace_id": first_run["trace_id"], "span_id": shell["span_id"],
            "name": "execute_tool shell"} in record["spans"]
    by_seq = console.get(f"/api/audit/{record['seq']}").json()
    assert by_seq["mac"] == from_log["mac"]


def test_sandbox_executions_come_from_sandbox_spans(console: Console, first_run: dict) -> None:
    executions = console.get("/api/sandboxes").json()["executions"]
    mine = [x for x in executions if x["trace_id"] == first_run["trace_id"]]
    assert len(mine) == 1
    span = next(s for s in spans_in_file(console_project(console))
                if s["span_id"] == mine[0]["span_id"])
    assert span["name"] == "execute_sandbox python3"
    assert (mine[0]["backend"], mine[0]["command"], mine[0]["exit_code"],
            mine[0]["reason"]) == ("process", "python3", 0, "exited")
    assert mine[0]["decision"] == "allow"


def test_memory_of_the_demo_is_browsable_and_search_explains_its_score(
        console: Console, first_run: dict) -> None:
    agents = console.get("/api/memory").json()
    assert agents["backend"] == "sqlite" and agents["agents"].get("researcher", 0) >= 1
    entries = console.get("/api/memory/researcher").json()["entries"]
    key = "research:Research AI trends and write a report"
    assert key in [e["key"] for e in entries]
    found = console.get("/api/memory/researcher/search",
                        params={"q": "sandboxes agents"}).json()["results"]
    assert found and found[0]["key"] == key
    explain = found[0]["explain"]
    # the score is the weighted sum of its terms, recomputed here from the terms shown
    total = (explain["weight_relevance"] * explain["relevance"]
             + explain["weight_importance"] * explain["importance"]
             + explain["weight_recency"] * explain["recency"])
    assert abs(total - explain["score"]) < 1e-9
    assert abs(explain["importance"] - 0.7) < 1e-9
    bad = console.get("/api/memory/researcher/search", params={"limit": "lots"})
    assert bad.status_code == 400 and "limit" in bad.json()["error"]


def test_audit_records_and_verdict(console: Console) -> None:
    project = console_project(console)
    body = console.get("/api/audit").json()
    lines = audit_lines(project)
    assert [r["seq"] for r in body["records"]][: len(lines)] == sorted(
        (r["seq"] for r in lines), reverse=True)[: len(body["records"])]
    assert body["verdict"]["state"] == "intact"
    assert body["verdict"]["records"] == len(lines)


def test_bad_parameters_are_400_naming_the_field(console: Console) -> None:
    for path, field in [("/api/runs?limit=0", "limit"), ("/api/runs?before=x", "before"),
                        ("/api/traces/XYZ", "trace_id"),
                        ("/api/traces/" + "a" * 32 + "/spans?parent=zz", "parent"),
                        ("/api/audit?trace_id=nothex", "trace_id")]:
        response = console.get(path)
        assert response.status_code == 400, path
        assert response.json()["error"].startswith(field + ":"), response.json()
    assert console.get("/api/traces/" + "0" * 32).status_code == 404


class Events:
    """Reads the console's event stream in a thread."""

    def __init__(self, console: Console) -> None:
        self.events: list[tuple[str, Any]] = []
        self._stop = False
        self.ready = threading.Event()
        self.client = httpx.Client(base_url=console.base, timeout=None, headers={
            "authorization": f"Bearer {console.token}"})
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.ready.wait(15)

    def _read(self) -> None:
        event = None
        with self.client.stream("GET", "/api/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if self._stop:
                    return
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event:
                    self.events.append((event, json.loads(line.split(":", 1)[1])))
                    if event == "hello":
                        self.ready.set()

    def close(self) -> None:
        self._stop = True
        self.client.close()


def test_a_new_run_is_announced_on_the_event_stream(console: Console) -> None:
    events = Events(console)
    try:
        second = run_demo(console_project(console), "Research WebAssembly sandboxes")
        console.wait_for(lambda: any(e == "spans" and second["trace_id"] in d["traces"]
                                     for e, d in events.events))
        console.wait_for(lambda: any(e == "audit" for e, _ in events.events))
        runs = console.get("/api/runs").json()["runs"]
        assert runs[0]["trace_id"] == second["trace_id"]  # newest first
    finally:
        events.close()


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _otlp(service: str, spans: list[Span]) -> bytes:
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("service.name", service)]},
        scope_spans=[ScopeSpans(spans=spans)])])
    return request.SerializeToString()


def test_otlp_protobuf_and_json_ingest_one_trace_across_two_services(
        console: Console) -> None:
    trace_id = secrets.token_bytes(16)
    root_id, hop_id, remote_id = (secrets.token_bytes(8) for _ in range(3))
    now = time.time_ns()
    caller = _otlp("planner", [
        Span(trace_id=trace_id, span_id=root_id, name="invoke_agent planner", kind=2,
             start_time_unix_nano=now, end_time_unix_nano=now + 9_000_000,
             attributes=[_kv("gen_ai.operation.name", "invoke_agent"),
                         _kv("gen_ai.agent.name", "planner")]),
        Span(trace_id=trace_id, span_id=hop_id, parent_span_id=root_id,
             name="a2a send_message writer", kind=3, start_time_unix_nano=now + 1_000_000,
             end_time_unix_nano=now + 8_000_000, attributes=[_kv("a2a.agent", "writer")]),
    ])
    response = console.client.post("/v1/traces", content=caller,
                                   headers={"content-type": "application/x-protobuf"})
    assert response.status_code == 200
    reply = ExportTraceServiceResponse()
    reply.ParseFromString(response.content)
    assert reply.partial_success.rejected_spans == 0
    # the remote agent's span arrives as OTLP/JSON (hex ids), from another service
    remote = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "writer"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": trace_id.hex(), "spanId": remote_id.hex(),
             "parentSpanId": hop_id.hex(), "name": "invoke_agent writer", "kind": 2,
             "startTimeUnixNano": str(now + 2_000_000),
             "endTimeUnixNano": str(now + 7_000_000),
             "status": {"code": 2, "message": "model refused"},
             "attributes": [{"key": "gen_ai.operation.name",
                             "value": {"stringValue": "invoke_agent"}},
                            {"key": "gen_ai.agent.name", "value": {"stringValue": "writer"}}]},
            {"traceId": "not-hex", "spanId": "00", "name": "broken",
             "startTimeUnixNano": "1"}]}]}]}
    response = console.client.post("/v1/traces", json=remote)
    assert response.status_code == 200, response.text
    assert response.json()["partialSuccess"]["rejectedSpans"] == 1
    summary = console.get(f"/api/traces/{trace_id.hex()}").json()
    assert summary["services"] == ["planner", "writer"]
    assert summary["spans"] == 3 and summary["errors"] == 1
    assert summary["agents"] == ["planner", "writer"] or sorted(summary["agents"]) == [
        "planner", "writer"]
    assert summary["agent"] == "planner"
    hop = console.get(f"/api/traces/{trace_id.hex()}/spans",
                      params={"parent": hop_id.hex()}).json()["spans"]
    assert [(s["name"], s["service"], s["status"]) for s in hop] == [
        ("invoke_agent writer", "writer", "error")]
    a2a = console.get("/api/a2a").json()
    assert trace_id.hex() in [t["trace_id"] for t in a2a["multi_service_traces"]]
    assert hop_id.hex() in [s["span_id"] for s in a2a["spans"]]
    # the same spans again: stored once
    console.client.post("/v1/traces", content=caller,
                        headers={"content-type": "application/x-protobuf"})
    assert console.get(f"/api/traces/{trace_id.hex()}").json()["spans"] == 3


def test_otlp_rejects_a_body_that_is_not_a_request(console: Console) -> None:
    for content_type, body in [("application/x-protobuf", b"\xff\xff\xff"),
                               ("application/json", b"{not json")]:
        response = console.client.post("/v1/traces", content=body,
                                       headers={"content-type": content_type})
        assert response.status_code == 400
        assert response.json()["error"].startswith("body:")


def test_export_is_one_self_contained_file_that_escapes_span_text(console: Console) -> None:
    trace_id, span_id = secrets.token_bytes(16), secrets.token_bytes(8)
    hostile = "</script><script>document.title='owned'</script><!--"
    now = time.time_ns()
    console.client.post("/v1/traces", headers={"content-type": "application/x-protobuf"},
                        content=_otlp("svc", [Span(
                            trace_id=trace_id, span_id=span_id, name=hostile,
                            start_time_unix_nano=now, end_time_unix_nano=now + 1000,
                            attributes=[_kv("note", hostile)])]))
    response = console.get(f"/api/traces/{trace_id.hex()}/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    html = response.text
    assert hostile not in html and "</script><script>" not in html
    assert html.count("<script") == 4  # three data blocks and the module, nothing injected
    assert "src=" not in html and "href=" not in html  # nothing loaded from anywhere


def test_the_trace_file_is_read_incrementally_and_survives_a_restart(
        project: Path, tmp_path: Path) -> None:
    from console_helpers import start_console

    spans = tmp_path / "spans.jsonl"
    lines = (project / ".neuroflow-demo" / "traces.jsonl").read_text().splitlines(True)
    spans.write_text("".join(lines[:3]) + lines[3][:20])  # an unfinished last line
    db = tmp_path / "c.sqlite3"
    console = start_console(project, "--db", str(db), "--traces", str(spans))
    try:
        assert console.wait_for(lambda: console.get("/api/summary").json()["counts"]["spans"]
                                == 3)
        with spans.open("a") as fh:
            fh.write(lines[3][20:] + "".join(lines[4:]) + "this is not a span\n")
        assert console.wait_for(lambda: console.get("/api/summary").json()["counts"]["spans"]
                                == len(lines))
        problems = console.get("/api/summary").json()["trace_file_problems"]
        assert any("not a JSON span record" in p for p in problems), problems
    finally:
        console.stop()
    assert oct(db.stat().st_mode & 0o777) == oct(0o600)
    again = start_console(project, "--db", str(db), "--traces", str(spans))
    try:
        time.sleep(1.0)
        assert again.get("/api/summary").json()["counts"]["spans"] == len(lines)
    finally:
        again.stop()


def test_a_changed_byte_in_the_audit_log_turns_the_verdict(tmp_path: Path) -> None:
    from console_helpers import PROJECT_TOML, start_console

    project = tmp_path / "project"
    project.mkdir()
    (project / "neuroflow.toml").write_text(PROJECT_TOML)
    run_demo(project)
    console = start_console(project, "--db", str(tmp_path / "c.db"))
    try:
        assert console.get("/api/audit").json()["verdict"]["state"] == "intact"
        events = Events(console)
        log = project / ".neuroflow-demo" / "audit.log"
        data = bytearray(log.read_bytes())
        at = data.index(b'"resource":"shell"') + len(b'"resource":"')
        data[at] = ord("S")  # shell -> Shell: one byte of record 1
        log.write_bytes(bytes(data))
        verdict = console.wait_for(lambda: (lambda v: v if v["state"] == "tampered" else None)(
            console.get("/api/audit").json()["verdict"]))
        assert verdict["problem"]["kind"] == "altered" and verdict["problem"]["record"] == 1
        assert console.wait_for(lambda: any(
            e == "audit" and d["verdict"]["state"] == "tampered" for e, d in events.events))
        events.close()
    finally:
        console.stop()


def test_the_opening_holds_the_first_levels_the_lazy_calls_would_load(
        console: Console, first_run: dict) -> None:
    trace_id = first_run["trace_id"]
    opening = console.get(f"/api/traces/{trace_id}/opening").json()
    in_file = [s for s in spans_in_file(console_project(console)) if s["trace_id"] == trace_id]
    assert [r["name"] for r in opening["roots"]] == ["invoke_agent researcher"]
    shown = len(opening["roots"]) + sum(len(v) for v in opening["children"].values())
    assert shown == len(in_file)  # the whole small trace, in one answer
    for parent, kids in opening["children"].items():
        lazily = console.get(f"/api/traces/{trace_id}/spans", params={"parent": parent}).json()
        assert [k["span_id"] for k in kids] == [k["span_id"] for k in lazily["spans"]]


def test_a_wide_trace_opens_one_page_and_pages_the_rest(console: Console) -> None:
    trace_id, root = secrets.token_bytes(16), secrets.token_bytes(8)
    now = time.time_ns()
    kids = [Span(trace_id=trace_id, span_id=secrets.token_bytes(8), parent_span_id=root,
                 name=f"step {i:03d}", start_time_unix_nano=now + 1000 * (i + 1),
                 end_time_unix_nano=now + 1000 * (i + 2)) for i in range(450)]
    body = _otlp("wide", [Span(trace_id=trace_id, span_id=root, name="root",
                               start_time_unix_nano=now, end_time_unix_nano=now + 10**6),
                          *kids])
    assert console.client.post("/v1/traces", content=body, headers={
        "content-type": "application/x-protobuf"}).status_code == 200
    opening = console.get(f"/api/traces/{trace_id.hex()}/opening",
                          params={"rows": 300, "page": 200}).json()
    assert opening["roots"][0]["child_count"] == 450
    first = opening["children"][root.hex()]
    assert [s["name"] for s in first] == [f"step {i:03d}" for i in range(200)]
    names = [s["name"] for s in first]
    offset = 200
    while True:
        page = console.get(f"/api/traces/{trace_id.hex()}/spans", params={
            "parent": root.hex(), "offset": offset, "limit": 200}).json()
        names += [s["name"] for s in page["spans"]]
        offset += len(page["spans"])
        if not page["more"]:
            break
    assert names == [f"step {i:03d}" for i in range(450)]


def test_an_opentelemetry_sdk_exports_to_the_console(console: Console) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource({"service.name": "sdk-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{console.base}/v1/traces",
        headers={"authorization": f"Bearer {console.token}"})))
    tracer = provider.get_tracer("an-app")
    with tracer.start_as_current_span("outer") as outer:
        with tracer.start_as_current_span("inner", attributes={"k": 7}):
            pass
    provider.shutdown()
    trace_id = f"{outer.get_span_context().trace_id:032x}"
    summary = console.get(f"/api/traces/{trace_id}").json()
    assert summary["spans"] == 2 and summary["services"] == ["sdk-app"]
    root = console.get(f"/api/traces/{trace_id}/spans").json()["spans"][0]
    inner = console.get(f"/api/traces/{trace_id}/spans",
                        params={"parent": root["span_id"]}).json()["spans"]
    assert [(s["name"], s["attributes"]) for s in inner] == [("inner", {"k": 7})]
