"""One local two-node Ray cluster (127.0.0.1, token authentication on) for the session.

Ray takes tens of seconds to start a node on a busy machine, so the cluster is started
once, by the first test that needs it, and stopped when the session ends; every node's
runner writes its spans to ``node-spans.jsonl`` in the cluster's state folder.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from remote_session import NODE_SPANS, PORT, STATE_DIR


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """The session's cluster (``LocalCluster``): a head node and one more."""
    from neuroflow_sandbox_remote.cluster import up

    cluster = up(STATE_DIR, port=PORT, workers=1, timeout=180,
                 extra_env={"NEUROFLOW_TRACER__LOCAL__FILE": str(NODE_SPANS)})
    try:
        yield cluster
    finally:
        import ray

        from neuroflow_sandbox_remote.backend import CLUSTER

        if ray.is_initialized():
            ray.shutdown()
        CLUSTER.reset()
        cluster.down()


@pytest.fixture
def remote_config(ray_cluster: Any) -> Any:
    """A ``RemoteConfig`` naming the session's cluster and its token file."""
    from neuroflow_sandbox_remote.config import RemoteConfig

    return RemoteConfig(address=ray_cluster.address, auth_token_file=str(ray_cluster.token_file))


@pytest.fixture
def fake_gcs() -> Iterator[tuple[str, list[int]]]:
    """A gRPC server on loopback speaking Ray's GCS ``GetClusterId``: it answers anyone
    (a cluster without token authentication); ``calls`` counts the RPCs it served."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    calls: list[int] = []

    class Open(gcs_service_pb2_grpc.NodeInfoGcsServiceServicer):
        def GetClusterId(self, request: Any, context: Any) -> Any:
            calls.append(1)
            return gcs_service_pb2.GetClusterIdReply()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    gcs_service_pb2_grpc.add_NodeInfoGcsServiceServicer_to_server(Open(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", calls
    finally:
        server.stop(0)
