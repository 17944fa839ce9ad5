"""Entry point ``mcp``: registers the ``mcp`` client backend.  Cheap to import: the ``mcp``
SDK is imported by the factory's module."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendKind, BackendSpec, hookimpl

if TYPE_CHECKING:
    import click


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


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow mcp serve`` to the core's ``mcp`` group."""
    import click

    group = cli.commands.get("mcp")
    if not isinstance(group, click.Group):
        return

    @group.command("serve")
    @click.option("--stdio", is_flag=True, help="Serve on stdin/stdout (the default).")
    @click.option("--http", "port", type=int, metavar="PORT",
                  help="Serve streamable HTTP on PORT (path /mcp).")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address for --http.")
    @click.option("--token-env", default="NEUROFLOW_MCP_TOKEN", show_default=True,
                  help="Variable holding the bearer token HTTP clients must send.")
    @click.option("--open", "open_", is_flag=True, help="Serve HTTP without a token.")
    @click.option("--actor", default="mcp-client", show_default=True,
                  help="Who the calls are audited as.")
    def serve(stdio: bool, port: int | None, host: str, token_env: str, open_: bool,
              actor: str) -> None:
        """Offer the configured sandbox (run_command) and memory (store, retrieve, search,
        delete) as MCP tools, guarded and audited."""
        from neuroflow_mcp.serve import serve as run

        run(stdio=stdio, port=port, host=host, token_env=token_env, open_=open_, actor=actor)
