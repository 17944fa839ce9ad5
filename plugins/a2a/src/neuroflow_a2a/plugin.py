"""Entry point ``a2a``: registers the A2A transports and the SQL agent registry.  Cheap to
import: ``a2a-sdk``, ``grpc``, ``uvicorn`` and SQLAlchemy are imported by the factories'
modules."""

from __future__ import annotations

from neuroflow import BackendKind, BackendSpec, hookimpl


@hookimpl
def neuroflow_backends() -> list[BackendSpec]:
    """``[a2a] backend = "jsonrpc" | "http-json" | "grpc"`` and ``[registry] backend = "sql"``."""
    return [
        BackendSpec(name="jsonrpc", kind=BackendKind.TRANSPORT,
                    factory="neuroflow_a2a.client:jsonrpc_transport",
                    config_class="neuroflow.a2a:TransportConfig",
                    description="A2A 1.0 JSON-RPC over HTTP (a2a-sdk); serves JSON-RPC, "
                                "HTTP+JSON and SSE"),
        BackendSpec(name="http-json", kind=BackendKind.TRANSPORT,
                    factory="neuroflow_a2a.client:http_json_transport",
                    config_class="neuroflow.a2a:TransportConfig",
                    description="A2A 1.0 HTTP+JSON (REST) binding (a2a-sdk)"),
        BackendSpec(name="grpc", kind=BackendKind.TRANSPORT,
                    factory="neuroflow_a2a.client:grpc_transport",
                    config_class="neuroflow.a2a:TransportConfig",
                    description="A2A 1.0 gRPC binding (a2a-sdk, grpcio)"),
        BackendSpec(name="sql", kind=BackendKind.REGISTRY,
                    factory="neuroflow_a2a.sqlregistry:SQLRegistry",
                    config_class="neuroflow_a2a.sqlregistry:SQLRegistryConfig",
                    description="agent registrations in SQLite or PostgreSQL (SQLAlchemy), "
                                "shared by every process"),
    ]
