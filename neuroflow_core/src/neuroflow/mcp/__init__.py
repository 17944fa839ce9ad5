"""MCP (Model Context Protocol): manage tool servers, discover and call their tools.

``MCPServerManager`` and ``RealMCPExecutor`` build the configured MCP client (plugin
``neuroflow-mcp``: ``pip install 'neuroflow[mcp]'``) through
:func:`neuroflow.create_backend`, so every tool call passes the security gate and is
audited.  ``MCPConfigParser`` reads servers from YAML, ``mcpServers`` JSON (Claude
Desktop, Cursor, VS Code) or TOML; ``MCPHealthMonitor`` pings servers and reconnects
failing ones.  Importing this package never imports the plugin or the ``mcp`` SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow._lazy import lazy_exports

if TYPE_CHECKING:
    from neuroflow.mcp.agent import MCPToolError, use_mcp
    from neuroflow.mcp.config import (
        MCPConfig,
        MCPConfigParser,
        MCPServerConfig,
        MCPSettings,
        NameCollision,
        Transport,
    )
    from neuroflow.mcp.facade import MCPServerManager, RealMCPExecutor, open_mcp_client
    from neuroflow.mcp.guarded import GuardedMCPClient
    from neuroflow.mcp.health import MCPHealthMonitor
    from neuroflow.mcp.model import MCPServerError, MCPServerStatus, tool_result
    from neuroflow.mcp.protocol import MCPClient

_LAZY: dict[str, str] = {
    "MCPClient": "neuroflow.mcp.protocol",
    "MCPConfig": "neuroflow.mcp.config",
    "MCPConfigParser": "neuroflow.mcp.config",
    "MCPServerConfig": "neuroflow.mcp.config",
    "MCPSettings": "neuroflow.mcp.config",
    "NameCollision": "neuroflow.mcp.config",
    "Transport": "neuroflow.mcp.config",
    "MCPServerManager": "neuroflow.mcp.facade",
    "RealMCPExecutor": "neuroflow.mcp.facade",
    "open_mcp_client": "neuroflow.mcp.facade",
    "GuardedMCPClient": "neuroflow.mcp.guarded",
    "MCPToolError": "neuroflow.mcp.agent",
    "use_mcp": "neuroflow.mcp.agent",
    "MCPHealthMonitor": "neuroflow.mcp.health",
    "MCPServerError": "neuroflow.mcp.model",
    "MCPServerStatus": "neuroflow.mcp.model",
    "tool_result": "neuroflow.mcp.model",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "GuardedMCPClient",
    "MCPClient",
    "MCPConfig",
    "MCPConfigParser",
    "MCPHealthMonitor",
    "MCPServerConfig",
    "MCPServerError",
    "MCPServerManager",
    "MCPServerStatus",
    "MCPSettings",
    "MCPToolError",
    "NameCollision",
    "RealMCPExecutor",
    "Transport",
    "open_mcp_client",
    "tool_result",
    "use_mcp",
]
