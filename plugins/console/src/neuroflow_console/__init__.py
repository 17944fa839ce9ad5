"""NeuroFlow's local web console: ``neuroflow console``.

A small Starlette application served by uvicorn on 127.0.0.1 that shows agent runs,
trace waterfalls, the audit log (with the verdict of ``verify``), memory, sandbox
executions, MCP servers and the A2A registry.  Spans come from the local trace file and
from an OTLP/HTTP receiver and are kept in SQLite.  The page is static ES modules and CSS
shipped with this package; no build step.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
