"""The MCP capability's built-in plugin: no backends (the ``mcp`` client comes from the
``neuroflow-mcp`` plugin), only the ``neuroflow mcp`` command group.  Cheap to import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow mcp list|tools|call|status``."""
    from neuroflow.mcp.cli import mcp_group

    cli.add_command(mcp_group)
