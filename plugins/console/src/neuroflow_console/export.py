"""A single-file HTML export of one trace: its spans, their audit records, the console's
stylesheet and waterfall module inlined, no network needed to open it."""

from __future__ import annotations

import html
import json
import re
from importlib.resources import files
from typing import Any

_STATIC = files("neuroflow_console") / "static"


def _script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(data, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def export_html(trace: dict[str, Any], spans: list[dict[str, Any]],
                audit: list[dict[str, Any]]) -> str:
    """The whole document: open it in any browser, attach it to a bug report."""
    css = (_STATIC / "style.css").read_text(encoding="utf-8")
    module = (_STATIC / "waterfall.js").read_text(encoding="utf-8")
    # The module's exports become plain declarations in the inline script.
    module = re.sub(r"^export (function|const|class) ", r"\1 ", module, flags=re.M)
    title = html.escape(f"trace {trace['trace_id']} ({trace.get('root_name') or ''})")
    boot = (_STATIC / "export-boot.js").read_text(encoding="utf-8")
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title><style>{css}</style></head>"
        "<body class=\"export\"><header class=\"top\"><h1>NeuroFlow trace</h1>"
        f"<span class=\"muted\">{html.escape(trace['trace_id'])}</span></header>"
        "<main id=\"view\"></main>"
        f"<script type=\"application/json\" id=\"trace-data\">{_script_json(trace)}</script>"
        f"<script type=\"application/json\" id=\"span-data\">{_script_json(spans)}</script>"
        f"<script type=\"application/json\" id=\"audit-data\">{_script_json(audit)}</script>"
        f"<script type=\"module\">{module}\n{boot}</script></body></html>\n"
    )
