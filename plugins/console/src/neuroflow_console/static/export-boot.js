// Boot code of the single-file export: the spans are in the page; the waterfall module
// (inlined above) renders them, children by parent, with every level loaded at once.
const readData = (id) => JSON.parse(document.getElementById(id).textContent);
const exportedTrace = readData("trace-data");
const exportedSpans = readData("span-data");
const exportedAudit = new Map(readData("audit-data").map((r) => [r.seq, r]));
const ids = new Set(exportedSpans.map((s) => s.span_id));
const byParent = new Map();
for (const s of exportedSpans) {
  const parent = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : null;
  if (!byParent.has(parent)) byParent.set(parent, []);
  byParent.get(parent).push(s);
}
for (const s of exportedSpans) s.child_count = (byParent.get(s.span_id) || []).length;
const view = document.getElementById("view");
const detail = el("div.panel", {}, el("p.muted", { text: "Click a span to see its attributes." }));
const wfBox = el("div");
view.append(
  el("div.toolbar", {},
    el("h2", { text: exportedTrace.root_name || exportedTrace.trace_id }),
    el("span.muted", { text: `${exportedSpans.length} spans · ${fmtMs(exportedTrace.trace_duration_ms)} · services: ${(exportedTrace.services || []).join(", ")}` }),
    legend()),
  el("div.split", {}, wfBox, detail));
createWaterfall(wfBox, {
  trace: exportedTrace,
  autoRows: 100000,
  load: async (parent, offset) => ({ spans: (byParent.get(parent) || []).slice(offset), more: false }),
  onSelect: (span) => {
    const record = exportedAudit.get(span.audit_seq);
    detail.replaceChildren(el("div", {}, el("h3", { text: span.name }), attributeTable(span),
      record ? el("div", {}, el("h4", { text: `Audit record #${record.seq}` }), el("pre", { text: JSON.stringify(record, null, 2) })) : null));
  },
});
