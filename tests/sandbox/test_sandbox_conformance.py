"""The built-in ``process`` backend passes the isolation conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from neuroflow.sandbox import SandboxConfig, SandboxIsolator
from neuroflow.testing import IsolationBackendSuite


class TestProcessBackendConformance(IsolationBackendSuite):
    """Built by name, exactly as a third-party backend would be."""

    backend_name = "process"


class TestSuiteWithBackendBuiltByHand(IsolationBackendSuite):
    """A backend that is not built by name: only the suite's fixtures are overridden."""

    @pytest.fixture
    def make_isolation_backend(self) -> Callable[..., SandboxIsolator]:
        def make(gate: Any = False, **settings: Any) -> SandboxIsolator:
            return SandboxIsolator(SandboxConfig(**settings), gate=gate)

        return make

    @pytest.fixture
    async def isolation_backend(self) -> AsyncIterator[SandboxIsolator]:
        async with SandboxIsolator(SandboxConfig(), gate=False) as backend:
            yield backend
