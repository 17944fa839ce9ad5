"""Ray token authentication: find the token, and check that a cluster enforces it.

Ray (2.52 and later) checks a shared token on every RPC when its processes run with
``RAY_AUTH_MODE=token``; with the default mode anyone who reaches the cluster's ports can
run code on every node.  Before joining, :func:`check_cluster` asks the head node's GCS
for its cluster id twice over plain gRPC: once with no token (a cluster that answers is
refused) and once with ours (a cluster that refuses it is reported: wrong token).
"""

from __future__ import annotations

import os
from pathlib import Path

from neuroflow.errors import SandboxError, SecurityError

#: How long each probe of the head node waits.
PROBE_TIMEOUT = 5.0


def default_token_path() -> Path:
    """Ray's own default token file, ``~/.ray/auth_token``."""
    return Path.home() / ".ray" / "auth_token"


def find_token(token_file: str | None = None) -> tuple[str, str] | None:
    """``(token, where it came from)``: ``token_file``, then ``RAY_AUTH_TOKEN``, then
    ``RAY_AUTH_TOKEN_PATH``, then Ray's default file; ``None`` when there is none."""
    candidates: list[tuple[str | None, str]] = []
    if token_file:
        candidates.append((_read(token_file), f"auth_token_file {token_file}"))
    candidates.append((os.environ.get("RAY_AUTH_TOKEN"), "RAY_AUTH_TOKEN"))
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        candidates.append((_read(path), f"RAY_AUTH_TOKEN_PATH {path}"))
    candidates.append((_read(str(default_token_path())), str(default_token_path())))
    for token, where in candidates:
        if token:
            return token, where
    return None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def probe(address: str, token: str | None) -> str:
    """Ask the GCS at ``address`` for its cluster id: ``"ok"``, ``"unauthenticated"``, or
    ``"unreachable: <why>"``."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=PROBE_TIMEOUT,
                              metadata=metadata)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                return "unauthenticated"
            return f"unreachable: {exc.code().name}: {exc.details()}"
    return "ok"


def check_cluster(address: str, token_file: str | None, require_token_auth: bool) -> str | None:
    """Check the cluster at ``address`` before joining it; return the token to use.

    Raises:
        SecurityError: the cluster runs without token authentication (and
            ``require_token_auth`` is on), or no token was found for it, or it refuses ours.
        SandboxError: the head node cannot be reached.
    """
    found = find_token(token_file)
    if not require_token_auth:
        return found[0] if found else None
    where = f"sandbox.remote: the Ray cluster at {address}"
    anonymous = probe(address, None)
    if anonymous.startswith("unreachable"):
        raise SandboxError(f"{where} cannot be reached ({anonymous.split(': ', 1)[1]}); "
                           "start one with `neuroflow cluster up`")
    if anonymous == "ok":
        raise SecurityError(
            f"{where} runs without token authentication: anyone who reaches its ports can "
            "run code on its nodes. Start every node with RAY_AUTH_MODE=token and a shared "
            "RAY_AUTH_TOKEN (`neuroflow cluster up` does), or set "
            "require_token_auth = false to accept that risk")
    if found is None:
        raise SecurityError(
            f"{where} requires a token and none was found: set auth_token_file, "
            f"RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, or put it in {default_token_path()}")
    token, origin = found
    if probe(address, token) != "ok":
        raise SecurityError(f"{where} refuses the token from {origin}")
    return token
