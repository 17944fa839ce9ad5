"""``neuroflow doctor`` for the remote sandbox: Ray, and when ``remote`` is selected, the
cluster's authentication, its nodes and the backends installed on them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neuroflow import Check


def checks() -> list[Check]:
    """What this machine and the configured cluster offer the ``remote`` backend."""
    from importlib.metadata import PackageNotFoundError, version

    from neuroflow import BackendKind, Check, create_backend
    from neuroflow.config import get_config

    try:
        found = [Check("sandbox: Ray for the remote backend", True, f"ray {version('ray')}")]
    except PackageNotFoundError:
        return [Check("sandbox: Ray for the remote backend", False,
                      "pip install 'neuroflow[ray]'")]
    config = get_config()
    if config.selection(BackendKind.ISOLATION)[0] != "remote":
        return found
    try:
        sandbox = create_backend("isolation", "remote", gate=False)
    except Exception as exc:  # noqa: BLE001 - reported as a failed check
        return [*found, Check("sandbox: remote configuration", False, str(exc), required=True)]
    return found + cluster_checks(sandbox.config)


def cluster_checks(config: object) -> list[Check]:
    """Authentication, nodes and their backends of the cluster ``config`` names."""
    import ray

    from neuroflow import Check
    from neuroflow_sandbox_remote.auth import check_cluster
    from neuroflow_sandbox_remote.backend import CLUSTER
    from neuroflow_sandbox_remote.node import installed_backends

    address = config.address  # type: ignore[attr-defined]
    try:
        check_cluster(address, config.auth_token_file,  # type: ignore[attr-defined]
                      config.require_token_auth)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - reported as a failed check
        return [Check(f"sandbox: Ray cluster at {address}", False, str(exc), required=True)]
    result = [Check(f"sandbox: Ray cluster at {address}", True,
                    "reachable; token authentication enforced"
                    if config.require_token_auth  # type: ignore[attr-defined]
                    else "reachable; token authentication NOT required")]
    with CLUSTER.lock:
        CLUSTER.join(config)  # type: ignore[arg-type]
        nodes = CLUSTER.refresh()
    listed = ray.remote(num_cpus=0)(installed_backends)
    wanted = config.node_backend  # type: ignore[attr-defined]
    for node in nodes:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            names = ray.get(listed.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                node.node_id, soft=False)).remote(), timeout=60)
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            result.append(Check(f"sandbox: node {node.label}", False,
                                f"{type(exc).__name__}: {exc}", required=True))
            continue
        result.append(Check(f"sandbox: node {node.label}", wanted in names,
                            f"isolation backends: {', '.join(names)}"
                            + ("" if wanted in names else f" (no {wanted!r})"),
                            required=True))
    return result
