"""Every distribution builds; the core's extras pull the sibling plugins; they all load."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CORE_PROJECT = tomllib.loads((ROOT / "neuroflow_core" / "pyproject.toml").read_text())["project"]
CORE_VERSION = CORE_PROJECT["version"]
EXTRAS: dict[str, list[str]] = CORE_PROJECT.get("optional-dependencies", {})


def _project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


#: canonical name -> folder of every plugins/*/ distribution
LOCAL: dict[str, Path] = {
    canonicalize_name(_project(p.parent)["name"]): p.parent
    for p in sorted(ROOT.glob("plugins/*/pyproject.toml"))
}

#: other distributions of the repository a plugin may depend on (the native launcher)
SUPPORT: list[Path] = [p.parent for p in ROOT.glob("native/pyproject.toml")]
#: the same by canonical name: an extra may name one too (``native``)
SUPPORT_BY_NAME: dict[str, Path] = {
    canonicalize_name(_project(folder)["name"]): folder for folder in SUPPORT
}


#: extras that pull torch (through sentence-transformers): a fresh venv would download a
#: multi-GB CUDA build, so this test leaves them out; the memory-sqlite tox env installs the
#: CPU build and tests them.
TORCH_EXTRAS = {"minilm"}

#: extras of test tools (for the conformance suites), not of sibling plugins.
TOOL_EXTRAS = {"testing"}


def extras_whose_plugins_exist() -> list[str]:
    return sorted(
        extra for extra, reqs in EXTRAS.items()
        if reqs and extra not in TORCH_EXTRAS
        and all(canonicalize_name(Requirement(r).name) in LOCAL | SUPPORT_BY_NAME
                for r in reqs)
    )


def test_every_extra_names_sibling_plugins_at_the_core_version() -> None:
    assert EXTRAS, "the core declares no extras"
    problems = []
    for extra, reqs in sorted(EXTRAS.items()):
        if extra in TOOL_EXTRAS:
            continue
        for text in reqs:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            local = LOCAL.get(name) or SUPPORT_BY_NAME.get(name)
            if local is None:
                problems.append(f"[{extra}] {text}: no plugins/*/ distribution is named "
                                f"{req.name} (have: {', '.join(sorted(LOCAL)) or 'none'})")
                continue
            if str(req.specifier) != f"=={CORE_VERSION}":
                problems.append(f"[{extra}] {text}: pin it as =={CORE_VERSION}")
            project = _project(local)
            if project["version"] != CORE_VERSION:
                problems.append(f"[{extra}] {text}: {local.name} is at {project['version']}, "
                                f"the core at {CORE_VERSION}")
            for sub in req.extras:
                if sub not in project.get("optional-dependencies", {}):
                    problems.append(f"[{extra}] {text}: {req.name} has no extra [{sub}]")
    assert not problems, "\n".join(problems)


def test_every_plugin_depends_on_the_core_at_the_same_version() -> None:
    for folder in LOCAL.values():
        project = _project(folder)
        core = [Requirement(r) for r in project.get("dependencies", [])
                if canonicalize_name(Requirement(r).name) == "neuroflow"]
        assert core, f"{project['name']} does not depend on neuroflow"
        assert core[0].specifier.contains(CORE_VERSION), f"{project['name']}: {core[0]}"
        assert project.get("entry-points", {}).get("neuroflow"), (
            f"{project['name']} declares no [project.entry-points.neuroflow]"
        )


def test_every_distribution_builds_a_wheel(wheelhouse) -> None:
    example = ROOT / "examples" / "third-party-backend"
    house = wheelhouse.build(ROOT / "neuroflow_core", *LOCAL.values(), *SUPPORT, example)
    names = {canonicalize_name(p.name.split("-")[0]) for p in house.glob("*.whl")}
    support = {canonicalize_name(_project(folder)["name"]) for folder in SUPPORT}
    assert {"neuroflow", "neuroflow-sandbox-nice", *LOCAL, *support} == names


#: plugins that add commands rather than backends, and a word their command's help says
COMMAND_PLUGINS = {"console": "console"}


def test_install_with_extras_from_the_wheelhouse_loads_every_plugin(
    wheelhouse, make_venv, local_plugins, run_command
):
    extras = extras_whose_plugins_exist()
    venv = make_venv("extras")
    spec = f"neuroflow[{','.join(extras)}]=={CORE_VERSION}" if extras else \
        f"neuroflow=={CORE_VERSION}"
    venv.pip_install(wheelhouse.build(ROOT / "neuroflow_core", *LOCAL.values(), *SUPPORT), spec)
    listed = run_command(venv.bin("neuroflow"), "plugins", "--json")
    infos = {i["name"]: i for i in json.loads(listed)}
    wanted = {canonicalize_name(Requirement(r).name) for e in extras for r in EXTRAS[e]}
    for dist in (d for d in local_plugins if canonicalize_name(d.name) in wanted):
        for plugin in dist.entry_points:
            info = infos.get(plugin)
            assert info is not None, f"{dist.name}: plugin {plugin!r} not listed"
            assert (info["distribution"], info["version"], info["status"]) == (
                dist.name, dist.version, "loaded"
            ), info
            if plugin in COMMAND_PLUGINS:  # adds a command, not a backend: it must run
                assert COMMAND_PLUGINS[plugin] in run_command(
                    venv.bin("neuroflow"), COMMAND_PLUGINS[plugin].split()[0], "--help")
            else:
                assert info["provides"], f"{plugin} provides no backend"
    for info in infos.values():
        if info["builtin"]:
            assert info["status"] == "loaded", info
