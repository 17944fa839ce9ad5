"""The built-in ``process`` backend passes the isolation conformance suite."""

from __future__ import annotations

from neuroflow.testing import IsolationBackendSuite


class TestProcessBackendConformance(IsolationBackendSuite):
    """Built through the plugin manager, exactly as a third-party backend would be."""

    backend_name = "process"
