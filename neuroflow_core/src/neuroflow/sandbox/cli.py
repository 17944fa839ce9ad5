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


#: ``neuroflow sandbox run`` flags and the ``SandboxConfig`` fields they set.  A backend
#: whose config class has other field names declares its own table as a class attribute
#: ``cli_flags`` (flag -> field, only the flags that apply); without one, a flag applies
#: when the config class has the field named here.
DEFAULT_FLAGS = {"timeout": "wall_timeout", "cpu": "cpu_time_limit", "memory": "memory_limit",
                 "max_processes": "max_processes", "max_output": "max_output_bytes",
                 "workdir": "work_dir", "allow": "allowed_commands",
                 "allow_weaker": "allow_weaker_isolation"}


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def flags_for(config_class: type | None) -> dict[str, str]:
    """The ``sandbox run`` flags a backend with ``config_class`` takes, and the fields
    they set."""
    import attrs

    if config_class is None:
        return {}
    declared = getattr(config_class, "cli_flags", None)
    if declared is not None:
        return dict(declared)
    names = {a.name for a in attrs.fields(config_class)} if attrs.has(config_class) else set()
    return {flag: field for flag, field in DEFAULT_FLAGS.items() if field in names}


def _overrides(name: str, config_class: type | None, given: dict[str, Any],
               settings: tuple[str, ...]) -> dict[str, Any]:
    """The option values the flags and ``--set`` give backend ``name``; a flag that does
    not apply to it is a usage error naming the flag and what does apply."""
    import attrs

    from neuroflow.config import parse_value

    table = flags_for(config_class)
    overrides: dict[str, Any] = {}
    for flag, value in given.items():
        if value is None:
            continue
        if flag not in table:
            usable = ", ".join(_flag(f) for f in table) or "none"
            raise click.UsageError(
                f"{_flag(flag)} does not apply to the {name!r} sandbox backend (its flags: "
                f"{usable}; set other options with --set NAME=VALUE or in [sandbox.{name}])")
        overrides[table[flag]] = value
    fields = ({a.name for a in attrs.fields(config_class)}
              if config_class is not None and attrs.has(config_class) else set())
    for item in settings:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.UsageError(f"--set: expected NAME=VALUE, got {item!r}")
        if key not in fields:
            from neuroflow.config import did_you_mean

            hint = did_you_mean(key, sorted(fields))
            also = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise click.UsageError(f"--set: the {name!r} sandbox backend has no option "
                                   f"{key!r}{also}")
        overrides[key] = parse_value(raw)
    return overrides


def _flag_message(message: str, backend: str, table: dict[str, str]) -> str:
    """Name the command-line flag, not the config field it sets: ``Invalid value for
    --timeout: expected ...`` rather than ``sandbox.process.wall_timeout: expected ...``."""
    for flag, field in table.items():
        prefix = f"sandbox.{backend}.{field}: "
        if message.startswith(prefix):
            return f"Invalid value for {_flag(flag)}: {message[len(prefix):]}"
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
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Set any option of the backend (repeatable), e.g. --set max_fuel=1000000; "
                   "the value is read as a TOML literal.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.argument("command", nargs=-1, required=True)
def run(backend: str | None, timeout: float | None, cpu: float | None, memory: int | None,
        max_processes: int | None, max_output: int | None, workdir: str | None,
        allow: tuple[str, ...], allow_weaker: bool, settings: tuple[str, ...], as_json: bool,
        command: tuple[str, ...]) -> None:
    """Run COMMAND in the sandbox: `neuroflow sandbox run --cpu 1 -- python3 -c 'print(1)'`.

    The limit flags set the selected backend's options: each backend takes those that
    apply to it (`--backend wasm` takes --timeout, --memory and --max-output) and refuses
    the others, naming them; --set NAME=VALUE sets any of its options.  Prints the exit
    code, why it ended, wall and CPU time, peak memory, then stdout and stderr; exits with
    the command's exit code (128+N if signal N ended it).
    """
    import anyio

    from neuroflow.backends import backend_config_class, create_backend
    from neuroflow.config import get_config
    from neuroflow.errors import ConfigError

    name = backend or get_config().section("sandbox").backend
    config_class = backend_config_class("isolation", name, field="--backend")
    given = {"timeout": timeout, "cpu": cpu, "memory": memory, "max_processes": max_processes,
             "max_output": max_output, "workdir": workdir, "allow": allow or None,
             "allow_weaker": allow_weaker or None}
    overrides = _overrides(name, config_class, given, settings)
    try:
        sandbox = create_backend("isolation", name, overrides=overrides, field="--backend",
                                 actor="cli")
    except ConfigError as exc:
        table = {flag: field for flag, field in flags_for(config_class).items()
                 if given.get(flag) is not None}
        raise ConfigError([_flag_message(line, name, table) for line in exc.problems]) from None

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
