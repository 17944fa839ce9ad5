"""``neuroflow sandbox run``: run one command in the configured sandbox."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


class _Size(click.ParamType):
    name = "BYTES"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> int:
        from neuroflow.errors import ConfigError
        from neuroflow.sandbox.config import parse_size

        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value), field=f"--{param.name.replace('_', '-')}"
                              if param and param.name else "size")
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def _human(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return str(n)


#: The config fields ``run``'s options set, and the flags that set them (for messages).
_FLAGS = {
    "wall_timeout": "--timeout", "cpu_time_limit": "--cpu", "memory_limit": "--memory",
    "max_processes": "--max-processes", "max_output_bytes": "--max-output",
    "work_dir": "--workdir", "allowed_commands": "--allow",
    "allow_weaker_isolation": "--allow-weaker",
}


def _apply(config: Any, overrides: dict[str, Any]) -> Any:
    import attrs

    from neuroflow.errors import ConfigError

    if config is None or not attrs.has(type(config)):
        return config
    names = {a.name for a in attrs.fields(type(config))}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"this backend's config ({type(config).__name__}) has no option for "
                          f"{', '.join(_FLAGS.get(n, n) for n in unknown)}")
    try:
        return attrs.evolve(config, **overrides)
    except ConfigError as exc:
        # The config class names its field (maybe as a dotted path); say it with the flag.
        field, _, what = str(exc).partition(": ")
        flag = _FLAGS.get(field.rpartition(".")[2])
        if flag is None or not what:
            raise
        raise click.BadParameter(what, param_hint=flag) from None


@click.group("sandbox")
def sandbox_group() -> None:
    """Run commands in a sandbox."""


@sandbox_group.command("run", context_settings={"ignore_unknown_options": False})
@click.option("--backend", metavar="NAME", help="Sandbox backend (default: [sandbox] backend).")
@click.option("--timeout", type=float, metavar="S", help="Wall-clock timeout in seconds.")
@click.option("--cpu", type=float, metavar="S", help="CPU time limit in seconds.")
@click.option("--memory", type=_Size(), help="Memory limit, e.g. 256M or 1G.")
@click.option("--max-processes", type=int, metavar="N", help="Process count limit.")
@click.option("--max-output", type=_Size(), help="Bytes kept from each of stdout/stderr.")
@click.option("--workdir", metavar="DIR", help="Working directory (created if missing).")
@click.option("--allow", "allow", multiple=True, metavar="CMD",
              help="Allowed command (repeatable); others are refused.")
@click.option("--allow-weaker", is_flag=True,
              help="Run even if this machine cannot enforce every limit.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.argument("command", nargs=-1, required=True)
def run(backend: str | None, timeout: float | None, cpu: float | None, memory: int | None,
        max_processes: int | None, max_output: int | None, workdir: str | None,
        allow: tuple[str, ...], allow_weaker: bool, as_json: bool,
        command: tuple[str, ...]) -> None:
    """Run COMMAND in the sandbox: `neuroflow sandbox run --cpu 1 -- python3 -c 'print(1)'`.

    Prints the exit code, why it ended, wall and CPU time, peak memory, then stdout and
    stderr; exits with the command's exit code (128+N if signal N ended it).
    """
    import anyio

    from neuroflow.config import load_config
    from neuroflow.plugins import get_plugin_manager

    section = load_config().section("sandbox")
    name = backend or section.backend
    config = section.options_for(name)
    if config is None or isinstance(config, dict):
        spec = get_plugin_manager().get_backend("isolation", name, field="--backend")
        config_class = spec.load_config_class()
        config = config_class() if config_class is not None else None
    overrides: dict[str, Any] = {}
    for key, value in (("wall_timeout", timeout), ("cpu_time_limit", cpu),
                       ("memory_limit", memory), ("max_processes", max_processes),
                       ("max_output_bytes", max_output), ("work_dir", workdir)):
        if value is not None:
            overrides[key] = value
    if allow:
        overrides["allowed_commands"] = allow
    if allow_weaker:
        overrides["allow_weaker_isolation"] = True
    config = _apply(config, overrides)
    sandbox = get_plugin_manager().create("isolation", name, config)

    async def go() -> Any:
        async with sandbox:
            return await sandbox.execute(command[0], list(command[1:]))

    result = anyio.run(go)
    if as_json:
        data = result.to_dict() if hasattr(result, "to_dict") else dict(vars(result))
        data["backend"] = name
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(f"exit code:   {result.exit_code}", err=True)
        click.echo(f"reason:      {result.reason}", err=True)
        click.echo(f"wall time:   {result.wall_time_ms:.1f} ms", err=True)
        click.echo(f"cpu time:    {result.cpu_time_ms:.1f} ms", err=True)
        click.echo(f"peak memory: {_human(result.peak_memory_bytes)}", err=True)
        for warning in getattr(result, "warnings", ()):
            click.echo(f"warning:     {warning}", err=True)
        click.echo("--- stdout" + (" (truncated)" if result.stdout_truncated else "")
                   + " ---", err=True)
        sys.stdout.flush()
        click.echo(result.stdout.decode("utf-8", "replace"), nl=False)
        click.echo("--- stderr" + (" (truncated)" if result.stderr_truncated else "")
                   + " ---", err=True)
        click.echo(result.stderr.decode("utf-8", "replace"), nl=False, err=True)
    code = result.exit_code
    sys.exit(code if code >= 0 else 128 - code)
