"""The ``remote`` backend passes the isolation conformance suite on a two-node cluster."""

from __future__ import annotations

from typing import Any

import pytest
from remote_session import PORT, STATE_DIR

from neuroflow.testing import IsolationBackendSuite
from neuroflow_sandbox_remote.config import RemoteConfig


@pytest.mark.usefixtures("ray_cluster")
class TestRemoteConformance(IsolationBackendSuite):
    """Every test of the suite against ``remote``, each node running ``process``."""

    backend_name = "remote"
    backend_config: Any = RemoteConfig(address=f"127.0.0.1:{PORT}",
                                       auth_token_file=str(STATE_DIR / "auth_token"))
