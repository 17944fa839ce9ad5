"""An MCP server written by hand on raw JSON-RPC lines, for what SDK servers never do:
it writes a line of garbage to stdout before every answer, and it pages ``tools/list``
(two tools per page, with ``nextCursor``); ``tool_4``'s input schema is written the way
zod and pydantic write them (a list of types, ``$ref``).  Two unlisted tools serve the
sandbox tests: ``hog`` (allocates ``mib`` MiB) and ``whoami`` (uid, working directory and
variable names, as JSON).  Only the standard library: any ``python3`` runs it."""

from __future__ import annotations

import json
import sys

TOOLS = [{"name": f"tool_{i}", "description": f"tool number {i}",
          "inputSchema": {"type": "object", "properties": {}}} for i in range(5)]
# The schema shapes zod-built (npm) and pydantic-built servers send: a list of types,
# draft-07's $schema, $ref into $defs.
TOOLS[4]["inputSchema"] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"note": {"type": ["string", "null"]}, "count": {"$ref": "#/$defs/Count"}},
    "required": ["count"],
    "additionalProperties": False,
    "$defs": {"Count": {"type": "integer", "minimum": 1}},
}


def answer(request: dict, result: dict) -> None:
    sys.stdout.write("garbage: this line is not JSON-RPC\n")
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}))
    sys.stdout.write("\n")
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        method = request.get("method")
        if "id" not in request:
            continue  # a notification
        params = request.get("params") or {}
        if method == "initialize":
            answer(request, {"protocolVersion": params["protocolVersion"],
                             "capabilities": {"tools": {"listChanged": False}},
                             "serverInfo": {"name": "raw", "version": "1"}})
        elif method == "tools/list":
            start = int(params.get("cursor") or 0)
            page = {"tools": TOOLS[start:start + 2]}
            if start + 2 < len(TOOLS):
                page["nextCursor"] = str(start + 2)
            answer(request, page)
        elif method == "tools/call" and params["name"] == "hog":
            hog = bytearray(int(params["arguments"]["mib"]) * 1024 * 1024)  # touched: real
            answer(request, {"content": [{"type": "text", "text": f"held {len(hog)}"}]})
        elif method == "tools/call" and params["name"] == "whoami":
            import os

            text = json.dumps({"uid": os.getuid(), "cwd": os.getcwd(),
                               "env": sorted(os.environ)})
            answer(request, {"content": [{"type": "text", "text": text}]})
        elif method == "tools/call":
            text = f"ran {params['name']}"
            if params.get("arguments"):
                text += " with " + json.dumps(params["arguments"], sort_keys=True)
            answer(request, {"content": [{"type": "text", "text": text}]})
        else:
            answer(request, {})


if __name__ == "__main__":
    main()
