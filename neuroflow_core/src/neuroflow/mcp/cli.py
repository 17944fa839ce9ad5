"""``neuroflow mcp list|tools|call|status``: the configured MCP servers, from the shell.

Servers come from ``[mcp.servers]`` of the configuration, or ``--config FILE`` (YAML,
``mcpServers`` JSON or TOML).  Each command starts the servers it needs, does its work
and stops them; the client is built with :func:`neuroflow.create_backend`, so ``call``
passes the security gate (actor ``cli``) like any other tool call.
"""

from __future__ import annotations

import json
from typing import Any

import click

_CONFIG = click.option("--config", "config_file", metavar="FILE",
                       help="Servers from this file instead of [mcp.servers].")


def _servers(config_file: str | None) -> dict[str, Any]:
    from neuroflow.config import get_config
    from neuroflow.mcp.config import MCPConfigParser

    if config_file:
        return dict(MCPConfigParser().parse_from_file(config_file).servers)
    settings = get_config().section("mcp").settings
    return dict(settings.servers) if settings is not None else {}


def _pick(servers: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    from neuroflow.errors import ConfigError

    unknown = [n for n in names if n not in servers]
    if unknown:
        raise ConfigError(f"server: unknown MCP server {unknown[0]!r} "
                          f"(configured: {', '.join(servers) or 'none'})")
    return {n: s for n, s in servers.items() if (n in names if names else s.enabled)}


def _run(servers: dict[str, Any], work: Any) -> Any:
    import anyio

    from neuroflow.mcp.facade import open_mcp_client

    client = open_mcp_client(actor="cli", what="neuroflow mcp")

    async def go() -> Any:
        async with client:
            await client.start_from_config(servers)
            return await work(client)

    return anyio.run(go)


@click.group("mcp")
def mcp_group() -> None:
    """MCP servers: list them, their tools, call one, check their status."""


@mcp_group.command("list")
@_CONFIG
def list_servers(config_file: str | None) -> None:
    """List the configured servers (without starting them)."""
    for name, server in _servers(config_file).items():
        where = server.url if server.url else " ".join([server.command or "", *server.args])
        state = "" if server.enabled else "  (disabled)"
        click.echo(f"{name}  {server.transport.value}  {where}{state}")


@mcp_group.command("status")
@_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print the statuses as JSON.")
@click.argument("names", nargs=-1)
def status(config_file: str | None, as_json: bool, names: tuple[str, ...]) -> None:
    """Start the servers, ping each, print its status; exit 1 if one is down."""
    import attrs

    async def work(client: Any) -> dict[str, Any]:
        for name, st in client.get_all_statuses().items():
            if st.connected:
                try:
                    await client.ping(name)
                except Exception:  # noqa: BLE001 - shown in the status
                    pass
        return client.get_all_statuses()

    statuses = _run(_pick(_servers(config_file), names), work)
    if as_json:
        click.echo(json.dumps({n: attrs.asdict(s) for n, s in statuses.items()}, indent=2))
    else:
        for name, st in statuses.items():
            if st.connected:
                latency = f"{st.latency_ms:.1f} ms" if st.latency_ms is not None else "-"
                click.echo(f"{name}: ok  tools={st.tool_count}  ping={latency}")
            else:
                click.echo(f"{name}: down  {st.last_error or ''}")
    if any(not st.connected for st in statuses.values()):
        raise SystemExit(1)


@mcp_group.command("tools")
@_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print the tools as JSON.")
@click.argument("names", nargs=-1)
def tools(config_file: str | None, as_json: bool, names: tuple[str, ...]) -> None:
    """List the tools of the servers (all enabled ones, or NAMES)."""
    found = _run(_pick(_servers(config_file), names), lambda client: client.list_tools())
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for tool in found:
        first = tool["description"].strip().splitlines()[:1]
        click.echo(f"{tool['name']}" + (f"  {first[0]}" if first else ""))


@mcp_group.command("call")
@_CONFIG
@click.option("--timeout", type=float, metavar="S", help="Cancel the call after S seconds.")
@click.argument("server")
@click.argument("tool")
@click.argument("arguments", default="{}", metavar="[JSON]")
def call(config_file: str | None, timeout: float | None, server: str, tool: str,
         arguments: str) -> None:
    """Call TOOL of SERVER with JSON arguments; print the result; exit 1 on a tool error.

    Example: neuroflow mcp call filesystem read_file '{"path": "/tmp/a.txt"}'
    """
    from neuroflow.errors import ConfigError

    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"JSON: expected a JSON object of arguments: {exc}") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"JSON: expected a JSON object of arguments, got {arguments!r}")
    servers = _pick(_servers(config_file), (server,))
    result = _run(servers, lambda client: client.execute_tool(server, tool, parsed,
                                                              timeout=timeout))
    value = result["result"]
    click.echo(value if isinstance(value, str) else json.dumps(value, indent=2))
    if result["is_error"]:
        raise SystemExit(1)
