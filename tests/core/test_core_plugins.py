"""The plugin manager: discovery, allow/block lists, failures, replacement, laziness."""

from __future__ import annotations

import sys

import pytest

from neuroflow import create_backend
from neuroflow.backends import BackendKind, BackendSpec
from neuroflow.config import PluginsConfig
from neuroflow.errors import BackendNotFoundError, MissingPluginError, PluginLoadError
from neuroflow.hookspecs import hookimpl
from neuroflow.plugins import BUILTIN_PLUGINS, PluginManager, get_plugin_manager, set_plugin_manager

ISOLATION_PLUGIN = """
from neuroflow import BackendSpec, hookimpl


def make(config=None):
    return ("{name}", config)


@hookimpl
def neuroflow_backends():
    return [BackendSpec(name="{name}", kind="isolation", factory=make,
                        description="{name} sandbox")]
"""


def isolation_plugin(name: str) -> str:
    """Source of a plugin module providing the isolation backend ``name``."""
    return ISOLATION_PLUGIN.replace("{name}", name)


def infos_by_name(manager: PluginManager) -> dict:
    return {info.name: info for info in manager.plugin_infos()}


# --- built-ins ---------------------------------------------------------------------


def test_builtins_register_through_the_same_hooks() -> None:
    manager = PluginManager(PluginsConfig(autoload=False))
    infos = infos_by_name(manager)
    for name in BUILTIN_PLUGINS:
        info = infos[name]
        assert info.builtin and info.distribution == "neuroflow"
        assert info.status == "loaded", f"{name}: {info.error}"
    # every built-in backend was registered by a built-in plugin, through a hook
    for kind in BackendKind:
        for spec in manager.backends(kind).values():
            assert spec.plugin in BUILTIN_PLUGINS
            assert spec.distribution == "neuroflow"
    assert "process" in manager.backends("isolation")
    assert manager.backends("isolation")["process"].plugin == "neuroflow.sandbox"


def test_a_builtin_can_be_blocked_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROFLOW_BLOCK_PLUGINS", "neuroflow.sandbox, other")
    manager = PluginManager()
    assert infos_by_name(manager)["neuroflow.sandbox"].status == "blocked"
    assert "process" not in manager.backends("isolation")
    with pytest.raises(BackendNotFoundError) as err:
        manager.get_backend("isolation", "process", field="sandbox.backend")
    message = str(err.value)
    assert message.startswith("sandbox.backend: unknown sandbox backend 'process'")
    assert "plugins not loaded: neuroflow.sandbox" in message


def test_a_builtin_can_be_blocked_from_configuration(defaults_plugin) -> None:
    # Entry points off: what else happens to be installed (the example backend) stays out.
    builtins = {"test.defaults": defaults_plugin}
    unblocked = PluginManager(PluginsConfig(autoload=False), builtins=builtins)
    assert set(unblocked.backends("isolation")) == {"process", "other", "bare"}
    manager = PluginManager(
        PluginsConfig(autoload=False, block=("test.defaults",)), builtins=builtins
    )
    assert infos_by_name(manager)["test.defaults"].status == "blocked"
    assert manager.backends("isolation") == {}


# --- entry points ----------------------------------------------------------------------


def test_entry_point_plugin_is_discovered_with_its_distribution(site) -> None:
    site.distribution(
        "acme-sandbox", "1.2", {"acme": "nf_acme"}, {"nf_acme": isolation_plugin("acme")}
    )
    manager = PluginManager(builtins={})
    info = infos_by_name(manager)["acme"]
    assert (info.status, info.distribution, info.version, info.builtin) == (
        "loaded", "acme-sandbox", "1.2", False
    )
    assert info.provides == {"isolation": ["acme"]}
    spec = manager.get_backend("isolation", "acme")
    assert (spec.plugin, spec.distribution, spec.description) == (
        "acme", "acme-sandbox", "acme sandbox"
    )
    assert spec.load_factory()() == ("acme", None)


def test_allow_list_from_environment_loads_only_those(site, monkeypatch) -> None:
    site.distribution("dist-a", "1", {"a": "nf_a"}, {"nf_a": isolation_plugin("a")})
    site.distribution("dist-b", "1", {"b": "nf_b"}, {"nf_b": isolation_plugin("b")})
    monkeypatch.setenv("NEUROFLOW_PLUGINS", "a")
    manager = PluginManager(builtins={"neuroflow.cli": "neuroflow.cli_commands"})
    infos = infos_by_name(manager)
    assert infos["a"].status == "loaded"
    assert (infos["b"].status, infos["b"].error) == ("blocked", "not in the allow list")
    assert infos["neuroflow.cli"].status == "loaded"  # the allow list is for entry points
    assert set(manager.backends("isolation")) == {"a"}
    assert "nf_b" not in sys.modules


def test_allow_list_from_configuration(site) -> None:
    site.distribution("dist-a", "1", {"a": "nf_a"}, {"nf_a": isolation_plugin("a")})
    site.distribution("dist-b", "1", {"b": "nf_b"}, {"nf_b": isolation_plugin("b")})
    manager = PluginManager(PluginsConfig(allow=("b",)), builtins={})
    assert set(manager.backends("isolation")) == {"b"}


def test_block_list_from_environment_blocks_an_entry_point(site, monkeypatch) -> None:
    site.distribution("dist-a", "1", {"a": "nf_a"}, {"nf_a": isolation_plugin("a")})
    monkeypatch.setenv("NEUROFLOW_BLOCK_PLUGINS", "a")
    manager = PluginManager(builtins={})
    assert infos_by_name(manager)["a"].status == "blocked"
    assert "a" not in manager.backends("isolation")


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_disable_autoload_skips_entry_points_but_not_builtins(
    site, defaults_plugin, monkeypatch, value
) -> None:
    site.distribution("dist-a", "1", {"a": "nf_a"}, {"nf_a": isolation_plugin("a")})
    monkeypatch.setenv("NEUROFLOW_DISABLE_PLUGIN_AUTOLOAD", value)
    manager = PluginManager(builtins={"test.defaults": defaults_plugin})
    assert set(infos_by_name(manager)) == {"test.defaults"}
    assert "a" not in manager.backends("isolation")
    assert "process" in manager.backends("isolation")


def test_autoload_zero_still_loads(site, monkeypatch) -> None:
    site.distribution("dist-a", "1", {"a": "nf_a"}, {"nf_a": isolation_plugin("a")})
    monkeypatch.setenv("NEUROFLOW_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert "a" in PluginManager(builtins={}).backends("isolation")


def test_autoload_false_in_configuration(site) -> None:
    site.distribution("dist-a", "1", {"a": "nf_a"}, {"nf_a": isolation_plugin("a")})
    manager = PluginManager(PluginsConfig(autoload=False), builtins={})
    assert manager.plugin_infos() == []


# --- failures are reported by name; the rest keep working ------------------------------


def test_plugin_that_fails_to_import_is_reported_and_others_work(site) -> None:
    site.distribution("good-dist", "1", {"good": "nf_good"}, {"nf_good": isolation_plugin("good")})
    site.distribution(
        "broken-dist", "3.1", {"broken": "nf_broken"},
        {"nf_broken": "import nf_this_module_does_not_exist\n"},
    )
    manager = PluginManager(builtins={})
    infos = infos_by_name(manager)
    assert infos["broken"].status == "failed"
    assert infos["broken"].distribution == "broken-dist"
    assert infos["broken"].error == (
        "ModuleNotFoundError: No module named 'nf_this_module_does_not_exist'"
    )
    assert infos["good"].status == "loaded"
    assert "good" in manager.backends("isolation")


def test_entry_point_naming_a_missing_attribute_is_reported(site) -> None:
    site.distribution("attr-dist", "1", {"attr": "nf_attr:nothing_here"}, {"nf_attr": "x = 1\n"})
    info = infos_by_name(PluginManager(builtins={}))["attr"]
    assert info.status == "failed" and "nothing_here" in info.error


def test_plugin_whose_hook_raises_is_reported_and_others_work(site) -> None:
    site.distribution("good-dist", "1", {"good": "nf_good"}, {"nf_good": isolation_plugin("good")})
    site.distribution("raising-dist", "1", {"raising": "nf_raising"}, {"nf_raising": """
        from neuroflow.hookspecs import hookimpl

        @hookimpl
        def neuroflow_backends():
            raise RuntimeError("boom")
    """})
    manager = PluginManager(builtins={})
    assert manager.backends("isolation")["good"].plugin == "good"
    info = infos_by_name(manager)["raising"]
    assert (info.status, info.error) == (
        "failed", "neuroflow_backends: RuntimeError: boom"
    )


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        ('["not a spec"]', "TypeError: expected BackendSpec, got str"),
        ('[BackendSpec(name="m", kind="teleporter", factory=dict)]',
         "ValueError: 'teleporter' is not a valid BackendKind"),
        ("42", "TypeError: 'int' object is not iterable"),
    ],
)
def test_plugin_returning_junk_is_reported(site, returned: str, error: str) -> None:
    site.distribution("good-dist", "1", {"good": "nf_good"}, {"nf_good": isolation_plugin("good")})
    site.distribution("junk-dist", "1", {"junk": "nf_junk"}, {"nf_junk": f"""
from neuroflow import BackendSpec, hookimpl

@hookimpl
def neuroflow_backends():
    return {returned}
"""})
    manager = PluginManager(builtins={})
    assert manager.backends("isolation")["good"].plugin == "good"
    info = infos_by_name(manager)["junk"]
    assert info.status == "failed"
    assert info.error == f"neuroflow_backends: {error}"


def test_plugin_implementing_a_misspelled_hook_is_reported(site) -> None:
    site.distribution("typo-dist", "1", {"typo": "nf_typo"}, {"nf_typo": """
        from neuroflow.hookspecs import hookimpl

        @hookimpl
        def neuroflow_isolation_backend():
            return []
    """})
    info = infos_by_name(PluginManager(builtins={}))["typo"]
    assert info.status == "failed"
    assert info.error == (
        "implements unknown hook 'neuroflow_isolation_backend'; "
        "did you mean 'neuroflow_backends'?"
    )


def test_plugin_with_wrong_hook_arguments_is_reported(site) -> None:
    site.distribution("args-dist", "1", {"args": "nf_args"}, {"nf_args": """
        from neuroflow.hookspecs import hookimpl

        @hookimpl
        def neuroflow_guard_check(action, context, extra):
            return None
    """})
    info = infos_by_name(PluginManager(builtins={}))["args"]
    assert info.status == "failed" and "extra" in info.error


def test_two_distributions_using_one_plugin_name(site) -> None:
    site.distribution("first-dist", "1", {"same": "nf_first"}, {"nf_first": isolation_plugin("x")})
    site.distribution("second-dist", "1", {"same": "nf_second"},
                      {"nf_second": isolation_plugin("y")})
    infos = [i for i in PluginManager(builtins={}).plugin_infos()
             if i.distribution in ("first-dist", "second-dist")]
    statuses = sorted((i.distribution, i.status) for i in infos)
    assert statuses == [("first-dist", "loaded"), ("second-dist", "failed")] or statuses == [
        ("first-dist", "failed"), ("second-dist", "loaded")
    ]
    failed = next(i for i in infos if i.status == "failed")
    assert "already used by" in failed.error and "rename the entry point" in failed.error


# --- replacement, requirements, laziness ------------------------------------------------


def test_entry_point_plugin_replaces_a_builtin_backend_of_the_same_name(site) -> None:
    site.distribution(
        "better-process", "2.0", {"better": "nf_better"}, {"nf_better": isolation_plugin("process")}
    )
    manager = PluginManager()
    spec = manager.get_backend("isolation", "process")
    assert (spec.plugin, spec.distribution) == ("better", "better-process")
    assert spec.load_factory()() == ("process", None)


def test_replacement_also_works_between_fake_builtin_and_entry_point(site, defaults_plugin):
    site.distribution("over", "1", {"over": "nf_over"}, {"nf_over": isolation_plugin("process")})
    manager = PluginManager(builtins={"test.defaults": defaults_plugin})
    assert manager.get_backend("isolation", "process").plugin == "over"
    assert manager.get_backend("isolation", "other").plugin == "test.defaults"


def test_required_plugins_with_version_specifiers(site) -> None:
    site.distribution("acme-sandbox", "1.2", {"acme": "nf_acme"},
                      {"nf_acme": isolation_plugin("acme")})
    manager = PluginManager(builtins={})
    manager.check_required(["acme-sandbox>=1.0", "Acme_Sandbox==1.2", "acme", "acme<2"])
    with pytest.raises(MissingPluginError) as err:
        manager.check_required(["acme-sandbox>=2"])
    assert str(err.value) == (
        "plugins.required: acme-sandbox 1.2 is installed but 'acme-sandbox>=2' is required; "
        "pip install 'acme-sandbox>=2'"
    )
    with pytest.raises(MissingPluginError) as err:
        manager.check_required(["neuroflow-not-there>=0.1"])
    assert str(err.value) == (
        "plugins.required: 'neuroflow-not-there' is not loaded; "
        "pip install 'neuroflow-not-there>=0.1'"
    )
    with pytest.raises(MissingPluginError, match="is not a requirement"):
        manager.check_required(["not a requirement !!"])


def test_required_plugin_that_is_blocked_says_so(site) -> None:
    site.distribution("acme-sandbox", "1.2", {"acme": "nf_acme"},
                      {"nf_acme": isolation_plugin("acme")})
    manager = PluginManager(PluginsConfig(block=("acme",), required=("acme",)), builtins={})
    with pytest.raises(MissingPluginError) as err:
        manager.check_required()
    assert "'acme' is not loaded (blocked: None); unblock or fix it" in str(err.value)


def test_missing_required_plugin_is_listed_not_raised_at_discovery() -> None:
    manager = PluginManager(PluginsConfig(autoload=False, required=("neuroflow-absent>=1",)),
                            builtins={})
    (info,) = manager.plugin_infos()
    assert (info.name, info.status) == ("neuroflow-absent", "missing")
    assert "pip install 'neuroflow-absent>=1'" in info.error


def test_factories_and_config_classes_are_imported_only_on_create(site) -> None:
    site.module("nf_heavy_backend", """
        import attrs

        @attrs.frozen
        class HeavyConfig:
            size: int = 3

        class Heavy:
            name = "heavy"
            dimension = 1

            def __init__(self, config):
                self.config = config

            def embed(self, texts):
                return [[1.0] for _ in texts]
    """)
    site.distribution("lazy-dist", "1", {"lazy": "nf_lazy"}, {"nf_lazy": """
        from neuroflow import BackendSpec, hookimpl

        @hookimpl
        def neuroflow_backends():
            return [BackendSpec(name="heavy", kind="embedder",
                                factory="nf_heavy_backend:Heavy",
                                config_class="nf_heavy_backend:HeavyConfig")]
    """})
    manager = PluginManager(builtins={})
    set_plugin_manager(manager)
    manager.plugin_infos()
    spec = manager.get_backend("embedder", "heavy")
    assert "nf_heavy_backend" not in sys.modules
    backend = create_backend("embedder", "heavy")
    assert "nf_heavy_backend" in sys.modules
    assert backend.config.size == 3
    assert spec.load_config_class()(size=5) == type(backend.config)(size=5)
    assert create_backend("embedder", "heavy", spec.load_config_class()(size=9)).config.size == 9
    assert create_backend("embedder", "heavy", {"size": 7}).config.size == 7


def test_a_factory_reference_that_does_not_import_names_the_backend(site) -> None:
    site.distribution("bad-ref", "1", {"badref": "nf_badref"}, {"nf_badref": """
        from neuroflow import BackendSpec, hookimpl

        @hookimpl
        def neuroflow_backends():
            return [BackendSpec(name="ghost", kind="tracer", factory="nf_ghost_mod:Ghost")]
    """})
    set_plugin_manager(PluginManager(builtins={}))
    with pytest.raises(PluginLoadError) as err:
        create_backend("tracer", "ghost")
    assert str(err.value) == (
        "tracer backend 'ghost': cannot load 'nf_ghost_mod:Ghost': "
        "ModuleNotFoundError: No module named 'nf_ghost_mod'"
    )


def test_unknown_backend_lists_installed_ones_and_the_pip_command(site, defaults_plugin):
    manager = PluginManager(builtins={"test.defaults": defaults_plugin}, entry_points=False)
    with pytest.raises(BackendNotFoundError) as err:
        manager.get_backend("memory", "sqlite", field="memory.backend")
    assert str(err.value) == (
        "memory.backend: unknown memory store 'sqlite' (installed: memory); "
        "it is provided by neuroflow-memory-sqlite: pip install 'neuroflow[sqlite]'"
    )
    with pytest.raises(BackendNotFoundError, match="did you mean 'process'"):
        manager.get_backend("isolation", "proces")


def test_register_at_run_time_and_provides_is_not_duplicated(defaults_plugin) -> None:
    manager = PluginManager(builtins={"test.defaults": defaults_plugin})
    manager.plugin_infos()

    class Extra:
        @hookimpl
        def neuroflow_backends(self) -> list[BackendSpec]:
            return [BackendSpec(name="pigeon", kind="embedder", factory=dict)]

    manager.register(Extra(), name="extra")
    infos = infos_by_name(manager)
    assert infos["extra"].provides == {"embedder": ["pigeon"]}
    assert infos["test.defaults"].provides["isolation"] == ["process", "other", "bare"]
    assert manager.get_backend("embedder", "pigeon").plugin == "extra"


def test_hook_impls_are_called_in_pluggy_call_order() -> None:
    manager = PluginManager(builtins={})
    calls: list[str] = []

    class First:
        @hookimpl
        def neuroflow_audit_event(self, event: object) -> None:
            calls.append(f"first {event}")

    class Second:
        @hookimpl
        def neuroflow_audit_event(self, event: object) -> None:
            calls.append(f"second {event}")

    manager.register(First(), name="first")
    manager.register(Second(), name="second")
    for impl in manager.hook_impls("neuroflow_audit_event"):
        impl(event="e1")
    assert calls == ["second e1", "first e1"]  # last registered first, as pluggy calls them
    assert [impl.plugin for impl in manager.hook_impls("neuroflow_audit_event")] == [
        "second", "first"]


def test_get_plugin_manager_is_process_wide_and_reads_configuration(tmp_path, monkeypatch):
    (tmp_path / "neuroflow.toml").write_text('[plugins]\nblock = ["neuroflow.memory"]\n')
    monkeypatch.chdir(tmp_path)
    manager = get_plugin_manager()
    assert manager is get_plugin_manager()
    assert infos_by_name(manager)["neuroflow.memory"].status == "blocked"


@pytest.mark.parametrize("group", ["neuroflow", "pytest11", "console_scripts"])
def test_scan_entry_points_agrees_with_importlib_metadata(site, group: str) -> None:
    from importlib import metadata

    from neuroflow.plugins import scan_entry_points

    site.distribution("scan-me", "4.5", {"scanned": "nf_scanned:thing [extra]"}, group=group)
    expected = sorted(
        (ep.name, ep.value.split("[")[0].strip(), ep.dist.name, ep.dist.version)
        for ep in metadata.entry_points(group=group)
    )
    found = sorted((ep.name, ep.value, ep.dist, ep.version) for ep in scan_entry_points(group))
    assert found == expected
    assert ("scanned", "nf_scanned:thing", "scan-me", "4.5") in found


def test_registering_a_second_plugin_under_a_taken_name_is_refused(defaults_plugin) -> None:
    from neuroflow.errors import PluginError

    manager = PluginManager(builtins={"test.defaults": defaults_plugin}, entry_points=False)

    class Impostor:
        @hookimpl
        def neuroflow_backends(self) -> list[BackendSpec]:
            return []

    with pytest.raises(PluginError, match=r"'test\.defaults' is already registered"):
        manager.register(Impostor(), name="test.defaults")
    assert infos_by_name(manager)["test.defaults"].status == "loaded"
    assert "process" in manager.backends("isolation")
