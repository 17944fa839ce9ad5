"""Meta-tests: every capability folder and every plugin has the one shape that
``docs/writing-a-backend.md`` describes, and plugins use only the public API."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from neuroflow.backends import BackendKind
from neuroflow.plugins import BUILTIN_PLUGINS

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "neuroflow_core" / "src" / "neuroflow"
CAPABILITIES = ["a2a", "agent", "mcp", "memory", "observability", "sandbox", "security"]
#: The modules a plugin may import: the top package, the capability packages, and the
#: modules written for plugin authors.  Everything else is the core's own business.
PUBLIC = {"neuroflow", "neuroflow.config", "neuroflow.errors", "neuroflow.units",
          "neuroflow.testing", *(f"neuroflow.{name}" for name in CAPABILITIES)}
PLUGINS = sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_capability_folder_has_the_one_shape(capability: str) -> None:
    folder = CORE / capability
    for name in ("__init__.py", "protocol.py", "builtin.py"):
        assert (folder / name).is_file(), f"neuroflow/{capability}/ needs {name}"
    assert BUILTIN_PLUGINS[f"neuroflow.{capability}"] == f"neuroflow.{capability}.builtin"
    init = ast.parse((folder / "__init__.py").read_text())
    assigned = {t.id for node in init.body if isinstance(node, ast.Assign | ast.AnnAssign)
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(t, ast.Name)}
    assert "__all__" in assigned, f"neuroflow/{capability}/__init__.py must declare __all__"


@pytest.mark.parametrize("kind", list(BackendKind))
def test_every_kind_s_protocol_lives_in_its_capability_s_protocol_module(kind) -> None:
    import importlib

    module, _, name = kind.protocol.partition(":")
    assert module.endswith(".protocol") and module.split(".")[1] in CAPABILITIES
    protocol = getattr(importlib.import_module(module), name)
    assert getattr(protocol, "_is_runtime_protocol", False), f"{name}: @runtime_checkable"


def test_loading_the_builtin_plugins_imports_no_heavy_library() -> None:
    code = ("import sys; from neuroflow.plugins import PluginManager; "
            "m = PluginManager(entry_points=False); m.plugin_infos(); "
            "heavy = {'numpy', 'httpx', 'sqlalchemy', 'cattrs', 'anyio'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "neuroflow"]


@pytest.mark.parametrize("folder", [*PLUGINS, ROOT / "examples" / "third-party-backend"],
                         ids=lambda p: p.name)
def test_a_plugin_has_the_one_shape_and_uses_only_the_public_api(folder: Path) -> None:
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    entry_points = project.get("entry-points", {}).get("neuroflow", {})
    assert entry_points, f"{folder.name}: declare [project.entry-points.neuroflow]"
    packages = [p for p in (folder / "src").iterdir() if p.is_dir() and p.name != "__pycache__"
                and not p.name.endswith(".egg-info")]
    assert len(packages) == 1 and packages[0].name.startswith("neuroflow_"), packages
    assert (folder / "tests").is_dir() and list((folder / "tests").glob("test_*.py"))
    if folder.parent.name == "plugins":
        assert (folder / "README.md").is_file(), f"{folder.name}: README.md"
        assert project["name"] == f"neuroflow-{folder.name}"
    private = [f"{path.relative_to(ROOT)}:{line} imports {module}"
               for path in packages[0].rglob("*.py") for line, module in _imports(path)
               if module not in PUBLIC]
    assert not private, "import from the public API instead:\n" + "\n".join(private)


def test_install_hints_name_only_distributions_and_extras_that_exist() -> None:
    from neuroflow.backends import KNOWN_BACKENDS

    names = {tomllib.loads((p / "pyproject.toml").read_text())["project"]["name"]
             for p in PLUGINS}
    core = tomllib.loads((ROOT / "neuroflow_core" / "pyproject.toml").read_text())["project"]
    extras = core["optional-dependencies"]
    for (kind, backend), (distribution, extra) in KNOWN_BACKENDS.items():
        assert distribution in names, f"{kind}/{backend}: no plugins/ folder is {distribution}"
        assert any(distribution in req for req in extras.get(extra, [])), (
            f"{kind}/{backend}: the extra neuroflow[{extra}] does not install {distribution}")
