"""NeuroFlow: sandboxes, memory, tools, guards and audit for AI agents, as plugins.

The names below are imported lazily, so ``import neuroflow`` stays cheap; capability
packages live in ``neuroflow.sandbox``, ``neuroflow.memory``, ``neuroflow.security``,
``neuroflow.agent`` and ``neuroflow.observability``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "hookimpl": "neuroflow.hookspecs",
    "hookspec": "neuroflow.hookspecs",
    "BackendSpec": "neuroflow.backends",
    "BackendKind": "neuroflow.backends",
    "create_backend": "neuroflow.backends",
    "Check": "neuroflow.doctor",
    "NeuroflowError": "neuroflow.errors",
    "ConfigError": "neuroflow.errors",
    "load_config": "neuroflow.config",
    "get_config": "neuroflow.config",
    "reload_config": "neuroflow.config",
    "get_plugin_manager": "neuroflow.plugins",
    "AINativeAgent": "neuroflow.agent",
    "LLMConfig": "neuroflow.agent",
}

if TYPE_CHECKING:
    from neuroflow.agent import AINativeAgent, LLMConfig
    from neuroflow.backends import BackendKind, BackendSpec, create_backend
    from neuroflow.config import get_config, load_config, reload_config
    from neuroflow.doctor import Check
    from neuroflow.errors import ConfigError, NeuroflowError
    from neuroflow.hookspecs import hookimpl, hookspec
    from neuroflow.plugins import get_plugin_manager


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "AINativeAgent",
    "BackendKind",
    "BackendSpec",
    "Check",
    "ConfigError",
    "LLMConfig",
    "NeuroflowError",
    "__version__",
    "create_backend",
    "get_config",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "load_config",
    "reload_config",
]
