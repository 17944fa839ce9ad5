"""The ``neuroflow`` command.  Its subcommands come from plugins, built-ins included.

Every subcommand is added through the ``neuroflow_cli_commands`` hook, so a plugin's
commands sit beside the core's.  Errors NeuroFlow raises on purpose are printed as one
clear message and exit with status 2; no traceback.
"""

from __future__ import annotations

import sys

import click

from neuroflow.errors import NeuroflowError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except NeuroflowError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neuroflow", prog_name="neuroflow")
def cli() -> None:
    """NeuroFlow: sandboxes, memory, tools and guards for AI agents.

    Configuration comes from neuroflow.toml, [tool.neuroflow] in pyproject.toml and
    NEUROFLOW_* environment variables; see `neuroflow config show`.
    """


def build_cli() -> click.Group:
    """Return the root group with every plugin's commands added."""
    from neuroflow.plugins import get_plugin_manager

    try:
        get_plugin_manager().add_cli_commands(cli)
    except NeuroflowError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    return cli


def main() -> None:
    """Entry point of the ``neuroflow`` console script."""
    build_cli()(prog_name="neuroflow")
