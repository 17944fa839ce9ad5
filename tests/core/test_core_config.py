"""Configuration: files, environment, keywords, provenance, and one clear line per problem."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from neuroflow.config import (
    NeuroflowConfig,
    PluginsConfig,
    find_config_files,
    get_config,
    load_config,
    structure,
)
from neuroflow.errors import ConfigError


@pytest.fixture
def manager(fake_manager):
    """A plugin manager providing the default backends plus ``other`` and ``bare``."""
    return fake_manager()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def problem(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    """The single problem line of a ConfigError (asserting there is exactly one)."""
    lines = excinfo.value.problems
    assert len(lines) == 1, lines
    assert "\n" not in lines[0]
    return lines[0]


# --- sources --------------------------------------------------------------------------


def test_defaults_when_nothing_is_configured(manager) -> None:
    cfg = load_config(environ={}, manager=manager)
    assert isinstance(cfg, NeuroflowConfig)
    assert cfg.files == ()
    assert cfg.sources == {}
    sandbox = cfg.section("sandbox")
    assert (sandbox.backend, sandbox.selected) == ("process", ("process",))
    assert sandbox.options_for().cpu_time_limit == 0  # the registered class's defaults
    assert cfg.section("security").selected == ("allowlist", "paths", "network", "tools")
    assert cfg.plugins == PluginsConfig()
    assert {"sandbox", "memory", "embedder", "tracer", "llm", "security"} <= set(cfg.sections)


def test_neuroflow_toml_in_the_working_directory(manager) -> None:
    write(Path("neuroflow.toml"), """
        [sandbox]
        backend = "other"

        [sandbox.process]
        cpu_time_limit = 5

        [sandbox.other]
        level = 3
    """.replace("        ", ""))
    cfg = load_config(environ={}, manager=manager)
    assert cfg.section("sandbox").backend == "other"
    assert cfg.options("sandbox").level == 3
    assert cfg.options("sandbox", "process").cpu_time_limit == 5
    assert cfg.sources["sandbox.backend"] == "neuroflow.toml"
    assert cfg.sources["sandbox.process.cpu_time_limit"] == "neuroflow.toml"
    assert cfg.files == (Path.cwd() / "neuroflow.toml",)


def test_tool_neuroflow_in_pyproject(manager) -> None:
    write(Path("pyproject.toml"), '[project]\nname = "x"\n\n[tool.neuroflow.sandbox.process]\n'
                                  "cpu_time_limit = 9\n")
    cfg = load_config(environ={}, manager=manager)
    assert cfg.options("sandbox").cpu_time_limit == 9
    assert cfg.sources["sandbox.process.cpu_time_limit"] == "pyproject.toml"


def test_pyproject_without_tool_neuroflow_is_not_a_config_file(tmp_path, monkeypatch) -> None:
    write(tmp_path / "neuroflow.toml", "[sandbox]\n")
    sub = tmp_path / "project"
    sub.mkdir()
    write(sub / "pyproject.toml", '[project]\nname = "x"\n')
    monkeypatch.chdir(sub)
    assert find_config_files() == [tmp_path / "neuroflow.toml"]


def test_neuroflow_toml_wins_over_pyproject_in_the_same_folder(manager) -> None:
    write(Path("pyproject.toml"), "[tool.neuroflow.sandbox.process]\ncpu_time_limit = 1\n"
                                  "wall_time_limit = 2.5\n")
    write(Path("neuroflow.toml"), "[sandbox.process]\ncpu_time_limit = 2\n")
    cfg = load_config(environ={}, manager=manager)
    options = cfg.options("sandbox")
    assert (options.cpu_time_limit, options.wall_time_limit) == (2, 2.5)
    assert cfg.sources["sandbox.process.cpu_time_limit"] == "neuroflow.toml"
    assert cfg.sources["sandbox.process.wall_time_limit"] == "pyproject.toml"


def test_config_file_is_found_in_a_parent_folder(tmp_path, monkeypatch, manager) -> None:
    write(tmp_path / "neuroflow.toml", "[sandbox.process]\ncpu_time_limit = 4\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    cfg = load_config(environ={}, manager=manager)
    assert cfg.options("sandbox").cpu_time_limit == 4
    assert cfg.sources["sandbox.process.cpu_time_limit"] == str(tmp_path / "neuroflow.toml")


def test_neuroflow_config_names_the_file(tmp_path, monkeypatch, manager) -> None:
    write(Path("neuroflow.toml"), "[sandbox.process]\ncpu_time_limit = 1\n")
    chosen = write(tmp_path / "elsewhere.toml", "[sandbox.process]\ncpu_time_limit = 8\n")
    monkeypatch.setenv("NEUROFLOW_CONFIG", str(chosen))
    assert load_config(manager=manager).options("sandbox").cpu_time_limit == 8


def test_environment_values_are_toml_literals(manager) -> None:
    environ = {
        "NEUROFLOW_SANDBOX__PROCESS__CPU_TIME_LIMIT": "7",
        "NEUROFLOW_SANDBOX__PROCESS__WALL_TIME_LIMIT": "1.5",
        "NEUROFLOW_SANDBOX__PROCESS__ENABLE_NETWORK": "true",
        "NEUROFLOW_SANDBOX__PROCESS__WORK_DIR": "/tmp/box",  # not a TOML literal: a string
        "NEUROFLOW_SANDBOX__PROCESS__ALLOWED_COMMANDS": '["ls", "cat"]',
        "NEUROFLOW_SECURITY__GUARDS": '["allowlist"]',
        "NEUROFLOW_PLUGINS": "ignored-here",  # no "__": a plugin-manager variable
    }
    cfg = load_config(environ=environ, manager=manager)
    options = cfg.options("sandbox")
    assert options.cpu_time_limit == 7
    assert options.wall_time_limit == 1.5
    assert options.enable_network is True
    assert options.work_dir == "/tmp/box"
    assert options.allowed_commands == ("ls", "cat")
    assert cfg.section("security").selected == ("allowlist",)
    assert cfg.sources["sandbox.process.cpu_time_limit"] == (
        "env NEUROFLOW_SANDBOX__PROCESS__CPU_TIME_LIMIT"
    )


def test_os_environ_is_read_by_default(monkeypatch, manager) -> None:
    monkeypatch.setenv("NEUROFLOW_SANDBOX__BACKEND", "bare")
    cfg = load_config(manager=manager)
    assert cfg.section("sandbox").backend == "bare"
    assert cfg.sources["sandbox.backend"] == "env NEUROFLOW_SANDBOX__BACKEND"


def test_later_sources_win_and_provenance_follows(manager) -> None:
    write(Path("pyproject.toml"), "[tool.neuroflow.sandbox.process]\ncpu_time_limit = 1\n"
                                  "wall_time_limit = 1.0\nwork_dir = 'py'\n")
    write(Path("neuroflow.toml"), "[sandbox.process]\ncpu_time_limit = 2\nwall_time_limit = 2.0\n")
    environ = {"NEUROFLOW_SANDBOX__PROCESS__CPU_TIME_LIMIT": "3"}
    cfg = load_config(environ=environ, manager=manager,
                      sandbox={"process": {"cpu_time_limit": 4}})
    options = cfg.options("sandbox")
    assert (options.cpu_time_limit, options.wall_time_limit, options.work_dir) == (4, 2.0, "py")
    assert cfg.sources["sandbox.process.cpu_time_limit"] == "keyword argument"
    assert cfg.sources["sandbox.process.wall_time_limit"] == "neuroflow.toml"
    assert cfg.sources["sandbox.process.work_dir"] == "pyproject.toml"
    cfg = load_config(environ=environ, manager=manager)
    assert cfg.options("sandbox").cpu_time_limit == 3
    assert cfg.sources["sandbox.process.cpu_time_limit"] == (
        "env NEUROFLOW_SANDBOX__PROCESS__CPU_TIME_LIMIT"
    )


def test_explicit_files_replace_the_search(tmp_path, manager) -> None:
    write(Path("neuroflow.toml"), "[sandbox.process]\ncpu_time_limit = 1\n")
    other = write(tmp_path / "other.toml", "[sandbox.process]\ncpu_time_limit = 6\n")
    assert load_config(files=[other], environ={}, manager=manager).options("sandbox") \
        .cpu_time_limit == 6
    assert load_config(files=[], environ={}, manager=manager).options("sandbox") \
        .cpu_time_limit == 0


def test_plugins_section_reaches_the_plugin_manager(tmp_path, monkeypatch) -> None:
    write(Path("neuroflow.toml"), '[plugins]\nblock = ["x"]\nautoload = false\n')
    monkeypatch.setenv("NEUROFLOW_PLUGINS__REQUIRED", '["neuroflow>=0.1"]')
    assert get_config().plugins == PluginsConfig(
        autoload=False, block=("x",), required=("neuroflow>=0.1",)
    )


def test_options_for_a_known_backend_that_is_not_installed_are_kept(manager) -> None:
    write(Path("neuroflow.toml"), '[memory.sqlite]\nurl = "sqlite:///m.db"\n')
    cfg = load_config(environ={}, manager=manager)
    assert cfg.options("memory", "sqlite") == {"url": "sqlite:///m.db"}


def test_as_dict_shows_the_effective_values(manager) -> None:
    cfg = load_config(environ={}, manager=manager, sandbox={"process": {"cpu_time_limit": 3}})
    data = cfg.as_dict()
    assert data["sandbox"]["backend"] == "process"
    assert data["sandbox"]["process"]["cpu_time_limit"] == 3
    assert data["security"]["guards"] == ["allowlist", "paths", "network", "tools"]
    assert data["plugins"] == {"autoload": True, "allow": None, "block": [], "required": []}


# --- one clear line per problem ----------------------------------------------------------


def test_wrong_type_names_path_expectation_and_file(manager) -> None:
    write(Path("neuroflow.toml"), '[sandbox.process]\ncpu_time_limit = "lots"\n')
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager)
    assert problem(err) == (
        "sandbox.process.cpu_time_limit: expected an integer, got 'lots' (in neuroflow.toml)"
    )


@pytest.mark.parametrize(
    ("literal", "expected"),
    [("true", "an integer, got True"), ("1.5", "an integer, got 1.5"), ("[1]", "an integer")],
)
def test_no_silent_coercion(manager, literal: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={"NEUROFLOW_SANDBOX__PROCESS__CPU_TIME_LIMIT": literal},
                    manager=manager)
    line = problem(err)
    assert line.startswith(f"sandbox.process.cpu_time_limit: expected {expected}")
    assert line.endswith("(in env NEUROFLOW_SANDBOX__PROCESS__CPU_TIME_LIMIT)")


def test_wrong_type_from_a_keyword_argument(manager) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager, sandbox={"process": {"enable_network": "no"}})
    assert problem(err) == (
        "sandbox.process.enable_network: expected true or false, got 'no' (in keyword argument)"
    )


def test_unknown_key_has_did_you_mean(manager) -> None:
    write(Path("neuroflow.toml"), "[sandbox.process]\ncpu_time_limt = 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager)
    line = problem(err)
    assert line.startswith(
        "sandbox.process.cpu_time_limt: unknown key; did you mean 'cpu_time_limit'? (known: "
    )
    assert line.endswith("(in neuroflow.toml)")


def test_unknown_key_in_a_section(manager) -> None:
    write(Path("neuroflow.toml"), '[sandbox]\nbackedn = "process"\n')
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager)
    assert problem(err).startswith("sandbox.backedn: unknown key; did you mean 'backend'?")


def test_unknown_section_has_did_you_mean(manager) -> None:
    write(Path("neuroflow.toml"), '[sandbx]\nbackend = "process"\n')
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager)
    assert problem(err) == (
        "sandbx: unknown section; did you mean 'sandbox'? (known: plugins, sandbox, memory, "
        "embedder, tracer, llm, security, mcp, a2a, registry) (in neuroflow.toml)"
    )


def test_unknown_backend_lists_installed_ones(manager) -> None:
    write(Path("neuroflow.toml"), '[sandbox]\nbackend = "firejail"\n')
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager)
    assert problem(err) == (
        "sandbox.backend: unknown sandbox backend 'firejail' (installed: bare, other, "
        "process) (in neuroflow.toml)"
    )


def test_known_but_missing_backend_gives_the_pip_command(manager) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={"NEUROFLOW_MEMORY__BACKEND": "sqlite"}, manager=manager)
    assert problem(err) == (
        "memory.backend: unknown memory store 'sqlite' (installed: memory); "
        "it is provided by neuroflow-memory-sqlite: pip install 'neuroflow[sqlite]' "
        "(in env NEUROFLOW_MEMORY__BACKEND)"
    )


def test_missing_required_plugin_gives_the_pip_command(manager) -> None:
    write(Path("neuroflow.toml"), '[plugins]\nrequired = ["neuroflow-otel>=0.1"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager)
    assert problem(err) == (
        "plugins.required: 'neuroflow-otel' is not loaded; pip install 'neuroflow-otel>=0.1' "
        "(in neuroflow.toml)"
    )


def test_invalid_toml_is_one_line_with_the_file(manager) -> None:
    write(Path("neuroflow.toml"), "[sandbox\nbackend = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager)
    line = problem(err)
    assert line.startswith(f"{Path.cwd() / 'neuroflow.toml'}: invalid TOML: ")
    assert "line 1" in line


def test_wrong_type_in_plugins_section(manager) -> None:
    write(Path("neuroflow.toml"), '[plugins]\nautoload = "yes"\n')
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager)
    assert problem(err) == (
        "plugins.autoload: expected true or false, got 'yes' (in neuroflow.toml)"
    )


def test_backend_name_of_wrong_type(manager) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager, sandbox={"backend": 3})
    assert problem(err) == (
        "sandbox.backend: expected a backend name, got 3 (in keyword argument)"
    )


def test_multi_section_needs_a_list(manager) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={"NEUROFLOW_SECURITY__GUARDS": "allowlist"}, manager=manager)
    assert problem(err) == (
        "security.guards: expected a list of names, got 'allowlist' "
        "(in env NEUROFLOW_SECURITY__GUARDS)"
    )


def test_section_that_is_not_a_table(manager) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager, sandbox="process")
    assert problem(err) == "sandbox: expected a table, got 'process' (in keyword argument)"


def test_options_for_a_backend_without_a_config_class(manager) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager, sandbox={"bare": {"x": 1}})
    assert problem(err) == "sandbox.bare: sandbox backend 'bare' takes no options"


def test_every_problem_is_reported_at_once(manager) -> None:
    write(Path("neuroflow.toml"), '[sandbox]\nbackend = "nope"\n[sandbox.process]\n'
                                  'cpu_time_limit = "x"\n[tracr]\n')
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager)
    assert len(err.value.problems) == 3
    assert [line.split(":")[0] for line in err.value.problems] == [
        "sandbox.backend", "sandbox.process.cpu_time_limit", "tracr"
    ]


def test_unknown_section_name_in_code(manager) -> None:
    cfg = load_config(environ={}, manager=manager)
    with pytest.raises(ConfigError, match="unknown configuration section 'sandbx'"):
        cfg.section("sandbx")


# --- the one converter -----------------------------------------------------------------------


@attrs.frozen
class Inner:
    """A nested config for the converter tests."""

    port: int = 0


@attrs.frozen
class Outer:
    """A config with a nested table and a list of tables."""

    name: str
    inner: Inner = Inner()
    more: tuple[Inner, ...] = ()


def test_structure_names_nested_paths_and_list_indexes() -> None:
    with pytest.raises(ConfigError) as err:
        structure({"name": "a", "inner": {"port": "x"}, "more": [{"port": 1}, {"prot": 2}]},
                  Outer, path="mcp.server", sources={"mcp": "neuroflow.toml"})
    assert err.value.problems == [
        "mcp.server.inner.port: expected an integer, got 'x' (in neuroflow.toml)",
        "mcp.server.more.1.prot: unknown key; did you mean 'port'? (known: port) "
        "(in neuroflow.toml)",
    ]


def test_structure_missing_required_key_and_non_table() -> None:
    with pytest.raises(ConfigError) as err:
        structure({}, Outer, path="x")
    assert err.value.problems == ["x.name: required key is missing"]
    with pytest.raises(ConfigError, match=r"^x: expected a table, got 5$"):
        structure(5, Outer, path="x")
    assert structure({"name": "n", "more": [{"port": 2}]}, Outer) == Outer("n", more=(Inner(2),))
    same = Outer("n")
    assert structure(same, Outer) is same


def test_did_you_mean_also_catches_reordered_words(manager) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, manager=manager, sandbox={"process": {"limit_time_cpu": 1}})
    assert problem(err).startswith(
        "sandbox.process.limit_time_cpu: unknown key; did you mean 'cpu_time_limit'?"
    )
