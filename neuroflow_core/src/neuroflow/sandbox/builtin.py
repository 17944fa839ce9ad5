"""The sandbox capability's built-in plugin: the ``process`` backend, doctor checks, CLI.

Cheap to import: everything is referenced lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendKind, BackendSpec, hookimpl

if TYPE_CHECKING:
    import click

    from neuroflow import Check


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """Register the ``process`` backend (SPEC's ``SandboxIsolator``)."""
    return [
        BackendSpec(
            name="process",
            kind=BackendKind.ISOLATION,
            factory="neuroflow.sandbox.process:SandboxIsolator",
            config_class="neuroflow.sandbox.config:SandboxConfig",
            description="local processes under rlimits and per-run cgroups",
            enforces_gate=True,
        )
    ]


@hookimpl
def neuroflow_doctor_checks() -> list[Check]:
    """User namespaces, seccomp, cgroups and controllers, rlimits, the real python3."""
    from neuroflow.sandbox.doctor import all_checks

    return all_checks()


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow sandbox run``."""
    from neuroflow.sandbox.cli import sandbox_group

    cli.add_command(sandbox_group)
