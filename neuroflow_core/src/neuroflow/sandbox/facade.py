"""SPEC's sandbox names that live in plugins, and :func:`open_sandbox`.

``NamespaceIsolator``, ``WasmSandbox`` and ``WasmSandboxConfig`` resolve, when called,
to whatever the installed ``namespace`` / ``wasm`` plugin registered; without the plugin
they raise :class:`~neuroflow.errors.MissingPluginError` naming the pip command.
Importing these names never imports or requires the plugin.  Every one of them builds
through :func:`neuroflow.create_backend`, so each is configured and guarded the same way.
"""

from __future__ import annotations

from typing import Any

from neuroflow.backends import BackendKind, backend_config_class, create_backend, install_hint
from neuroflow.errors import BackendNotFoundError, MissingPluginError


def _build(name: str, what: str, config: Any, gate: Any, actor: str) -> Any:
    try:
        return create_backend(BackendKind.ISOLATION, name, config, gate=gate, actor=actor,
                              field=what)
    except BackendNotFoundError as exc:
        raise _missing(name, what, exc) from None


def _missing(name: str, what: str, exc: BackendNotFoundError) -> MissingPluginError:
    from neuroflow.plugins import get_plugin_manager

    installed = ", ".join(sorted(get_plugin_manager().backends(BackendKind.ISOLATION)))
    hint = install_hint(BackendKind.ISOLATION, name) or (
        f"no installed plugin provides it (installed sandbox backends: {installed or 'none'})")
    return MissingPluginError(
        f"{what} needs the {name!r} sandbox backend, which is not installed; {hint}")


class NamespaceIsolator:
    """Linux-namespace sandbox (plugin ``neuroflow-sandbox-namespace``).

    ``NamespaceIsolator(config)`` returns the ``namespace`` backend built from ``config``
    (a :class:`~neuroflow.sandbox.SandboxConfig`, or ``None`` for ``[sandbox.namespace]``),
    behind the configured security gate (``gate=False`` for none).
    """

    def __new__(cls, config: Any = None, *, gate: Any = None, actor: str = "user") -> Any:
        """Build the installed ``namespace`` backend."""
        return _build("namespace", "NamespaceIsolator", config, gate, actor)


class WasmSandbox:
    """WebAssembly sandbox (plugin ``neuroflow-sandbox-wasm``).

    ``WasmSandbox(config)`` returns the ``wasm`` backend built from a
    :class:`WasmSandboxConfig` (or ``None`` for ``[sandbox.wasm]``), behind the configured
    security gate (``gate=False`` for none).
    """

    def __new__(cls, config: Any = None, *, gate: Any = None, actor: str = "user") -> Any:
        """Build the installed ``wasm`` backend."""
        return _build("wasm", "WasmSandbox", config, gate, actor)


class WasmSandboxConfig:
    """The ``wasm`` backend's config class (``max_memory_bytes``, ``timeout_seconds``, ...)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Build the installed ``wasm`` backend's config object."""
        try:
            config_class = backend_config_class(BackendKind.ISOLATION, "wasm")
        except BackendNotFoundError as exc:
            raise _missing("wasm", "WasmSandboxConfig", exc) from None
        if config_class is None:
            raise MissingPluginError("the installed 'wasm' backend registered no config class")
        return config_class(*args, **kwargs)


def open_sandbox(
    config: Any = None, backend: str | None = None, *, gate: Any = None, actor: str = "user"
) -> Any:
    """Build the configured sandbox backend; use it as ``async with open_sandbox() as sb``.

    Args:
        config: the backend's config object (or a table of its options); ``None`` takes
            ``[sandbox.<backend>]`` from the configuration.
        backend: the backend name; ``None`` takes ``[sandbox] backend`` (default
            ``"process"``).
        gate: the ``ActionGate`` every command passes first; ``None`` is the gate built
            from ``[security]``, ``False`` none.
        actor: who runs the commands, for the audit records.

    Raises:
        BackendNotFoundError: the backend is not installed (the message says what to
            install).
        ConfigError: the configuration is invalid.
    """
    return create_backend(BackendKind.ISOLATION, backend, config, gate=gate, actor=actor)
