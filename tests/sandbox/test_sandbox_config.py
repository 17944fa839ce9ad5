"""SandboxConfig validation, loading from neuroflow.toml, and size parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroflow.config import load_config
from neuroflow.errors import ConfigError
from neuroflow.sandbox import SandboxConfig, SandboxSecurityLevel
from neuroflow.units import parse_size


def test_defaults_are_valid_and_frozen() -> None:
    config = SandboxConfig()
    assert config.security_level is SandboxSecurityLevel.STANDARD
    assert config.allowed_commands is None
    with pytest.raises(AttributeError):
        config.cpu_time_limit = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("memory_limit", -1, "memory_limit: expected an integer number of bytes greater than 0"),
        ("memory_limit", 1.5, "memory_limit: expected an integer number of bytes"),
        ("cpu_time_limit", 0, "cpu_time_limit: expected a number of seconds greater than 0"),
        ("cpu_time_limit", "lots", "cpu_time_limit: expected a number of seconds or None"),
        ("wall_timeout", True, "wall_timeout: expected a number of seconds or None"),
        ("max_processes", 0, "max_processes: expected an integer count greater than 0"),
        ("max_output_bytes", -5, "max_output_bytes"),
        ("security_level", "paranoid", "security_level: expected one of permissive, standard"),
        ("env", {"A=B": "x"}, "env: invalid variable name 'A=B'"),
        ("env", {"A": 1}, "env.A: expected a string value"),
        ("allowed_commands", "python3", "expected a list of strings"),
        ("allowed_commands", ["ok", ""], "allowed_commands: expected non-empty strings"),
        ("enable_network", "no", "enable_network"),
        ("work_dir", "", "work_dir: expected a directory path"),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        SandboxConfig(**{field: value})
    assert expected in str(info.value)


def test_security_level_accepts_strings_and_paths_are_strings(tmp_path: Path) -> None:
    config = SandboxConfig(security_level="strict", work_dir=tmp_path,
                           allowed_commands=["ls"], inherit_env=["HOME"])
    assert config.security_level is SandboxSecurityLevel.STRICT
    assert config.work_dir == str(tmp_path)
    assert config.allowed_commands == ("ls",)
    assert config.inherit_env == ("HOME",)


def test_spec_security_example_builds() -> None:
    config = SandboxConfig(
        security_level=SandboxSecurityLevel.STRICT,
        allowed_commands=["python3", "pip", "ls"],
        enable_seccomp=True,
        enable_network=False,
    )
    assert config.allowed_commands == ("python3", "pip", "ls")


def test_loaded_from_neuroflow_toml(tmp_path: Path) -> None:
    path = tmp_path / "neuroflow.toml"
    path.write_text(
        '[sandbox]\nbackend = "process"\n'
        '[sandbox.process]\ncpu_time_limit = 5\nmemory_limit = 67108864\n'
        'security_level = "permissive"\nallowed_commands = ["ls"]\nenv = { A = "1" }\n'
    )
    config = load_config(files=[path], environ={}).section("sandbox").options_for()
    assert isinstance(config, SandboxConfig)
    assert config.cpu_time_limit == 5.0
    assert config.memory_limit == 64 * 1024 * 1024
    assert config.security_level is SandboxSecurityLevel.PERMISSIVE
    assert config.allowed_commands == ("ls",)
    assert dict(config.env) == {"A": "1"}


def test_bad_toml_values_name_the_path_and_file(tmp_path: Path) -> None:
    path = tmp_path / "neuroflow.toml"
    path.write_text('[sandbox.process]\ncpu_time_limit = "lots"\nmemroy_limit = 5\n')
    with pytest.raises(ConfigError) as info:
        load_config(files=[path], environ={})
    text = str(info.value)
    assert "sandbox.process.cpu_time_limit" in text
    assert "neuroflow.toml" in text
    assert "sandbox.process.memroy_limit: unknown key; did you mean 'memory_limit'?" in text


def test_environment_variable_sets_a_limit() -> None:
    cfg = load_config(files=[], environ={"NEUROFLOW_SANDBOX__PROCESS__MAX_PROCESSES": "12"})
    assert cfg.section("sandbox").options_for().max_processes == 12


@pytest.mark.parametrize(
    ("text", "expected"),
    [("65536", 65536), ("64K", 65536), ("64k", 65536), ("256M", 256 * 1024**2),
     ("1G", 1024**3), ("1GiB", 1024**3), ("1.5M", int(1.5 * 1024**2))],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1M", "0"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)


@pytest.mark.parametrize("where", ["file", "env", "python"])
def test_size_strings_are_accepted_wherever_sizes_are_set(where: str) -> None:
    from pathlib import Path

    from neuroflow.sandbox import SandboxConfig

    if where == "python":
        config = SandboxConfig(memory_limit="256M", max_output_bytes="4K")
    else:
        if where == "file":
            Path("neuroflow.toml").write_text(
                '[sandbox.process]\nmemory_limit = "256M"\nmax_output_bytes = "4K"\n')
            environ: dict[str, str] = {}
        else:
            environ = {"NEUROFLOW_SANDBOX__PROCESS__MEMORY_LIMIT": "256M",
                       "NEUROFLOW_SANDBOX__PROCESS__MAX_OUTPUT_BYTES": "4K"}
        config = load_config(environ=environ).section("sandbox").options_for()
    assert (config.memory_limit, config.max_output_bytes) == (256 * 1024**2, 4096)


def test_a_bad_size_string_names_the_path_and_the_file() -> None:
    from pathlib import Path

    Path("neuroflow.toml").write_text('[sandbox.process]\nmemory_limit = "lots"\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    assert info.value.problems == [
        "sandbox.process.memory_limit: expected a size like 65536, 64K, 256M or 1G, "
        "got 'lots' (in neuroflow.toml)"]
