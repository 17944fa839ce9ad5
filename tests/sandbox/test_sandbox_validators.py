"""The public validators sandbox config classes share (``neuroflow.sandbox.validators``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from neuroflow.errors import ConfigError
from neuroflow.sandbox import SandboxConfig, SandboxSecurityLevel, validators


@attrs.frozen(kw_only=True)
class _Sample:
    seconds: float | None = attrs.field(default=None,
                                        validator=validators.number("a number of seconds"))
    count: int = attrs.field(default=1, validator=validators.number(
        "an integer count", optional=False))
    stack: int | None = attrs.field(default=None, validator=validators.number(
        "an integer number of bytes", minimum=4095))
    flag: bool = attrs.field(default=False, validator=validators.check_bool)
    folder: str | None = attrs.field(default=None, converter=validators.path_str,
                                     validator=validators.check_optional_dir)
    names: tuple[str, ...] | None = attrs.field(
        default=None, converter=validators.str_tuple("names", optional=True),
        validator=validators.check_strings)
    env: dict[str, str] = attrs.field(factory=dict, converter=validators.env_table,
                                      validator=validators.check_env)
    security_level: SandboxSecurityLevel = attrs.field(
        default=SandboxSecurityLevel.STANDARD, converter=validators.security_level)


@pytest.mark.parametrize(("fields", "message"), [
    ({"seconds": "lots"}, "seconds: expected a number of seconds or None, got 'lots'"),
    ({"seconds": True}, "seconds: expected a number of seconds or None, got True"),
    ({"seconds": 0}, "seconds: expected a number of seconds greater than 0, got 0"),
    ({"count": None}, "count: expected an integer count, got None"),
    ({"count": 1.5}, "count: expected an integer count, got 1.5"),
    ({"stack": 4095}, "stack: expected an integer number of bytes greater than 4095, got 4095"),
    ({"flag": 1}, "flag: expected true or false, got 1"),
    ({"folder": ""}, "folder: expected a directory path or None, got ''"),
    ({"names": "abc"}, "names: expected a list of strings, got 'abc'"),
    ({"names": ["ok", ""]}, "names: expected non-empty strings, got ''"),
    ({"env": ["A=1"]}, "env: expected a table of NAME = value strings, got ['A=1']"),
    ({"env": {"A=B": "1"}}, "env: invalid variable name 'A=B'"),
    ({"env": {"A": 1}}, "env.A: expected a string value, got 1"),
    ({"security_level": "paranoid"},
     "security_level: expected one of permissive, standard, strict, got 'paranoid'"),
])
def test_each_helper_names_its_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _Sample(**fields)
    assert str(caught.value) == message


def test_good_values_pass_and_are_converted(tmp_path: Path) -> None:
    sample = _Sample(seconds=0.5, count=3, stack=4096, flag=True, folder=tmp_path,
                     names=["a", "b"], env={"A": "1"}, security_level="strict")
    assert sample.folder == str(tmp_path)
    assert sample.names == ("a", "b")
    assert sample.security_level is SandboxSecurityLevel.STRICT


def test_sandbox_config_uses_the_shared_helpers() -> None:
    fields = attrs.fields_dict(SandboxConfig)
    assert fields["env"].converter is validators.env_table
    assert fields["env"].validator is validators.check_env
    assert fields["security_level"].converter is validators.security_level
    assert fields["enable_network"].validator is validators.check_bool
    assert fields["work_dir"].validator is validators.check_optional_dir
