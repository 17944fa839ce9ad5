"""What a backend is, which kinds exist, and the one road from a name to a backend object.

* :class:`BackendKind` is the one table of kinds: for each, the configuration section that
  selects it, the Protocol its backends satisfy, the word users read in messages, the
  default backend and, for kinds whose backends run actions (a sandbox runs commands),
  the wrapper that puts a backend behind the security gate.  Adding a kind means adding
  one member here (and its Protocol in its capability's ``protocol.py``).
* :class:`BackendSpec` is what a plugin hands over for each backend it provides, through
  the ``neuroflow_backends`` hook.  Its ``factory`` and ``config_class`` may be
  ``"module:attribute"`` strings, so the heavy library behind a backend is imported only
  when a user selects it.
* :func:`create_backend` turns a kind and a name (or the configured default) plus options
  into a ready object.  Every facade, CLI command, manager and plugin builds backends
  through it, so every backend gets its configuration the same way and none slips past
  the security gate.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from neuroflow.errors import ConfigError, MissingPluginError, PluginError, PluginLoadError

if TYPE_CHECKING:
    from neuroflow.config import NeuroflowConfig


class BackendKind(str, enum.Enum):
    """The kinds of backend a plugin can provide -- the one table of kinds.

    Each member carries:

    ``section``
        the ``neuroflow.toml`` section that selects it (``[sandbox] backend = "process"``).
    ``protocol``
        ``"module:Name"`` of the ``typing.Protocol`` its backends satisfy.
    ``word``
        how messages name one of its backends (``"sandbox backend"``).
    ``default``
        the backend used when the section selects none (a tuple for a multi section).
    ``selector``
        the key of the section that names the backend(s); ``"guards"`` selects several.
    ``settings``
        ``"module:Class"`` of the section's own settings (common to all its backends).
    ``gate_wrapper``
        ``"module:Class"`` wrapping a backend whose actions must pass the security gate,
        for backends that do not enforce the gate themselves; ``None`` for kinds whose
        backends run no actions.
    """

    section: str
    protocol: str
    word: str
    default: str | tuple[str, ...]
    selector: str
    settings: str | None
    gate_wrapper: str | None

    def __new__(
        cls,
        value: str,
        section: str,
        protocol: str,
        word: str,
        default: str | tuple[str, ...],
        selector: str = "backend",
        settings: str | None = None,
        gate_wrapper: str | None = None,
    ) -> BackendKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.section = section
        member.protocol = protocol
        member.word = word
        member.default = default
        member.selector = selector
        member.settings = settings
        member.gate_wrapper = gate_wrapper
        return member

    ISOLATION = (
        "isolation", "sandbox", "neuroflow.sandbox.protocol:IsolationBackend",
        "sandbox backend", "process", "backend", None,
        "neuroflow.sandbox.guarded:GuardedBackend",
    )
    MEMORY = (
        "memory", "memory", "neuroflow.memory.protocol:MemoryStore", "memory store",
        "memory", "backend", "neuroflow.memory.config:MemoryConfig",
    )
    EMBEDDER = (
        "embedder", "embedder", "neuroflow.memory.protocol:Embedder", "embedder", "lexical",
    )
    TRACER = (
        "tracer", "tracer", "neuroflow.observability.protocol:Tracer", "tracer backend",
        "local",
    )
    LLM = (
        "llm", "llm", "neuroflow.agent.protocol:LLMProvider", "LLM provider", "scripted",
        "backend", "neuroflow.agent.codemode:LLMSettings",
    )
    GUARD = (
        "guard", "security", "neuroflow.security.protocol:Guard", "guard",
        ("allowlist", "paths", "network", "tools"), "guards",
        "neuroflow.security.config:SecurityConfig",
    )
    MCP = (
        "mcp", "mcp", "neuroflow.mcp.protocol:MCPClient", "MCP client", "mcp", "backend",
        "neuroflow.mcp.config:MCPSettings", "neuroflow.mcp.guarded:GuardedMCPClient",
    )
    TRANSPORT = (
        "transport", "a2a", "neuroflow.a2a.protocol:AgentTransport", "A2A transport",
        "jsonrpc", "backend", None, "neuroflow.a2a.guarded:GuardedTransport",
    )
    REGISTRY = (
        "registry", "registry", "neuroflow.a2a.protocol:AgentRegistryBackend",
        "agent registry backend", "memory",
    )

    @property
    def multi(self) -> bool:
        """Whether the section enables several backends at once (``guards = [...]``)."""
        return isinstance(self.default, tuple)

    def __str__(self) -> str:
        return self.value


#: Backends that NeuroFlow's own distributions provide, so an error for a missing one can
#: say what to install: ``(kind, name) -> (distribution, extra)``.  Only distributions that
#: exist are named; each plugin adds its own rows when it lands.
KNOWN_BACKENDS: dict[tuple[BackendKind, str], tuple[str, str]] = {
    (BackendKind.ISOLATION, "namespace"): ("neuroflow-sandbox-namespace", "namespace"),
    (BackendKind.ISOLATION, "wasm"): ("neuroflow-sandbox-wasm", "wasm"),
    (BackendKind.ISOLATION, "wasm-python"): ("neuroflow-sandbox-wasm", "wasm-python"),
    (BackendKind.MEMORY, "sqlite"): ("neuroflow-memory-sqlite", "sqlite"),
    (BackendKind.MEMORY, "sql"): ("neuroflow-memory-sqlite", "sqlite"),
    (BackendKind.MEMORY, "postgres"): ("neuroflow-memory-sqlite", "postgres"),
    (BackendKind.EMBEDDER, "wordllama"): ("neuroflow-memory-sqlite", "wordllama"),
    (BackendKind.EMBEDDER, "minilm"): ("neuroflow-memory-sqlite", "minilm"),
    (BackendKind.MCP, "mcp"): ("neuroflow-mcp", "mcp"),
    (BackendKind.TRACER, "otel"): ("neuroflow-otel", "otel"),
    (BackendKind.TRANSPORT, "jsonrpc"): ("neuroflow-a2a", "a2a"),
    (BackendKind.TRANSPORT, "http-json"): ("neuroflow-a2a", "a2a"),
    (BackendKind.TRANSPORT, "grpc"): ("neuroflow-a2a", "a2a"),
    (BackendKind.REGISTRY, "sql"): ("neuroflow-a2a", "a2a"),
    (BackendKind.ISOLATION, "remote"): ("neuroflow-sandbox-remote", "ray"),
}


def install_hint(kind: BackendKind, name: str) -> str | None:
    """``"it is provided by X: pip install 'neuroflow[extra]'"`` for a known backend."""
    known = KNOWN_BACKENDS.get((kind, name))
    if known is None:
        return None
    distribution, extra = known
    return f"it is provided by {distribution}: pip install 'neuroflow[{extra}]'"


def load_reference(reference: str, what: str) -> Any:
    """Import ``"module:attr.sub"`` and return the attribute; errors name ``what``."""
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ():
            target = getattr(target, part)
    except Exception as exc:
        raise PluginLoadError(
            f"{what}: cannot load {reference!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return target


@attrs.define(eq=False)
class BackendSpec:
    """One backend a plugin provides.

    Attributes:
        name: the name users select in configuration (``[sandbox] backend = "process"``).
        kind: which role it plays.
        factory: a callable ``factory(config) -> backend`` or a ``"module:attr"`` reference
            to one, imported on first use.  Only :func:`create_backend` calls it.
        config_class: the attrs class its options are checked against (or a reference to
            it), or ``None`` if it takes no options.
        description: one line shown by ``neuroflow plugins``.
        enforces_gate: the factory takes ``gate=`` and ``actor=`` keywords and puts every
            action through that gate itself (as the built-in ``process`` sandbox does).
            Otherwise a backend of a gated kind is wrapped in the kind's gate wrapper.
        plugin: the name of the plugin that registered it (filled in by the plugin manager).
        distribution: the distribution that shipped the plugin (filled in likewise).
    """

    name: str
    kind: BackendKind = attrs.field(converter=BackendKind)
    factory: Callable[..., Any] | str
    config_class: type | str | None = None
    description: str = ""
    enforces_gate: bool = False
    plugin: str = ""
    distribution: str = ""

    def load_factory(self) -> Callable[..., Any]:
        """Import (once) and return the factory."""
        if isinstance(self.factory, str):
            self.factory = load_reference(self.factory, f"{self.kind.word} {self.name!r}")
        return self.factory

    def load_config_class(self) -> type | None:
        """Import (once) and return the config class, or ``None``."""
        if isinstance(self.config_class, str):
            self.config_class = load_reference(
                self.config_class, f"{self.kind.word} {self.name!r}: its config class")
        return self.config_class


def backend_config_class(kind: BackendKind | str, name: str, *, field: str = "") -> type | None:
    """The config class of installed backend ``name`` (a missing one raises, saying what
    to install) -- for facades such as ``WasmSandboxConfig`` that build only options."""
    from neuroflow.plugins import get_plugin_manager

    spec = get_plugin_manager().get_backend(BackendKind(kind), name, field=field)
    return spec.load_config_class()


def create_backend(
    kind: BackendKind | str,
    name: str | None = None,
    options: Any = None,
    *,
    gate: Any = None,
    actor: str = "user",
    overrides: Mapping[str, Any] | None = None,
    config: NeuroflowConfig | None = None,
    field: str | None = None,
) -> Any:
    """Build a ready backend of ``kind`` -- the one road from a name to an object.

    Args:
        kind: the kind (``"isolation"``, ``"memory"``, ``BackendKind.LLM``...).
        name: the backend; ``None`` takes the section's selection (``[sandbox] backend``)
            or the kind's default.
        options: the backend's options: its config object, a mapping checked against its
            config class, or ``None`` for ``[<section>.<name>]`` of the configuration (or
            the config class's defaults).
        gate: for kinds whose backends run actions: the ``ActionGate`` every action passes;
            ``None`` is the gate built from ``[security]``, ``False`` none.
        actor: who acts through the backend, for the audit records.
        overrides: option values set on top of ``options`` (command-line flags, fields of
            an ``LLMConfig``); checked like configuration.
        config: the configuration to read (default: the process-wide snapshot).
        field: how the caller names the selection in messages (``"--backend"``).

    Raises:
        BackendNotFoundError: no installed plugin provides ``name``; the message says what
            to install.
        ConfigError: the options are invalid; each line names the path and the source.
        PluginError: the factory failed or built something that is not a backend of
            this kind; the message names the plugin.
    """
    from neuroflow.config import get_config, structure
    from neuroflow.plugins import get_plugin_manager

    kind = BackendKind(kind)
    if gate is not None and kind.gate_wrapper is None:
        raise ConfigError(f"gate: a {kind.word} runs no actions, so it takes no gate")
    cfg = config if config is not None else get_config()
    if name is None:
        if kind.multi:
            raise ConfigError(f"name: a {kind.word} must be named "
                              f"([{kind.section}] {kind.selector} enables several)")
        name = cfg.selection(kind)[0]
    spec = get_plugin_manager().get_backend(
        kind, name, field=field or f"{kind.section}.{kind.selector}")
    path = f"{kind.section}.{name}"
    config_class = spec.load_config_class()
    if config_class is None:
        if options or overrides:
            raise ConfigError(f"{path}: {kind.word} {name!r} takes no options")
        options = None
    else:
        if options is None:
            options = cfg.backend_options(kind, name, config_class)
        options = _options(options, config_class, path, overrides, structure)
    built = _call_factory(spec, options, kind, gate, actor)
    _check_protocol(built, spec)
    if kind.gate_wrapper is None or spec.enforces_gate:
        return built
    from neuroflow.security.manager import resolve_gate

    resolved = resolve_gate(gate, f"{kind.word} {name!r}")
    if resolved is None:
        return built
    wrapper = load_reference(kind.gate_wrapper, f"the {kind.word} gate wrapper")
    return wrapper(built, resolved, actor=actor, component=path)


def _options(options: Any, config_class: type, path: str,
             overrides: Mapping[str, Any] | None, structure: Callable[..., Any]) -> Any:
    """The backend's config object: ``options`` as ``config_class``, ``overrides`` applied.

    A config object of another attrs class (``SandboxConfig`` handed to a backend whose
    options subclass it) is carried over field by field, through the same checks.
    """
    from neuroflow.config import get_converter

    if options is None:
        options = {}
    elif not isinstance(options, (config_class, Mapping)):
        if not attrs.has(type(options)):
            raise ConfigError(f"{path}: expected a {config_class.__name__} or a table of "
                              f"its options, got {type(options).__name__}")
        options = get_converter().unstructure(options)
    if overrides:
        base = (get_converter().unstructure(options) if isinstance(options, config_class)
                else dict(options))
        base.update(overrides)
        options = base
    if isinstance(options, config_class):
        return options
    return structure(options, config_class, path=path)


def _call_factory(spec: BackendSpec, options: Any, kind: BackendKind, gate: Any,
                  actor: str) -> Any:
    factory = spec.load_factory()
    keywords: dict[str, Any] = {}
    if kind.gate_wrapper is not None and spec.enforces_gate:
        from neuroflow.security.manager import resolve_gate

        resolved = resolve_gate(gate, f"{kind.word} {spec.name!r}")
        keywords = {"gate": False if resolved is None else resolved, "actor": actor}
    try:
        return factory(options, **keywords) if options is not None else factory(**keywords)
    except (ConfigError, MissingPluginError, PluginError):
        raise
    except Exception as exc:
        from neuroflow.errors import NeuroflowError

        if isinstance(exc, NeuroflowError):
            raise
        raise PluginError(
            f"{kind.word} {spec.name!r} (plugin {spec.plugin or '?'}) failed to start: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _check_protocol(built: Any, spec: BackendSpec) -> None:
    protocol = load_reference(spec.kind.protocol, f"the {spec.kind.word} protocol")
    if isinstance(built, protocol):
        return
    wanted = sorted(name for name in _protocol_members(protocol) if not hasattr(built, name))
    missing = f" (missing: {', '.join(wanted)})" if wanted else ""
    raise PluginError(
        f"{spec.kind.word} {spec.name!r} (plugin {spec.plugin or '?'}) built a "
        f"{type(built).__name__}, which is not a {protocol.__name__}{missing}"
    )


_NOT_MEMBERS = frozenset({
    "__module__", "__doc__", "__dict__", "__weakref__", "__annotations__", "__parameters__",
    "__abstractmethods__", "__init__", "__subclasshook__", "__protocol_attrs__",
    "__non_callable_proto_members__", "__slots__", "__orig_bases__", "__qualname__",
    "__class_getitem__", "__init_subclass__", "__type_params__", "__static_attributes__",
    "__firstlineno__", "_is_protocol", "_is_runtime_protocol", "_abc_impl",
})


def _protocol_members(protocol: type) -> set[str]:
    """The attributes and methods a Protocol asks for (``typing`` keeps this private)."""
    members: set[str] = set()
    for cls in protocol.__mro__:
        if cls.__module__ in ("typing", "builtins", "abc"):
            continue
        members |= {name for name in (*vars(cls), *getattr(cls, "__annotations__", {}))
                    if name not in _NOT_MEMBERS}
    return members
