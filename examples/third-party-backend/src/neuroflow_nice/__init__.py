"""NeuroFlow plugin providing the ``nice`` isolation backend.

This module is imported whenever NeuroFlow discovers plugins, so it only names the
backend; ``backend.py`` is imported when someone selects ``nice``.
"""

from neuroflow import BackendSpec, hookimpl


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """Offer the ``nice`` backend: ``[sandbox] backend = "nice"``."""
    return [
        BackendSpec(
            name="nice",
            kind="isolation",
            factory="neuroflow_nice.backend:NiceSandbox",
            config_class="neuroflow_nice.backend:NiceConfig",
            description="the process sandbox, at a lowered CPU priority (nice -n N)",
        )
    ]
