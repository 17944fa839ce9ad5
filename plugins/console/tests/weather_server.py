"""A small MCP server on the official SDK, started over stdio by the console's MCP probe."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("weather")


@server.tool()
def forecast(city: str) -> str:
    """Tomorrow's weather in a city."""
    return f"sunny in {city}"


@server.tool()
def alerts(region: str) -> list[str]:
    """Weather alerts for a region."""
    return []


if __name__ == "__main__":
    server.run()
