"""The ``neuroflow`` command.  Its subcommands come from plugins, built-ins included.

Every subcommand is added through the ``neuroflow_cli_commands`` hook, so a plugin's
commands sit beside the core's.  Errors NeuroFlow raises on purpose are printed as one
clear message and exit with status 2; no traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from neuroflow.errors import NeuroflowError

if TYPE_CHECKING:
    from neuroflow.plugins import PluginManager


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except NeuroflowError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


def _root() -> click.Group:
    @click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="neuroflow", prog_name="neuroflow")
    def cli() -> None:
        """NeuroFlow: sandboxes, memory, tools and guards for AI agents.

        Configuration comes from neuroflow.toml, [tool.neuroflow] in pyproject.toml and
        NEUROFLOW_* environment variables; see `neuroflow config show`.  Installed
        plugins: `neuroflow plugins`.
        """

    return cli


#: The root group without plugin commands (``build_cli()`` returns a fresh, full one).
cli: click.Group = _root()


def build_cli(manager: PluginManager | None = None) -> click.Group:
    """Return a fresh root group with every plugin's commands added.

    A plugin whose ``neuroflow_cli_commands`` hook raises is reported on stderr (and as
    failed by ``neuroflow plugins``); the other commands still work.
    """
    from neuroflow.plugins import get_plugin_manager

    root = _root()
    try:
        failed = (manager or get_plugin_manager()).add_cli_commands(root)
    except NeuroflowError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for info in failed:
        click.echo(f"warning: plugin {info.name!r} ({info.distribution}) could not add its "
                   f"commands: {info.error}", err=True)
    return root


def main() -> None:
    """Entry point of the ``neuroflow`` console script."""
    build_cli()(prog_name="neuroflow")
