"""The console in a real headless Chromium (Debian's ``chromium``, driven by playwright):
every view shows the data of a real ``neuroflow demo`` run, a new run appears without a
reload, the tampered-audit banner appears after one byte of the log changes, and span
text is shown as text.  A screenshot of every view is saved as a test artifact (in
``$NEUROFLOW_CONSOLE_ARTIFACTS``, else ``plugins/console/tests/artifacts/``, git-ignored).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import PROJECT_TOML, Console, run_demo, start_console

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("NEUROFLOW_CONSOLE_ARTIFACTS")
                 or Path(__file__).parent / "artifacts")

if not Path(CHROMIUM).exists():
    pytest.skip("no Chromium on this machine: apt-get install -y chromium chromium-driver",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the demo run and one MCP server (a real stdio server) configured."""
    folder = tmp_path_factory.mktemp("browser-project")
    server = Path(__file__).with_name("weather_server.py")
    (folder / "neuroflow.toml").write_text(
        PROJECT_TOML + f'\n[mcp.servers.weather]\ncommand = {json.dumps(sys.executable)}\n'
        f'args = [{json.dumps(str(server))}]\n')
    folder.joinpath("first-run.json").write_text(json.dumps(run_demo(folder)))
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    yield opened
    context.close()
    assert not errors, errors


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def spans_of(project: Path, trace_id: str) -> list[dict[str, Any]]:
    lines = (project / ".neuroflow-demo" / "traces.jsonl").read_text().splitlines()
    return [s for s in map(json.loads, lines) if s["trace_id"] == trace_id]


def test_every_view_shows_the_demo_run(page: Any, console: Console, project: Path,
                                       first_run: dict) -> None:
    trace_id = first_run["trace_id"]
    page.goto(console.url)
    row = page.locator(f"#runs tr[data-trace-id='{trace_id}']")
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "researcher" and cells[2] == "ok"
    assert cells[4] == first_run["model"]
    assert (cells[5], cells[6]) == ("2", "1")  # tool calls, denials
    assert page.locator("#banner").get_attribute("data-state") == "intact"
    shot(page, "runs")

    row.locator("a").click()
    page.wait_for_selector(".wf[data-ready=true]")
    spans = spans_of(project, trace_id)
    names = page.locator(".wf-row .wf-label").all_inner_texts()
    assert sorted(names) == sorted(s["name"] for s in spans)  # every span kind, all shown
    categories = set(page.locator(".wf-row").evaluate_all(
        "rows => rows.map(r => r.dataset.category)"))
    assert {"agent", "model", "tool", "sandbox", "memory"} <= categories
    shell = next(s for s in spans if s["name"] == "execute_tool shell")
    page.locator(".wf-row", has_text="execute_tool shell").click()
    page.wait_for_selector("#audit-of-span")
    seq = shell["attributes"]["neuroflow.audit.seq"]
    assert "deny" in page.locator("#span-detail").inner_text()
    shot(page, "trace")
    page.locator("#audit-of-span h4 a").click()
    page.wait_for_selector("#audit-record")
    assert page.locator("#audit-record h3").inner_text() == f"Record #{seq}"
    audit = (project / ".neuroflow-demo" / "audit.log").read_text().splitlines()
    page.wait_for_selector("#audit tbody tr")
    assert page.locator("#audit tbody tr").count() == len(audit)
    shot(page, "audit")

    page.goto(f"{console.base}/#/traces")
    page.wait_for_selector("#traces tbody tr")
    shot(page, "traces")

    page.goto(f"{console.base}/#/memory")
    page.wait_for_selector("#memory-entries tbody tr")
    assert "research:Research AI trends" in page.locator("#memory-entries").inner_text()
    page.fill("#memory-query", "sandboxes agents")
    page.click("form button[type=submit]")
    page.wait_for_selector("#memory-results .explain")
    rows = [line.split("\t") for line in
            page.locator("#memory-results .explain").first.inner_text().lower().splitlines()]
    terms = {r[0].strip(): r[1:] for r in rows[1:]}
    assert set(terms) == {"relevance", "semantic", "keyword", "importance", "recency", "score"}
    assert terms["importance"][0] == "0.7000"  # stored by the demo with importance 0.7
    # each contribution is value x weight, and they add up to the score shown
    for name in ("relevance", "importance", "recency"):
        value, weight, contribution = map(float, terms[name])
        assert abs(value * weight - contribution) < 1e-3
    assert abs(sum(float(terms[n][2]) for n in ("relevance", "importance", "recency"))
               - float(terms["score"][2])) < 1e-3
    shot(page, "memory")

    page.goto(f"{console.base}/#/sandboxes")
    page.wait_for_selector("#sandboxes tbody tr")
    text = page.locator("#sandboxes").inner_text()
    assert "python3" in text and "exited" in text and "process" in text
    shot(page, "sandboxes")

    page.goto(f"{console.base}/#/mcp")
    page.wait_for_selector("#mcp-servers")
    assert "weather" in page.locator("#mcp-servers").inner_text()
    page.click("#mcp-probe")
    page.wait_for_selector("text=forecast", timeout=60_000)
    assert "up" in page.locator(".cards").inner_text()
    shot(page, "mcp")

    _post_two_service_trace(console)
    page.goto(f"{console.base}/#/a2a")
    page.wait_for_selector("#a2a-traces tbody tr")
    assert "planner → writer" in page.locator("#a2a-traces").inner_text()
    shot(page, "a2a")


def _post_two_service_trace(console: Console, name: str = "a2a send_message writer"
                            ) -> str:
    trace_id = secrets.token_hex(16)
    root, hop, remote = (secrets.token_hex(8) for _ in range(3))
    now = time.time_ns()

    def span(span_id: str, parent: str | None, span_name: str, attrs: dict[str, str],
             start: int, end: int) -> dict[str, Any]:
        return {"traceId": trace_id, "spanId": span_id, "parentSpanId": parent or "",
                "name": span_name, "startTimeUnixNano": str(now + start),
                "endTimeUnixNano": str(now + end),
                "attributes": [{"key": k, "value": {"stringValue": v}}
                               for k, v in attrs.items()]}

    def resource(service: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resource": {"attributes": [{"key": "service.name",
                                             "value": {"stringValue": service}}]},
                "scopeSpans": [{"spans": spans}]}

    body = {"resourceSpans": [
        resource("planner", [
            span(root, None, "invoke_agent planner",
                 {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"},
                 0, 9_000_000),
            span(hop, root, name, {"a2a.agent": "writer"}, 1_000_000, 8_000_000)]),
        resource("writer", [
            span(remote, hop, "invoke_agent writer", {"gen_ai.operation.name": "invoke_agent",
                                                      "gen_ai.agent.name": "writer"},
                 2_000_000, 7_000_000)])]}
    assert console.client.post("/v1/traces", json=body).status_code == 200
    return trace_id


def test_a_new_run_appears_without_a_reload(page: Any, console: Console,
                                            project: Path) -> None:
    page.goto(console.url)
    page.wait_for_selector("#runs tbody tr")
    page.wait_for_selector("#live.on")
    page.evaluate("window.__notReloaded = true")
    second = run_demo(project, "Research WebAssembly sandboxes")
    page.wait_for_selector(f"#runs tr[data-trace-id='{second['trace_id']}']", timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    first_row = page.locator("#runs tbody tr").first
    assert first_row.get_attribute("data-trace-id") == second["trace_id"]
    shot(page, "runs-live")


def test_span_text_is_shown_as_text(page: Any, console: Console) -> None:
    hostile = "<img src=x onerror=\"document.title='owned'\">"
    trace_id = _post_two_service_trace(console, name=hostile)
    page.goto(console.url)
    page.goto(f"{console.base}/#/trace/{trace_id}")
    page.wait_for_selector(".wf[data-ready=true]")
    assert hostile in page.locator(".wf").inner_text()
    assert page.locator(".wf img").count() == 0
    assert page.title() == "NeuroFlow console"


def test_the_export_opens_offline_and_shows_the_whole_trace(
        page: Any, console: Console, project: Path, first_run: dict,
        tmp_path: Path) -> None:
    trace_id = first_run["trace_id"]
    html = console.get(f"/api/traces/{trace_id}/export").text
    exported = tmp_path / "trace.html"
    exported.write_text(html)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(exported.as_uri())
    page.wait_for_selector(".wf[data-ready=true]")
    assert page.locator(".wf-row").count() == len(spans_of(project, trace_id))
    page.locator(".wf-row", has_text="execute_tool shell").click()
    assert "tools.researcher-no-shell" in page.locator(".panel").inner_text()
    assert requests == [exported.as_uri()]  # nothing fetched from anywhere
    shot(page, "export")


def test_the_banner_turns_when_a_byte_of_the_audit_log_changes(
        page: Any, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "neuroflow.toml").write_text(PROJECT_TOML)
    run_demo(project)
    console = start_console(project, "--db", str(tmp_path / "c.db"))
    try:
        page.goto(console.url)
        page.goto(f"{console.base}/#/audit")
        page.wait_for_selector("#banner[data-state=intact]")
        page.wait_for_selector("#live.on")
        log = project / ".neuroflow-demo" / "audit.log"
        data = bytearray(log.read_bytes())
        at = data.index(b'"decision":"deny"') + len(b'"decision":"')
        data[at] = ord("a")  # deny -> aeny: one byte
        log.write_bytes(bytes(data))
        page.wait_for_selector("#banner[data-state=tampered]", timeout=30_000)
        text = page.locator("#banner").inner_text()
        assert "TAMPERED" in text and "record 1" in text.lower()
        row = page.locator("#audit tr.tampered")
        row.wait_for()
        assert row.get_attribute("data-seq") == "1" and "aeny" in row.inner_text()
        shot(page, "audit-tampered")
    finally:
        page.close()  # before the server goes away under its event stream
        console.stop()
        shutil.rmtree(project / ".neuroflow-demo", ignore_errors=True)
