"""NeuroFlow's MCP client backend ``mcp``, on the official ``mcp`` SDK.

The client lives in :mod:`neuroflow_mcp.client`; this package's entry point
(:mod:`neuroflow_mcp.plugin`) only registers names, so importing it does not import the SDK.
"""

__version__ = "0.1.0"
