"""The ``namespace`` backend passes NeuroFlow's isolation conformance suite, as every
isolation backend must: network off and seccomp on, as SPEC §1 option 2 configures it."""

from __future__ import annotations

from neuroflow.testing import IsolationBackendSuite
from neuroflow_sandbox_namespace.config import NamespaceConfig


class TestNamespaceConformance(IsolationBackendSuite):
    """Every test of the suite, against the backend built by name."""

    backend_name = "namespace"
    backend_config = NamespaceConfig(enable_network=False, enable_seccomp=True)
