"""The A2A capability's built-in plugin: the ``memory`` agent registry, the ``in-process``
transport and the ``neuroflow a2a`` command group.  Cheap to import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import hookimpl
from neuroflow.backends import BackendKind, BackendSpec

if TYPE_CHECKING:
    import click


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """``[registry] backend = "memory"`` and ``[a2a] backend = "in-process"``."""
    return [
        BackendSpec(name="memory", kind=BackendKind.REGISTRY,
                    factory="neuroflow.a2a.memory:MemoryRegistry",
                    config_class="neuroflow.a2a.config:MemoryRegistryConfig",
                    description="agent registrations in this process, indexed by capability"),
        BackendSpec(name="in-process", kind=BackendKind.TRANSPORT,
                    factory="neuroflow.a2a.inprocess:InProcessTransport",
                    config_class="neuroflow.a2a.config:TransportConfig",
                    description="calls agents served in this process (local:// endpoints)"),
    ]


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow a2a serve|card|call``."""
    from neuroflow.a2a.cli import a2a_group

    cli.add_command(a2a_group)
