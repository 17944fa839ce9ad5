"""The gRPC binding's one dependency, ``grpcio``, which comes with the ``grpc`` extra."""

from __future__ import annotations

from typing import Any

from neuroflow.errors import MissingPluginError

INSTALL_HINT = "pip install 'neuroflow[a2a-grpc]'  (or 'neuroflow-a2a[grpc]')"


def grpc_module() -> Any:
    """The ``grpc`` module, or :class:`MissingPluginError` saying what to install."""
    try:
        import grpc
    except ImportError:
        raise MissingPluginError(
            f"the A2A gRPC binding needs grpcio, which is not installed: {INSTALL_HINT}"
        ) from None
    return grpc
