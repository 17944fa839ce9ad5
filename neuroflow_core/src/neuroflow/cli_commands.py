"""The core's own subcommands: ``plugins``, ``config show|check``, ``doctor`` and ``demo``.

Registered as the built-in plugin ``neuroflow.cli`` through ``neuroflow_cli_commands``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuroflow.hookspecs import hookimpl

if TYPE_CHECKING:
    import click

# click is imported inside the functions: this module is registered (imported) whenever
# plugins are discovered, also by programs that never build the CLI.


def _plugins_command() -> click.Command:
    import click

    @click.command("plugins")
    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    def plugins(as_json: bool) -> None:
        """List every plugin: distribution, version, what it provides and its status."""
        from neuroflow.plugins import get_plugin_manager

        infos = get_plugin_manager().plugin_infos()
        if as_json:
            click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
            return
        for info in infos:
            version = f" {info.version}" if info.version else ""
            click.echo(f"{info.name}  ({info.distribution}{version})  {info.status}")
            for kind, names in sorted(info.provides.items()):
                click.echo(f"    {kind}: {', '.join(sorted(names))}")
            if info.error:
                click.echo(f"    why: {info.error}")

    return plugins


def _config_group() -> click.Group:
    import click

    @click.group("config")
    def config() -> None:
        """Show or check configuration."""

    @config.command("show")
    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    def show(as_json: bool) -> None:
        """Print the effective configuration and where each value came from."""
        from neuroflow.config import get_config
        from neuroflow.security.levels import level_settings

        cfg = get_config()
        data = cfg.as_dict()
        security = cfg.section("security").settings
        if security is not None:
            # What the level stands for, concretely, for every isolation backend.
            data["security"]["level_settings"] = level_settings(security.level)
        if isinstance(data.get("memory"), dict):
            from neuroflow.memory import describe_memory_store

            # What the configured store actually does (it connects): e.g. which
            # semantic-search path a PostgreSQL store is on.
            active = describe_memory_store(cfg)
            data["memory"]["active"] = active
            sources = {**cfg.sources,
                       **{f"memory.active.{k}": "what the store reports" for k in active}}
        else:
            sources = dict(cfg.sources)
        if as_json:
            click.echo(json.dumps({"config": data, "sources": dict(cfg.sources)}, indent=2,
                                  default=str))
            return
        files = ", ".join(str(p) for p in cfg.files) or "none (defaults)"
        click.echo(f"# files read: {files}")
        _print_table(data, "", sources)

    @config.command("check")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    def check(file: Path) -> None:
        """Check FILE (neuroflow.toml or pyproject.toml) and report every problem."""
        from neuroflow.config import load_config
        from neuroflow.errors import ConfigError

        if not file.is_file():
            raise click.BadParameter(f"{file} does not exist", param_hint="FILE")
        try:
            load_config(files=[file], environ={})
        except ConfigError as exc:
            for line in exc.problems:
                click.echo(f"{file}: {line}", err=True)
            sys.exit(1)
        click.echo(f"{file}: ok")

    return config


def _demo_command() -> Any:
    import click

    @click.command("demo")
    @click.argument("message", nargs=-1)
    @click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
                  default=Path(".neuroflow-demo"), show_default=True,
                  help="Where the demo keeps its sandbox folder, audit log and traces.")
    def demo(message: tuple[str, ...], workdir: Path) -> None:
        """Run the research agent example and explain what happened.

        An agent researches MESSAGE (default: "Research AI trends and write a report")
        with a tool that runs code in a sandbox, stores findings in memory, and is
        traced, guarded and audited.  Offline by default (a scripted model); set
        [llm] backend = "openai" to use a real one.
        """
        import anyio

        from neuroflow.examples.research_agent import run_research_agent

        text = " ".join(message) or "Research AI trends and write a report"
        anyio.run(lambda: run_research_agent(text, workdir=workdir, echo=click.echo))

    return demo


def _print_table(data: dict[str, Any], prefix: str, sources: Any) -> None:
    import click

    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            _print_table(value, dotted + ".", sources)
        else:
            origin = sources.get(dotted, "default")
            click.echo(f"{dotted} = {json.dumps(value, default=str)}    # {origin}")


def _doctor_command() -> click.Command:
    import click

    @click.command("doctor")
    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    def doctor(as_json: bool) -> None:
        """Say what this machine can enforce and what the active configuration needs."""
        import attrs

        from neuroflow.config import get_config
        from neuroflow.errors import ConfigError
        from neuroflow.plugins import get_plugin_manager

        manager = get_plugin_manager()
        checks = manager.doctor_checks()
        failed_plugins = [i for i in manager.plugin_infos() if i.status == "failed"]
        try:
            cfg = get_config()
            selection = {name: list(sec.selected) for name, sec in cfg.sections.items()}
            config_problems: list[str] = []
        except ConfigError as exc:
            selection, config_problems = {}, exc.problems
        if as_json:
            click.echo(json.dumps({
                "checks": [attrs.asdict(c) for c in checks],
                "selected": selection,
                "config_problems": config_problems,
                "failed_plugins": [i.to_dict() for i in failed_plugins],
            }, indent=2))
        else:
            click.echo("Machine:")
            for c in checks:
                mark = "ok " if c.ok else ("MISSING" if c.required else "no ")
                click.echo(f"  [{mark}] {c.name}" + (f": {c.detail}" if c.detail else ""))
            click.echo("Selected by the active configuration:")
            for name, backends in selection.items():
                click.echo(f"  {name}: {', '.join(backends)}")
            for line in config_problems:
                click.echo(f"  config problem: {line}")
            for info in failed_plugins:
                click.echo(f"  plugin {info.name} failed: {info.error}")
        if config_problems or failed_plugins or any(c.required and not c.ok for c in checks):
            sys.exit(1)

    return doctor


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add the core's commands."""
    cli.add_command(_plugins_command())
    cli.add_command(_config_group())
    cli.add_command(_doctor_command())
    cli.add_command(_demo_command())
