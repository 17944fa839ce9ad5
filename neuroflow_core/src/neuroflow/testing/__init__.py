"""Conformance suites and fixtures for people who write NeuroFlow backends.

Subclass a suite in your plugin's tests and tell it how to build your backend; every
test in the suite then runs against it.  The suites are imported lazily so that this
package (which pytest loads through the ``pytest11`` entry point) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUITES: dict[str, str] = {
    "IsolationBackendSuite": "neuroflow.testing.isolation",
    "MemoryStoreSuite": "neuroflow.testing.memory",
}


def __getattr__(name: str) -> Any:
    module = _SUITES.get(name)
    if module is None:
        raise AttributeError(f"module 'neuroflow.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_SUITES)
