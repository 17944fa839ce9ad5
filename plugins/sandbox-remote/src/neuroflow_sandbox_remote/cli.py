"""``neuroflow cluster up|status|down``: a local Ray cluster for the ``remote`` sandbox."""

from __future__ import annotations

import time
from pathlib import Path

import click

from neuroflow_sandbox_remote.config import DEFAULT_PORT

_STATE = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                      default=None, help="Where the cluster's state and token live "
                      "(default ~/.neuroflow/cluster).")


@click.group("cluster")
def cluster_group() -> None:
    """A local Ray cluster (127.0.0.1, token authentication on) for the remote sandbox."""


@cluster_group.command("up")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="The head node's port.")
@click.option("--workers", type=click.IntRange(0, 64), default=0, show_default=True,
              help="Nodes to start besides the head node.")
@_STATE
def up_command(port: int, workers: int, state_dir: Path | None) -> None:
    """Start a head node (and --workers more) on 127.0.0.1."""
    from neuroflow.errors import NeuroflowError
    from neuroflow_sandbox_remote.cluster import up

    started = time.perf_counter()
    try:
        cluster = up(state_dir, port=port, workers=workers)
    except NeuroflowError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"cluster up at {cluster.address}: {1 + workers} node(s) in "
               f"{time.perf_counter() - started:.1f} s")
    click.echo(f"token: {cluster.token_file} (mode 0600)")
    click.echo("use it with:\n  [sandbox]\n  backend = \"remote\"\n  [sandbox.remote]\n"
               f"  address = \"{cluster.address}\"\n  auth_token_file = \"{cluster.token_file}\"")


@cluster_group.command("status")
@_STATE
def status_command(state_dir: Path | None) -> None:
    """Say whether the local cluster is up, and its nodes."""
    from neuroflow_sandbox_remote.auth import probe
    from neuroflow_sandbox_remote.cluster import load

    cluster = load(state_dir)
    if cluster is None:
        raise click.ClickException("no local cluster is up (`neuroflow cluster up`)")
    token = cluster.token_file.read_text().strip() if cluster.token_file.exists() else None
    anonymous, with_token = probe(cluster.address, None), probe(cluster.address, token)
    click.echo(f"address: {cluster.address}")
    click.echo(f"token authentication: {'on' if anonymous == 'unauthenticated' else anonymous}")
    click.echo(f"head node answers our token: {with_token}")
    click.echo(f"process groups: {', '.join(map(str, cluster.pgids)) or 'none'}")
    if with_token == "ok":
        for line in _node_lines(cluster.address, token or ""):
            click.echo(line)


def _node_lines(address: str, token: str) -> list[str]:
    """One line per node, read from the GCS over gRPC with the token."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        reply = stub.GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), timeout=5,
                                    metadata=(("authorization", f"Bearer {token}"),))
    lines = []
    for node in reply.node_info_list:
        state = type(node).GcsNodeState.Name(node.state)
        head = " head" if node.is_head_node else ""
        lines.append(f"node {node.node_id.hex()[:8]} {node.node_manager_address}{head}: {state}")
    return lines


@cluster_group.command("down")
@_STATE
def down_command(state_dir: Path | None) -> None:
    """Stop every node `up` started."""
    from neuroflow_sandbox_remote.cluster import load

    cluster = load(state_dir)
    if cluster is None:
        raise click.ClickException("no local cluster is up")
    cluster.down()
    click.echo(f"cluster at {cluster.address} is down")
