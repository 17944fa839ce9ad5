"""SPEC's backend names that live in plugins, and :func:`open_sandbox`.

``NamespaceIsolator``, ``WasmSandbox`` and ``WasmSandboxConfig`` resolve, when called,
to whatever the installed ``namespace`` / ``wasm`` plugin registered; without the plugin
they raise :class:`~neuroflow.errors.MissingPluginError` naming the pip command.
Importing these names never imports or requires the plugin.
"""

from __future__ import annotations

from typing import Any

from neuroflow.backends import BackendKind, install_hint
from neuroflow.errors import BackendNotFoundError, MissingPluginError


def _spec(name: str, what: str) -> Any:
    from neuroflow.plugins import get_plugin_manager

    try:
        return get_plugin_manager().get_backend(BackendKind.ISOLATION, name)
    except BackendNotFoundError as exc:
        hint = install_hint(BackendKind.ISOLATION, name) or str(exc)
        raise MissingPluginError(
            f"{what} needs the {name!r} isolation backend, which is not installed; {hint}"
        ) from None


class NamespaceIsolator:
    """Linux-namespace sandbox (plugin ``neuroflow-sandbox-namespace``).

    ``NamespaceIsolator(config)`` returns the ``namespace`` backend built from ``config``
    (a :class:`~neuroflow.sandbox.SandboxConfig`).
    """

    def __new__(cls, config: Any = None, **kwargs: Any) -> Any:
        """Build the installed ``namespace`` backend."""
        spec = _spec("namespace", "NamespaceIsolator")
        factory = spec.load_factory()
        return factory(config, **kwargs) if (config is not None or kwargs) else (
            factory(spec.load_config_class()()) if spec.load_config_class() else factory()
        )


class WasmSandbox:
    """WebAssembly sandbox (plugin ``neuroflow-sandbox-wasm``).

    ``WasmSandbox(config)`` returns the ``wasm`` backend built from a
    :class:`WasmSandboxConfig`.
    """

    def __new__(cls, config: Any = None, **kwargs: Any) -> Any:
        """Build the installed ``wasm`` backend."""
        spec = _spec("wasm", "WasmSandbox")
        factory = spec.load_factory()
        if config is None and not kwargs:
            config_class = spec.load_config_class()
            return factory(config_class()) if config_class is not None else factory()
        return factory(config, **kwargs)


class WasmSandboxConfig:
    """The ``wasm`` backend's config class (``max_memory_bytes``, ``timeout_seconds``, ...)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Build the installed ``wasm`` backend's config object."""
        spec = _spec("wasm", "WasmSandboxConfig")
        config_class = spec.load_config_class()
        if config_class is None:
            raise MissingPluginError("the installed 'wasm' backend registered no config class")
        return config_class(*args, **kwargs)


def open_sandbox(
    config: Any = None, backend: str | None = None, *, gate: Any = None, actor: str = "user"
) -> Any:
    """Build the configured sandbox backend; use it as ``async with open_sandbox() as sb``.

    Args:
        config: the backend's config object; ``None`` takes ``[sandbox.<backend>]`` from
            the effective configuration (``neuroflow.toml``, environment...).
        backend: the backend name; ``None`` takes ``[sandbox] backend`` (default
            ``"process"``).
        gate: the ``ActionGate`` every command passes first; ``None`` is the gate built
            from ``[security]``, ``False`` none.  A backend whose factory takes no
            ``gate`` is wrapped in :class:`~neuroflow.sandbox.guarded.GuardedBackend`.
        actor: who runs the commands, for the audit records.

    Raises:
        BackendNotFoundError: the backend is not installed (the message says what to
            install).
        ConfigError: the configuration is invalid.
    """
    import inspect

    from neuroflow.plugins import get_plugin_manager
    from neuroflow.security.manager import resolve_gate

    if backend is None or config is None:
        from neuroflow.config import load_section

        section = load_section("sandbox")
        backend = backend or section.backend
        if config is None:
            config = section.options_for(backend)
            if isinstance(config, dict):
                config = None  # options of a backend that is not installed: create() says so
    manager = get_plugin_manager()
    resolved = resolve_gate(gate, "open_sandbox")
    factory = manager.get_backend(BackendKind.ISOLATION, backend).load_factory()
    try:
        takes_gate = "gate" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_gate = False
    if takes_gate:
        return manager.create(BackendKind.ISOLATION, backend, config,
                              gate=False if resolved is None else resolved, actor=actor)
    built = manager.create(BackendKind.ISOLATION, backend, config)
    if resolved is None:
        return built
    from neuroflow.sandbox.guarded import GuardedBackend

    return GuardedBackend(built, resolved, actor=actor, component=f"sandbox.{backend}")
