"""Built-in plugin ``neuroflow.memory``: the ``memory`` and ``tiered`` stores, the
``lexical`` embedder and the ``neuroflow memory`` commands.  Cheap to import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow import BackendKind, BackendSpec, hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """The in-memory store and the tiered store."""
    return [
        *_embedders(),
        BackendSpec(
            name="memory",
            kind=BackendKind.MEMORY,
            factory="neuroflow.memory.inmemory:InMemoryStore",
            config_class="neuroflow.memory.inmemory:InMemoryStoreConfig",
            description="short-term memory in this process (not persisted)",
        ),
        BackendSpec(
            name="tiered",
            kind=BackendKind.MEMORY,
            factory="neuroflow.memory.tiered:TieredStore.from_config",
            config_class="neuroflow.memory.tiered:TieredStoreConfig",
            description="recent entries in memory, everything in a persistent store",
        ),
    ]


def _embedders() -> list[BackendSpec]:
    """The zero-dependency lexical embedder."""
    return [
        BackendSpec(
            name="lexical",
            kind=BackendKind.EMBEDDER,
            factory="neuroflow.memory.embedders:LexicalEmbedder",
            config_class="neuroflow.memory.embedders:LexicalEmbedderConfig",
            description="hashed words and character trigrams (numpy, offline, deterministic)",
        )
    ]


@hookimpl
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add ``neuroflow memory``."""
    from neuroflow.memory.cli import memory_group

    cli.add_command(memory_group())
