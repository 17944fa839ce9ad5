"""The ``nice`` backend passes NeuroFlow's isolation conformance suite, and is nice."""

import os

import pytest

from neuroflow import create_backend
from neuroflow.testing import IsolationBackendSuite


class TestNiceConformance(IsolationBackendSuite):
    """Every test of the suite, run against the backend built by name."""

    backend_name = "nice"


@pytest.mark.anyio
async def test_commands_run_at_the_configured_niceness() -> None:
    from neuroflow_nice.backend import NiceConfig

    config = NiceConfig(niceness=7)
    async with create_backend("isolation", "nice", config) as sandbox:
        result = await sandbox.execute("nice")  # with no arguments, nice prints the niceness
    assert int(result.stdout) == min(19, os.nice(0) + 7)
