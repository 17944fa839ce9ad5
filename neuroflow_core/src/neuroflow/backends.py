"""What a plugin hands over: :class:`BackendSpec`, one per backend it provides.

A backend spec is cheap to build.  Its ``factory`` and ``config_class`` may be given as
``"module:attribute"`` strings so the heavy library behind a backend is imported only
when a user actually selects it; :meth:`BackendSpec.load_factory` and
:meth:`BackendSpec.load_config_class` resolve them once and remember the result.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from typing import Any

import attrs

from neuroflow.errors import PluginLoadError


class BackendKind(str, enum.Enum):
    """The kinds of backend a plugin can provide; each has its own hookspec."""

    ISOLATION = "isolation"
    MEMORY = "memory"
    EMBEDDER = "embedder"
    TRANSPORT = "transport"
    TRACER = "tracer"
    GUARD = "guard"
    LLM = "llm"

    def __str__(self) -> str:
        return self.value


#: Backends NeuroFlow's own distributions provide, so an error for a missing one can say
#: what to install.  ``(kind, name) -> (distribution, extra)``.
KNOWN_BACKENDS: dict[tuple[BackendKind, str], tuple[str, str]] = {
    (BackendKind.ISOLATION, "namespace"): ("neuroflow-sandbox-namespace", "namespace"),
    (BackendKind.ISOLATION, "wasm"): ("neuroflow-sandbox-wasm", "wasm"),
    (BackendKind.ISOLATION, "wasm-python"): ("neuroflow-sandbox-wasm", "wasm-python"),
    (BackendKind.MEMORY, "sqlite"): ("neuroflow-memory-sqlite", "sqlite"),
    (BackendKind.MEMORY, "sql"): ("neuroflow-memory-sqlite", "sqlite"),
    (BackendKind.MEMORY, "postgres"): ("neuroflow-memory-sqlite", "postgres"),
    (BackendKind.EMBEDDER, "wordllama"): ("neuroflow-memory-sqlite", "wordllama"),
    (BackendKind.EMBEDDER, "minilm"): ("neuroflow-memory-sqlite", "minilm"),
    (BackendKind.TRACER, "otel"): ("neuroflow-otel", "otel"),
    (BackendKind.TRANSPORT, "a2a-jsonrpc"): ("neuroflow-a2a", "a2a"),
    (BackendKind.TRANSPORT, "a2a-grpc"): ("neuroflow-a2a", "a2a"),
}


def install_hint(kind: BackendKind, name: str) -> str | None:
    """Return ``"pip install 'neuroflow[extra]'  (distribution X)"`` for a known backend."""
    known = KNOWN_BACKENDS.get((kind, name))
    if known is None:
        return None
    distribution, extra = known
    return f"it is provided by {distribution}: pip install 'neuroflow[{extra}]'"


def _resolve(reference: str, what: str, backend: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ():
            target = getattr(target, part)
    except Exception as exc:
        raise PluginLoadError(
            f"backend {backend!r}: cannot load its {what} {reference!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return target


@attrs.define(eq=False)
class BackendSpec:
    """One backend a plugin provides.

    Attributes:
        name: the name users select in configuration (``[sandbox] backend = "process"``).
        kind: which role it plays.
        factory: a callable ``factory(config) -> backend`` or a ``"module:attr"`` reference
            to one, imported on first use.
        config_class: the attrs class its options are checked against (or a reference to
            it), or ``None`` if it takes no options.
        description: one line shown by ``neuroflow plugins``.
        plugin: the name of the plugin that registered it (filled in by the plugin manager).
        distribution: the distribution that shipped the plugin (filled in likewise).
    """

    name: str
    kind: BackendKind = attrs.field(converter=BackendKind)
    factory: Callable[..., Any] | str
    config_class: type | str | None = None
    description: str = ""
    plugin: str = ""
    distribution: str = ""

    def load_factory(self) -> Callable[..., Any]:
        """Import (once) and return the factory."""
        if isinstance(self.factory, str):
            self.factory = _resolve(self.factory, "factory", self.name)
        return self.factory

    def load_config_class(self) -> type | None:
        """Import (once) and return the config class, or ``None``."""
        if isinstance(self.config_class, str):
            self.config_class = _resolve(self.config_class, "config class", self.name)
        return self.config_class
