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
        from neuroflow.units import parse_size

        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _human(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return str(n)


#: ``neuroflow sandbox run`` flags and the SandboxConfig fields they set.
_FLAGS = {"timeout": "wall_timeout", "cpu": "cpu_time_limit", "memory": "memory_limit",
          "max_processes": "max_processes", "max_output": "max_output_bytes",
          "workdir": "work_dir", "allow": "allowed_commands",
          "allow_weaker": "allow_weaker_isolation"}


def _flag_message(message: str, backend: str) -> str:
    """Name the command-line flag, not the config field it sets: ``Invalid value for
    --timeout: expected ...`` rather than ``sandbox.process.wall_timeout: expected ...``."""
    for flag, field in _FLAGS.items():
        prefix = f"sandbox.{backend}.{field}: "
        if message.startswith(prefix):
            return f"Invalid value for --{flag.replace('_', '-')}: {message[len(prefix):]}"
    return message


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

    from neuroflow.backends import create_backend
    from neuroflow.config import get_config
    from neuroflow.errors import ConfigError

    name = backend or get_config().section("sandbox").backend
    given = {"timeout": timeout, "cpu": cpu, "memory": memory, "max_processes": max_processes,
             "max_output": max_output, "workdir": workdir, "allow": allow or None,
             "allow_weaker": allow_weaker or None}
    overrides = {_FLAGS[flag]: value for flag, value in given.items() if value is not None}
    try:
        sandbox = create_backend("isolation", name, overrides=overrides, field="--backend",
                                 actor="cli")
    except ConfigError as exc:
        raise ConfigError([_flag_message(line, name) for line in exc.problems]) from None

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
