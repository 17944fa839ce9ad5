"""The pytest plugin NeuroFlow installs (entry point ``pytest11``).

It defines fixtures (nothing runs unless a test asks for them), and lists in the run's
summary the conformance-suite tests a backend declared not applicable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from neuroflow.plugins import PluginManager, set_plugin_manager


@pytest.fixture
def neuroflow_plugin_manager() -> Iterator[PluginManager]:
    """A freshly loaded plugin manager, installed as the process-wide one for the test."""
    from neuroflow.config import get_config

    manager = PluginManager(get_config().plugins)
    set_plugin_manager(manager)
    try:
        yield manager
    finally:
        set_plugin_manager(None)


_NOT_APPLICABLE = pytest.StashKey[dict[str, dict[str, str]]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note the conformance-suite classes collected that declared parts not applicable."""
    found: dict[str, dict[str, str]] = {}
    for item in items:
        table = getattr(getattr(item, "cls", None), "suite_not_applicable", None)
        if table:
            found.setdefault(item.nodeid.rsplit("::", 1)[0], table)
    config.stash[_NOT_APPLICABLE] = found


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """List the suite tests a backend declared not applicable, with its reasons (they
    were not generated: neither passed nor skipped)."""
    found = config.stash.get(_NOT_APPLICABLE, {})
    if not found:
        return
    terminalreporter.write_sep("-", "conformance suite parts declared not applicable")
    for owner, table in sorted(found.items()):
        for test, reason in sorted(table.items()):
            terminalreporter.write_line(f"{owner}::{test}: {reason}")
