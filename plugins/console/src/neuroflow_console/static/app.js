// The console page: a hash router over seven views, live updates by server-sent events.
import { attributeTable, createWaterfall, el, fmtMs, fmtTime, legend, pill } from "./waterfall.js";

const view = document.getElementById("view");
const banner = document.getElementById("banner");
const live = document.getElementById("live");
let current = { name: null, onEvent: null };

// Put nodes in the view; null, undefined and false stand for "nothing here".
function show(...nodes) {
  view.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function errorBox(error) {
  return el("div.error-box", { text: String(error.message || error) });
}

function traceLink(traceId, text) {
  return el("a", { href: `#/trace/${traceId}`, text: text || traceId.slice(0, 12) });
}

function auditLink(seq) {
  return el("a", { href: `#/audit/${seq}`, text: `#${seq}` });
}

function table(headers, rows, id) {
  return el("table", { id }, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
}

function showVerdict(verdict) {
  if (!verdict) return;
  banner.hidden = false;
  banner.className = `banner ${verdict.state}`;
  banner.dataset.state = verdict.state;
  const words = { intact: "Audit log intact", tampered: "Audit log TAMPERED", unavailable: "Audit log not verified" };
  banner.textContent = `${words[verdict.state] || verdict.state}: ${verdict.summary}`;
}

// --- views -------------------------------------------------------------------------------

async function runsView() {
  const box = el("div");
  show(el("div.toolbar", {}, el("h2", { text: "Agent runs" }),
    el("span.muted", { text: "newest first · updates live" })), box);
  let known = null;
  let limit = 100;
  const more = el("button", { text: "show older runs", onclick: () => { limit = Math.min(limit + 100, 500); refresh(); } });
  async function refresh() {
    const { runs } = await api(`/api/runs?limit=${limit}`);
    const rows = runs.map((r) => el(`tr${known && !known.has(r.trace_id) ? ".new" : ""}`, { dataset: { traceId: r.trace_id } },
      el("td", { text: fmtTime(r.start_ns) }),
      el("td", {}, traceLink(r.trace_id, r.agents.join(" → ") || r.agent || "?")),
      el("td", {}, el(`span.status-${r.status}`, { text: r.status })),
      el("td", { text: fmtMs(r.duration_ms) }),
      el("td", { text: r.model || "–" }),
      el("td", { text: r.tool_calls }),
      el("td", {}, r.denials ? el("span.deny", { text: r.denials }) : "0"),
      el("td", { text: r.spans }),
      el("td", { text: r.services.join(", ") })));
    known = new Set(runs.map((r) => r.trace_id));
    box.replaceChildren(runs.length ? table(["started", "agent", "status", "duration", "model", "tool calls", "denials", "spans", "services"], rows, "runs")
      : el("p.muted", { text: "No agent runs yet. Run `neuroflow demo`, or send OTLP to /v1/traces." }));
    if (runs.length === limit && limit < 500) box.append(more);
  }
  await refresh();
  return (event) => { if (event.type === "spans") return refresh(); };
}

async function tracesView() {
  const box = el("div");
  show(el("div.toolbar", {}, el("h2", { text: "All traces" })), box);
  async function refresh() {
    const { traces } = await api("/api/traces?limit=200");
    box.replaceChildren(table(["started", "root span", "spans", "errors", "duration", "services"],
      traces.map((t) => el("tr", {}, el("td", { text: fmtTime(t.start_ns) }),
        el("td", {}, traceLink(t.trace_id, t.root_name || t.trace_id)), el("td", { text: t.spans }),
        el("td", { text: t.errors }), el("td", { text: fmtMs(t.trace_duration_ms) }),
        el("td", { text: t.services.join(", ") }))), "traces"));
  }
  await refresh();
  return (event) => { if (event.type === "spans") return refresh(); };
}

async function traceView(traceId) {
  const trace = await api(`/api/traces/${traceId}`);
  const detail = el("div.panel#span-detail", {}, el("p.muted", { text: "Click a span to see its attributes, guard decision and audit record." }));
  const wfBox = el("div#waterfall");
  const notice = el("button", { hidden: true, text: "new spans arrived: refresh", onclick: () => route() });
  show(
    el("div.toolbar", {},
      el("h2", { text: trace.root_name || traceId }),
      el("span.muted", { text: `${trace.spans} spans · ${fmtMs(trace.trace_duration_ms)} · services: ${trace.services.join(", ")}` }),
      el("a", { href: `/api/traces/${traceId}/export`, download: `trace-${traceId}.html`, id: "export", text: "Export HTML" }),
      notice, legend()),
    el("div.split", {}, wfBox, detail));
  createWaterfall(wfBox, {
    trace,
    opening: () => api(`/api/traces/${traceId}/opening?rows=300&page=200`),
    pageSize: 200,
    load: (parent, offset) => api(`/api/traces/${traceId}/spans?offset=${offset}&limit=200${parent ? `&parent=${parent}` : ""}`),
    onSelect: async (span) => {
      const full = await api(`/api/traces/${traceId}/spans/${span.span_id}`);
      const record = full.audit_record;
      detail.replaceChildren(el("div", {}, el("h3", { text: full.name }), attributeTable(full, auditLink),
        record ? el("div#audit-of-span", {}, el("h4", {}, "Audit record ", auditLink(record.seq)),
          el("pre", { text: JSON.stringify(record, null, 2) })) : null));
    },
  });
  return (event) => {
    if (event.type === "spans" && event.data.traces.includes(traceId)) notice.hidden = false;
  };
}

async function auditView(seq) {
  const box = el("div");
  const focus = el("div");
  show(el("div.toolbar", {}, el("h2", { text: "Audit log" }),
    el("span.muted", { text: "live tail, newest first" })), focus, box);
  if (seq) {
    const record = await api(`/api/audit/${seq}`);
    focus.replaceChildren(el("div.panel#audit-record", {}, el("h3", { text: `Record #${record.seq}` }),
      el("p", {}, "Spans carrying it: ", record.spans.map((s) => el("span", {}, traceLink(s.trace_id, s.name), " "))),
      el("pre", { text: JSON.stringify(record, null, 2) })));
  }
  let limit = 200;
  const more = el("button", { text: "show older records", onclick: () => { limit = Math.min(limit + 200, 1000); refresh(); } });
  async function refresh() {
    const { records, verdict } = await api(`/api/audit?limit=${limit}`);
    showVerdict(verdict);
    box.replaceChildren(table(["seq", "time", "event", "actor", "action", "resource", "decision", "rule", "outcome", "trace"],
      records.map((r) => el(`tr${String(r.seq) === seq ? ".selected" : ""}${verdict.problem && verdict.problem.seq === r.seq ? ".tampered" : ""}`, { dataset: { seq: r.seq } },
        el("td", {}, auditLink(r.seq)), el("td", { text: r.time }), el("td", { text: r.event }),
        el("td", { text: r.actor }), el("td", { text: r.action }), el("td", { text: r.resource }),
        el("td", {}, el(`span.${r.decision}`, { text: r.decision || "" })), el("td", { text: r.rule || "" }),
        el("td", { text: r.outcome === null || r.outcome === undefined ? "" : JSON.stringify(r.outcome) }),
        el("td", {}, r.trace_id ? traceLink(r.trace_id) : ""))), "audit"));
    if (records.length === limit && limit < 1000) box.append(more);
  }
  await refresh();
  return (event) => { if (event.type === "audit") return refresh(); };
}

function explainTable(explain) {
  const w = (k) => explain[`weight_${k}`] || 0;
  const rows = [];
  const term = (name, value, weight) => rows.push(el("tr", {}, el("td", { text: name }),
    el("td", { text: value.toFixed(4) }), el("td", { text: weight.toFixed(3) }),
    el("td", { text: (value * weight).toFixed(4) })));
  if (explain.relevance !== undefined) {
    term("relevance", explain.relevance, w("relevance"));
    rows.push(el("tr.muted", {}, el("td", { text: "  semantic" }), el("td", { text: explain.semantic.toFixed(4) }), el("td"), el("td")));
    rows.push(el("tr.muted", {}, el("td", { text: "  keyword" }), el("td", { text: explain.keyword.toFixed(4) }), el("td"), el("td")));
  }
  term("importance", explain.importance, w("importance"));
  term("recency", explain.recency, w("recency"));
  rows.push(el("tr", {}, el("th", { text: "score" }), el("td"), el("td"), el("th", { text: explain.score.toFixed(4) })));
  return el("table.explain", {}, el("thead", {}, el("tr", {}, ["term", "value", "weight", "contribution"].map((h) => el("th", { text: h })))), el("tbody", {}, rows));
}

async function memoryView(agent) {
  const data = await api("/api/memory");
  const agents = Object.entries(data.agents || {});
  const main = el("div#memory-main");
  const list = el("div.agents.panel", {}, el("h3", { text: "Agents" }),
    agents.length ? agents.map(([name, count]) => el(`a${name === agent ? ".active" : ""}`, { href: `#/memory/${encodeURIComponent(name)}`, text: `${name} (${count})` }))
      : el("p.muted", { text: "No memories." }));
  show(el("div.toolbar", {}, el("h2", { text: "Memory" }),
    el("span.muted", { text: `store: ${data.backend || "?"}` }), data.error ? errorBox(new Error(data.error)) : null),
    data.backend === "memory" ? el("p.muted", { text: "The configured store is in-memory: it holds only what this process stored. Set [memory] backend = \"sqlite\" to browse what agents remembered." }) : null,
    el("div.memory", {}, list, main));
  if (!agent && agents.length) agent = agents[0][0];
  if (!agent) return null;
  const results = el("div");
  const input = el("input", { type: "search", placeholder: "search this agent's memories", id: "memory-query" });
  const form = el("form", { onsubmit: async (e) => {
    e.preventDefault();
    const { results: found } = await api(`/api/memory/${encodeURIComponent(agent)}/search?q=${encodeURIComponent(input.value)}&limit=10`);
    results.replaceChildren(el("h3", { text: `Results for “${input.value}”` }), found.length ? el("div.cards#memory-results", {}, found.map((m) => el("div.panel", {},
      el("h3", { text: m.key }), el("p", {}, m.tags.map((t) => el("span.pill", { text: t })), ` importance ${m.importance}`),
      explainTable(m.explain), el("pre", { text: JSON.stringify(m.value, null, 2) })))) : el("p.muted", { text: "nothing found" }));
  } }, input, el("button", { type: "submit", text: "Search" }));
  const { entries } = await api(`/api/memory/${encodeURIComponent(agent)}?limit=200`);
  main.replaceChildren(el("div.toolbar", {}, el("h3", { text: agent }), form), results,
    table(["key", "tags", "importance", "updated", "version", "value"], entries.map((m) => el("tr", {},
      el("td", { text: m.key }), el("td", { text: m.tags.join(", ") }), el("td", { text: m.importance }),
      el("td", { text: new Date(m.updated_at * 1000).toISOString() }), el("td", { text: m.version }),
      el("td", {}, el("pre", { text: JSON.stringify(m.value).slice(0, 400) })))), "memory-entries"));
  return null;
}

async function sandboxesView() {
  const box = el("div");
  show(el("div.toolbar", {}, el("h2", { text: "Sandbox executions" })), box);
  async function refresh() {
    const { executions } = await api("/api/sandboxes?limit=200");
    box.replaceChildren(executions.length ? table(["started", "backend", "command", "decision", "exit", "reason", "limit hit", "wall", "cpu", "peak memory", "trace"],
      executions.map((x) => el("tr", {}, el("td", { text: fmtTime(x.start_ns) }), el("td", { text: x.backend || "–" }),
        el("td", { text: [x.command, ...(Array.isArray(x.args) ? x.args : [])].join(" ").slice(0, 120) }),
        el("td", {}, x.decision ? el(`span.${x.decision}`, { text: x.decision }) : "–", x.audit_seq ? [" ", auditLink(x.audit_seq)] : null),
        el("td", { text: x.exit_code ?? "–" }), el("td", { text: x.reason || "–" }), el("td", { text: x.limits_hit || "–" }),
        el("td", { text: fmtMs(x.wall_time_ms ?? x.duration_ms) }), el("td", { text: x.cpu_time_ms == null ? "–" : fmtMs(x.cpu_time_ms) }),
        el("td", { text: x.peak_memory_bytes == null ? "–" : `${(x.peak_memory_bytes / 1048576).toFixed(1)} MiB` }),
        el("td", {}, traceLink(x.trace_id)))), "sandboxes") : el("p.muted", { text: "No sandbox executions recorded." }));
  }
  await refresh();
  return (event) => { if (event.type === "spans") return refresh(); };
}

async function mcpView() {
  const data = await api("/api/mcp");
  const probe = el("div");
  const servers = Object.entries(data.servers || {});
  show(el("div.toolbar", {}, el("h2", { text: "MCP servers" }),
    el("span.muted", { text: data.installed ? "MCP client installed" : "no MCP client installed (pip install 'neuroflow[mcp]')" }),
    data.installed && servers.length ? el("button", { id: "mcp-probe", text: "Check health and list tools", onclick: async () => {
      probe.replaceChildren(el("p.muted", { text: "starting the servers…" }));
      try {
        const { statuses } = await api("/api/mcp/probe");
        probe.replaceChildren(el("div.cards", {}, Object.entries(statuses).map(([name, s]) => el("div.panel", {},
          el("h3", {}, name, " ", el(`span.${s.connected ? "allow" : "deny"}`, { text: s.connected ? "up" : "down" })),
          s.error ? el("p.deny", { text: s.error }) : null,
          el("ul", {}, s.tools.map((t) => el("li", {}, el("b", { text: t.name }), " ", el("span.muted", { text: t.description || "" }))))))));
      } catch (error) { probe.replaceChildren(errorBox(error)); }
    } }) : null),
    data.error ? errorBox(new Error(data.error)) : null,
    servers.length ? table(["server", "transport", "command / url", "enabled"], servers.map(([name, s]) => el("tr", {},
      el("td", { text: name }), el("td", { text: s.transport }), el("td", { text: s.url || [s.command, ...s.args].join(" ") }),
      el("td", { text: s.enabled ? "yes" : "no" }))), "mcp-servers") : el("p.muted", { text: "No MCP servers configured ([mcp.servers])." }),
    probe,
    el("h3", { text: "Tool calls seen in traces" }),
    data.calls.length ? table(["server", "tool", "calls", "errors", "denials", "mean", "last"], data.calls.map((c) => el("tr", {},
      el("td", { text: c.server || "?" }), el("td", { text: c.tool || "?" }), el("td", { text: c.calls }), el("td", { text: c.errors }),
      el("td", { text: c.denials }), el("td", { text: fmtMs(c.mean_ms) }), el("td", { text: fmtTime(c.last_ns) }))), "mcp-calls")
      : el("p.muted", { text: "No MCP tool calls recorded." }));
  return null;
}

async function a2aView() {
  const data = await api("/api/a2a");
  show(el("div.toolbar", {}, el("h2", { text: "A2A" }), el("span.muted", { text: data.installed ? "A2A installed" : data.detail })),
    data.installed ? (data.agents.length ? table(["agent", "details"], data.agents.map((a) => el("tr", {},
      el("td", { text: a.id || a.name || "?" }), el("td", {}, el("pre", { text: JSON.stringify(a, null, 2) })))), "a2a-agents")
      : el("p.muted", { text: data.detail || "No agents registered." })) : null,
    el("h3", { text: "Traces that crossed services (one trace id across A2A hops)" }),
    data.multi_service_traces.length ? table(["started", "root", "services", "spans"], data.multi_service_traces.map((t) => el("tr", {},
      el("td", { text: fmtTime(t.start_ns) }), el("td", {}, traceLink(t.trace_id, t.root_name)), el("td", { text: t.services.join(" → ") }),
      el("td", { text: t.spans }))), "a2a-traces") : el("p.muted", { text: "None yet." }),
    el("h3", { text: "A2A spans" }),
    data.spans.length ? table(["started", "span", "service", "duration"], data.spans.map((s) => el("tr", {},
      el("td", { text: fmtTime(s.start_ns) }), el("td", {}, pill(s.category), " ", traceLink(s.trace_id, s.name)),
      el("td", { text: s.service }), el("td", { text: fmtMs(s.duration_ms) })))) : el("p.muted", { text: "None yet." }));
  return null;
}

// --- routing and live updates ---------------------------------------------------------------

const VIEWS = { runs: runsView, traces: tracesView, trace: traceView, audit: auditView, memory: memoryView, sandboxes: sandboxesView, mcp: mcpView, a2a: a2aView };

async function route() {
  const [name, arg] = (location.hash.replace(/^#\/?/, "") || "runs").split("/");
  const render = VIEWS[name] || runsView;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === name || (name === "trace" && a.dataset.view === "traces"));
  }
  current = { name, onEvent: null };
  const mine = current;
  try {
    const onEvent = await render(arg ? decodeURIComponent(arg) : undefined);
    if (mine === current) mine.onEvent = onEvent;
  } catch (error) {
    show(errorBox(error));
  }
  document.body.dataset.view = name;
}

function connect() {
  const source = new EventSource("/api/events");
  const pending = {};
  const dispatch = (type, data) => {
    if (type === "audit") showVerdict(data.verdict);
    if (type === "problem") { live.className = "live off"; live.textContent = data.message; }
    if (!current.onEvent) return;
    // Coalesce bursts of one type (an ingest of many batches) into one refresh.
    clearTimeout(pending[type]);
    pending[type] = setTimeout(() => {
      if (!current.onEvent) return;
      Promise.resolve(current.onEvent({ type, data })).catch((error) => {
        live.className = "live off";
        live.textContent = `update failed: ${error.message}`;
      });
    }, 150);
  };
  source.addEventListener("hello", () => { live.className = "live on"; live.textContent = "live"; });
  for (const type of ["spans", "audit", "problem"]) {
    source.addEventListener(type, (event) => dispatch(type, JSON.parse(event.data)));
  }
  source.onerror = () => { live.className = "live off"; live.textContent = "reconnecting"; };
}

window.addEventListener("hashchange", route);
api("/api/summary").then((s) => {
  showVerdict(s.audit);
  if (s.trace_file_problems.length) {
    live.title = `lines of ${s.sources.traces} that are not spans:\n${s.trace_file_problems.join("\n")}`;
  }
}).catch(() => {});
connect();
route();
