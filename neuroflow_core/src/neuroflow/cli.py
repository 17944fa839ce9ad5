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
    #: the plugin manager whose commands were added (set by :func:`build_cli`)
    plugin_manager: PluginManager | None = None

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except NeuroflowError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Resolve as click does; an unknown name says which unloaded plugin provides it."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            if self.plugin_manager is None or not args or args[0].startswith("-"):
                raise  # not an unknown command (an unknown option, say)
            better = _explain_missing(self.plugin_manager, args[0], exc.format_message())
            if better is None:
                raise
            raise click.UsageError(better, ctx=ctx) from None


def _builtin_commands(name: str) -> set[str] | None:
    """The commands built-in plugin ``name`` adds, found by letting its hook fill a
    throwaway group (core code only: a blocked third-party plugin is never imported);
    ``None`` when that cannot be known."""
    import importlib

    from neuroflow.plugins import BUILTIN_PLUGINS

    if name not in BUILTIN_PLUGINS:
        return None
    scratch = click.Group("scratch")
    try:
        hook = getattr(importlib.import_module(BUILTIN_PLUGINS[name]), "neuroflow_cli_commands",
                       None)
        if hook is None:
            return set()
        hook(cli=scratch)
    except Exception:  # noqa: BLE001 - a plugin that cannot say is reported as unknown
        return None
    return set(scratch.commands)


def _how_to_load(name: str, error: str | None) -> str:
    """Where plugin ``name`` was kept out, and how to let it in."""
    import os

    if error == "not in the allow list":
        where = ("NEUROFLOW_PLUGINS" if os.environ.get("NEUROFLOW_PLUGINS") is not None
                 else "[plugins] allow in the configuration (see `neuroflow config show`)")
        return f"which is not in the allow list; add {name!r} to {where}"
    blocked = [n.strip() for n in os.environ.get("NEUROFLOW_BLOCK_PLUGINS", "").split(",")]
    where = ("NEUROFLOW_BLOCK_PLUGINS" if name in blocked
             else "[plugins] block in the configuration (see `neuroflow config show`)")
    return f"which is blocked; remove {name!r} from {where}"


def _explain_missing(manager: PluginManager, command: str, message: str) -> str | None:
    """A better message than click's for ``command``, when a plugin that was not loaded
    (blocked or failed) provides it or may provide it; ``None`` to keep click's."""
    maybe = []
    for info in manager.plugin_infos():
        if info.status not in ("blocked", "failed"):
            continue
        provided = _builtin_commands(info.name) if info.builtin else None
        if provided is not None and command not in provided:
            continue
        if info.status == "failed":
            state = f"which failed to load ({info.error}); see `neuroflow plugins`"
        else:
            state = _how_to_load(info.name, info.error)
        if provided is not None:
            return (f"No such command {command!r}: it is provided by plugin {info.name!r}, "
                    f"{state}.")
        maybe.append(f"{info.name!r} ({info.distribution}, "
                     + (f"failed: {info.error})" if info.status == "failed"
                        else f"{state.removeprefix('which is ')})"))
    if not maybe:
        return None
    return (f"{message}\nPlugins that were not loaded may provide it: {'; '.join(maybe)}. "
            "See `neuroflow plugins`.")


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
    manager = manager or get_plugin_manager()
    if isinstance(root, _Group):
        root.plugin_manager = manager
    try:
        failed = manager.add_cli_commands(root)
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
