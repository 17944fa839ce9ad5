"""Conformance suites and fixtures for people who write NeuroFlow backends.

Subclass a suite in your plugin's tests and tell it how to build your backend; every
test in the suite then runs against it.  The suites are imported lazily so that this
package (which pytest loads through the ``pytest11`` entry point) stays cheap.
"""

from __future__ import annotations

from neuroflow._lazy import lazy_exports

_SUITES: dict[str, str] = {
    "IsolationBackendSuite": "neuroflow.testing.isolation",
    "SuitePrograms": "neuroflow.testing.isolation",
    "FEATURES": "neuroflow.testing.isolation",
    "MemoryStoreSuite": "neuroflow.testing.memory",
}


__getattr__, __dir__ = lazy_exports(__name__, _SUITES)


__all__ = sorted(_SUITES)
