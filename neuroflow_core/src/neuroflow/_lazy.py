"""Lazy re-exports for package ``__init__`` modules.

A package names what it exports and where each name lives; a name's module is imported
the first time the name is used, so importing the package stays cheap (plugin discovery
imports every plugin module, and ``import neuroflow`` must not pay for numpy, httpx...).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package`` exporting ``{name: module}``.

    Use as ``__getattr__, __dir__ = lazy_exports(__name__, {...})`` in the package's
    ``__init__``.  A resolved name is cached in the package, so later lookups are plain
    attribute reads.
    """
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
