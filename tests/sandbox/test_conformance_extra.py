"""``pip install 'neuroflow[testing]'`` brings everything the conformance suites import."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "neuroflow_core"
TESTING = CORE / "src" / "neuroflow" / "testing"


def imported_top_modules(folder: Path) -> set[str]:
    """Top-level names of every module imported anywhere in ``folder``'s files."""
    names: set[str] = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_the_testing_extra_covers_what_the_suites_import() -> None:
    project = tomllib.loads((CORE / "pyproject.toml").read_text())["project"]
    declared = {canonicalize_name(Requirement(r).name)
                for r in [*project["dependencies"],
                          *project["optional-dependencies"]["testing"]]}
    distributions = importlib.metadata.packages_distributions()
    needed = {}
    for module in imported_top_modules(TESTING) - set(sys.stdlib_module_names) - {"neuroflow"}:
        for dist in distributions.get(module, [module]):
            needed[canonicalize_name(dist)] = module
    missing = {dist: module for dist, module in needed.items() if dist not in declared}
    assert not missing, (
        f"neuroflow.testing imports {sorted(missing.values())}; add "
        f"{sorted(missing)} to the 'testing' extra of neuroflow_core/pyproject.toml")
    assert "trio" in declared, "the suites run under trio too"
