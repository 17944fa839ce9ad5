"""The security capability's built-in plugin: the four guards and ``neuroflow audit``.

Registered as ``neuroflow.security``; everything is referenced lazily so importing this
module costs nothing beyond :mod:`neuroflow.backends`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendKind, BackendSpec, hookimpl

if TYPE_CHECKING:
    import click

    from neuroflow import Check

_GUARDS = "neuroflow.security.guards"


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """The built-in guards: allowlist, paths, network, tools."""
    return [
        BackendSpec("allowlist", BackendKind.GUARD, f"{_GUARDS}.allowlist:AllowlistGuard",
                    f"{_GUARDS}.allowlist:AllowlistConfig",
                    "Command allow and deny lists"),
        BackendSpec("paths", BackendKind.GUARD, f"{_GUARDS}.paths:PathsGuard",
                    f"{_GUARDS}.paths:PathsConfig",
                    "File read/write roots and denied path patterns"),
        BackendSpec("network", BackendKind.GUARD, f"{_GUARDS}.network:NetworkGuard",
                    f"{_GUARDS}.network:NetworkConfig",
                    "Network on/off, host allow and deny lists, ports"),
        BackendSpec("tools", BackendKind.GUARD, f"{_GUARDS}.tools:ToolsGuard",
                    f"{_GUARDS}.tools:ToolsConfig",
                    "Per-agent tool permissions as rules"),
    ]


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow audit verify|tail``."""
    from neuroflow.security.cli import audit_group

    cli.add_command(audit_group)


@hookimpl
def neuroflow_doctor_checks() -> list[Check]:
    """Whether the configured audit log can be written, and where its key comes from."""
    from neuroflow.security.doctor import audit_checks

    return audit_checks()
