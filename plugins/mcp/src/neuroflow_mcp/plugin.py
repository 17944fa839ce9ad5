"""Entry point ``mcp``: registers the ``mcp`` client backend.  Cheap to import: the ``mcp``
SDK is imported by the factory's module."""

from __future__ import annotations

from neuroflow import BackendKind, BackendSpec, hookimpl


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """The MCP client on the official SDK (``[mcp] backend = "mcp"``)."""
    return [
        BackendSpec(
            name="mcp",
            kind=BackendKind.MCP,
            factory="neuroflow_mcp.client:OfficialMCPClient",
            config_class="neuroflow.mcp:MCPConfig",
            description="MCP servers over stdio, streamable HTTP and SSE (official mcp SDK)",
        )
    ]
