"""The pytest plugin NeuroFlow installs (entry point ``pytest11``).

It only defines fixtures; nothing runs unless a test asks for them.
"""

from __future__ import annotations

from collections.abc import Iterator

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
