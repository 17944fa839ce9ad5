// The trace waterfall: one row per span, children loaded on demand.
// Self-contained (no imports): the single-file export inlines this module.
// Every text from a span goes through textContent, never through HTML parsing.

export const CATEGORIES = ["agent", "model", "tool", "sandbox", "memory", "mcp", "a2a", "other"];

// el("tag.class#id", {attr: value, onclick: fn}, child, "text", ...) -> Element
// ("div.panel#detail": a div with class panel and id detail)
export function el(spec, props, ...children) {
  const [head, id] = spec.split("#");
  const [tag, ...classes] = head.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  if (id) node.id = id;
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    // CSSOM, not a style attribute: the console's CSP forbids inline style attributes.
    else if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export function fmtTime(ns) {
  if (!ns) return "–";
  const d = new Date(Number(ns) / 1e6);
  return d.toISOString().replace("T", " ").replace("Z", "");
}

export function pill(category) {
  return el(`span.pill.cat-${category}`, { text: category });
}

export function legend() {
  return el("div.legend", {}, CATEGORIES.map(pill));
}

// A table of a span's attributes; the guard decision's audit record becomes a link
// made by auditLink(seq) (or plain text when no link maker is given).
export function attributeTable(span, auditLink) {
  const rows = [];
  const add = (key, value) => rows.push(el("tr", {}, el("td", { text: key }), el("td", {}, value)));
  add("name", span.name);
  add("category", pill(span.category));
  add("service", span.service || "–");
  add("span id", span.span_id);
  add("parent", span.parent_span_id || "–");
  add("kind", span.kind);
  add("status", el(`span.status-${span.status}`, { text: span.status_message ? `${span.status}: ${span.status_message}` : span.status }));
  add("duration", fmtMs(span.duration_ms));
  if (span.decision) add("guard decision", el(`span.${span.decision}`, { text: span.decision }));
  if (span.audit_seq !== null && span.audit_seq !== undefined) {
    add("audit record", auditLink ? auditLink(span.audit_seq) : `#${span.audit_seq}`);
  }
  for (const [key, value] of Object.entries(span.attributes || {})) {
    add(key, typeof value === "string" ? value : JSON.stringify(value));
  }
  const table = el("table.attrs", {}, el("tbody", {}, rows));
  const events = (span.events || []).map((e) => el("li", { text: `${e.name} ${JSON.stringify(e.attributes || {})}` }));
  return el("div", {}, table, events.length ? el("div", {}, el("h4", { text: "Events" }), el("ul", {}, events)) : null);
}

// createWaterfall(container, {trace, load(parentId|null, offset) -> {spans, more},
//   onSelect(span), autoRows}) renders the roots, then opens levels breadth-first until
// about autoRows rows are shown; any row opens on click.
export function createWaterfall(container, options) {
  const { trace, load, onSelect } = options;
  const autoRows = options.autoRows ?? 300;
  const start = Number(trace.start_ns);
  const total = Math.max(Number(trace.end_ns) - start, 1);
  let shown = 0;
  let selected = null;
  const wf = el("div.wf", { role: "tree" });
  container.append(wf);

  function row(span, depth) {
    const left = ((Number(span.start_ns) - start) / total) * 100;
    const width = (((span.end_ns ? Number(span.end_ns) : Number(span.start_ns)) - Number(span.start_ns)) / total) * 100;
    const toggle = el("span.wf-toggle", { text: span.child_count ? "▸" : "" });
    const line = el("div.wf-row", { role: "treeitem", dataset: { spanId: span.span_id, category: span.category } },
      el("div.wf-name", { style: { paddingLeft: `${0.4 + depth * 1.1}rem` }, title: span.name },
        toggle, pill(span.category), " ", el("span.wf-label", { text: span.name }),
        span.decision === "deny" ? el("span.deny", { text: " denied" }) : null,
        el("span.wf-service", { text: span.service || "" })),
      el("div.wf-track", {}, el(`div.wf-bar.cat-${span.category}${span.status === "error" ? ".error" : ""}`,
        { style: { left: `${Math.max(0, Math.min(left, 100)).toFixed(3)}%`, width: `${Math.max(0, Math.min(width, 100 - left)).toFixed(3)}%` } })),
      el("div.wf-dur", { text: fmtMs(span.duration_ms) }));
    const kids = el("div.wf-children", { role: "group" });
    kids.hidden = true;
    const node = { span, depth, line, kids, toggle, loaded: false, open: false };
    line.addEventListener("click", (event) => {
      event.stopPropagation();
      if (selected) selected.classList.remove("selected");
      selected = line;
      line.classList.add("selected");
      if (onSelect) onSelect(span);
      if (span.child_count) setOpen(node, !node.open);
    });
    shown += 1;
    return node;
  }

  async function fill(parentNode, box, parentId, depth, offset, given) {
    const page = given || await load(parentId, offset);
    const nodes = page.spans.map((s) => row(s, depth));
    for (const n of nodes) box.append(n.line, n.kids);
    if (page.more) {
      const more = el("div.wf-more", {}, el("button", {
        text: "load more",
        onclick: async (event) => {
          event.stopPropagation();
          more.remove();
          await fill(parentNode, box, parentId, depth, offset + page.spans.length);
        },
      }));
      box.append(more);
    }
    return nodes;
  }

  async function setOpen(node, open, given) {
    node.open = open;
    node.toggle.textContent = node.span.child_count ? (open ? "▾" : "▸") : "";
    node.kids.hidden = !open;
    if (open && !node.loaded) {
      node.loaded = true;
      return fill(node, node.kids, node.span.span_id, node.depth + 1, 0, given);
    }
    return [];
  }

  // With options.opening, the first levels come in one answer ({roots, children}), and
  // the spans it opened are opened here the same way, without a request each.
  async function openingLevels() {
    const { roots, children } = await options.opening();
    let queue = await fill(null, wf, null, 0, 0, { spans: roots, more: roots.length >= (options.pageSize ?? 200) });
    while (queue.length) {
      const next = [];
      for (const node of queue) {
        const kids = children[node.span.span_id];
        if (kids) {
          next.push(...(await setOpen(node, true, { spans: kids, more: kids.length < node.span.child_count })));
        }
      }
      queue = next;
    }
  }

  const ready = (async () => {
    if (options.opening) {
      await openingLevels();
      wf.dataset.ready = "true";
      return;
    }
    let queue = await fill(null, wf, null, 0, 0);
    while (queue.length && shown < autoRows) {
      const next = [];
      for (const node of queue) {
        if (shown >= autoRows) break;
        if (node.span.child_count) next.push(...(await setOpen(node, true)));
      }
      queue = next;
    }
    wf.dataset.ready = "true";
  })();
  return { element: wf, ready };
}
