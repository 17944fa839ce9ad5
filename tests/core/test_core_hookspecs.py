"""Meta-tests: every hook is documented with an example and exercised by a test, and every
public name NeuroFlow exports has a docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import neuroflow
from neuroflow import hookspecs
from neuroflow.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[2]
HOOK_NAMES = sorted(
    name for name, value in vars(hookspecs).items()
    if name.startswith("neuroflow_") and inspect.isfunction(value)
)


def test_the_hook_list_is_what_the_plugin_manager_knows() -> None:
    assert HOOK_NAMES == PluginManager(builtins={}).hook_names()
    assert HOOK_NAMES == ["neuroflow_audit_event", "neuroflow_backends", "neuroflow_cli_commands",
                          "neuroflow_doctor_checks", "neuroflow_guard_check"]


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hookspec_has_a_docstring_with_an_example(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    summary = doc.split("\n\n")[0]
    assert len(summary) > 20, f"{hook}: needs a one-line summary"
    assert "Example::" in doc, f"{hook}: the docstring needs an 'Example::' block"
    example = doc.split("Example::", 1)[1]
    assert "@hookimpl" in example and f"def {hook}(" in example, (
        f"{hook}: the example must show an @hookimpl implementation of {hook}"
    )


def _test_files() -> list[Path]:
    found = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py"),
             *ROOT.glob("examples/*/tests/**/*.py")]
    return [p for p in found if p.resolve() != Path(__file__).resolve()]


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    pattern = re.compile(rf"\b{hook}\b")
    users = [p for p in _test_files() if pattern.search(p.read_text(errors="replace"))]
    assert users, f"no test under tests/, plugins/*/tests or examples/*/tests mentions {hook}"


def _public_modules() -> list[str]:
    names = ["neuroflow"]
    for info in pkgutil.walk_packages(neuroflow.__path__, "neuroflow."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _public_modules())
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert inspect.getdoc(module), f"{module_name}: module docstring missing"
    missing = []
    for name in getattr(module, "__all__", ()):
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            if not value.__doc__ or not value.__doc__.strip():
                missing.append(name)
            if inspect.isclass(value):
                missing += [
                    f"{name}.{attr}"
                    for attr, member in vars(value).items()
                    if not attr.startswith(("_", "test_"))  # suites' tests are named to be read
                    and (inspect.isfunction(member) or isinstance(member, property))
                    and not (member.__doc__ or "").strip()
                ]
    assert not missing, f"{module_name}: no docstring on {', '.join(missing)}"


def test_test_module_basenames_are_unique() -> None:
    """pytest imports test modules by basename (prepend mode): two ``test_x.py`` collide."""
    seen: dict[str, Path] = {}
    clashes = []
    candidates = [*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("plugins/*/tests/**/test_*.py")]
    for path in sorted(candidates):
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen.setdefault(path.name, path)
    assert not clashes, "rename one of each pair (prefix it): " + "; ".join(clashes)
