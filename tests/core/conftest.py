"""Fixtures for the core tests: real distributions with real entry points on ``sys.path``."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

#: A plugin providing every backend the default configuration selects, with small
#: config classes, so configuration tests do not depend on the built-in backends.
DEFAULTS_PLUGIN = '''
import attrs
from neuroflow import BackendSpec, hookimpl


@attrs.frozen
class ProcessOptions:
    cpu_time_limit: int = 0
    wall_time_limit: float = 10.0
    enable_network: bool = False
    work_dir: str = ""
    allowed_commands: tuple[str, ...] = ()


@attrs.frozen
class OtherOptions:
    level: int = 1


def make(config=None):
    return ("built", config)


def _spec(name, kind, config_class=None):
    return BackendSpec(name=name, kind=kind, factory=make, config_class=config_class)


@hookimpl
def neuroflow_backends():
    return [
        _spec("process", "isolation", ProcessOptions),
        _spec("other", "isolation", OtherOptions),
        _spec("bare", "isolation"),
        _spec("memory", "memory"),
        _spec("lexical", "embedder"),
        _spec("local", "tracer"),
        _spec("scripted", "llm"),
        *[_spec(n, "guard") for n in ("allowlist", "paths", "network", "tools")],
    ]
'''


class SitePackages:
    """A temporary ``sys.path`` entry holding modules and ``.dist-info`` folders.

    ``importlib.metadata`` finds the distributions written here exactly as it finds
    installed ones, so their entry points are real.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: set[str] = set()

    def module(self, name: str, source: str) -> str:
        """Write module ``name`` and return its name."""
        (self.root / f"{name}.py").write_text(textwrap.dedent(source))
        self.modules.add(name)
        return name

    def distribution(
        self,
        name: str,
        version: str = "1.0",
        entry_points: dict[str, str] | None = None,
        modules: dict[str, str] | None = None,
        group: str = "neuroflow",
    ) -> None:
        """Write a distribution ``name`` with ``[group]`` entry points and its modules."""
        for module, source in (modules or {}).items():
            self.module(module, source)
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        lines = [f"[{group}]"] + [f"{k} = {v}" for k, v in (entry_points or {}).items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SitePackages]:
    """A fresh site directory first on ``sys.path``; its modules are forgotten afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    packages = SitePackages(root)
    yield packages
    for name in packages.modules:
        sys.modules.pop(name, None)


@pytest.fixture
def defaults_plugin(site: SitePackages) -> str:
    """The name of an importable module providing every default backend."""
    return site.module("nf_test_defaults", DEFAULTS_PLUGIN)


@pytest.fixture
def fake_manager(defaults_plugin: str) -> Callable[..., object]:
    """Build a plugin manager whose only plugin is the defaults plugin (no entry points)."""
    from neuroflow.plugins import PluginManager

    def build(config: object = None, **kwargs: object) -> PluginManager:
        kwargs.setdefault("builtins", {"test.defaults": defaults_plugin})
        kwargs.setdefault("entry_points", False)  # installed plugins must not change results
        return PluginManager(config, **kwargs)  # type: ignore[arg-type]

    return build
