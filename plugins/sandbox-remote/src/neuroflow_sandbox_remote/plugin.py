"""Entry point ``sandbox-remote``: the ``remote`` isolation backend, ``neuroflow cluster``
and its doctor checks.  Cheap to import: Ray loads only when the backend is used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendKind, BackendSpec, hookimpl

if TYPE_CHECKING:
    import click

    from neuroflow import Check


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """The ``remote`` backend: ``[sandbox] backend = "remote"``."""
    return [
        BackendSpec(
            name="remote",
            kind=BackendKind.ISOLATION,
            factory="neuroflow_sandbox_remote.backend:RemoteSandbox",
            config_class="neuroflow_sandbox_remote.config:RemoteConfig",
            description="commands spread over a Ray cluster, each node running a local backend",
        )
    ]


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow cluster up|status|down``."""
    from neuroflow_sandbox_remote.cli import cluster_group

    cli.add_command(cluster_group)


@hookimpl
def neuroflow_doctor_checks() -> list[Check]:
    """Ray installed; when ``remote`` is selected: the cluster, its nodes, their backends."""
    from neuroflow_sandbox_remote.doctor import checks

    return checks()
