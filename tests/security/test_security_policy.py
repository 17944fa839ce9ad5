"""Configuration that weakens security: every layer that does it is noticed and audited, and
a locked policy cannot be weakened by later layers -- not by a variable, not by
``NEUROFLOW_CONFIG=/dev/null``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from neuroflow.config import get_config, reload_config
from neuroflow.security import policy
from neuroflow.security.manager import SecurityManager

PROJECT = """
[security]
level = "standard"
guards = ["allowlist", "paths", "network", "tools"]

[security.allowlist]
deny = ["rm", "curl"]
"""

ATTACKS = {
    "audit off": ("NEUROFLOW_SECURITY__AUDIT__ENABLED", "false", "security.audit.enabled"),
    "no guards": ("NEUROFLOW_SECURITY__GUARDS", "[]", "security.guards"),
    "deny list emptied": ("NEUROFLOW_SECURITY__ALLOWLIST__DENY", "[]", "security.allowlist.deny"),
    "lower level": ("NEUROFLOW_SECURITY__LEVEL", '"permissive"', "security.level"),
    "plugin checks off": ("NEUROFLOW_SECURITY__PLUGIN_CHECKS", "false",
                          "security.plugin_checks"),
}


@pytest.fixture
def no_system_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "etc" / "policy.toml"
    monkeypatch.setattr(policy, "SYSTEM_POLICY", path)
    return path


@pytest.mark.usefixtures("no_system_policy")
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_variable_that_weakens_security_is_noticed_logged_and_audited(
        attack: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    variable, value, key = ATTACKS[attack]
    Path("neuroflow.toml").write_text(PROJECT)
    monkeypatch.setenv(variable, value)
    with caplog.at_level(logging.WARNING, logger="neuroflow.security"):
        notices = get_config().notices
    assert [n.split(":")[0] for n in notices] == [key]
    assert notices[0].endswith(f"(by env {variable})")
    assert any(key in record.getMessage() for record in caplog.records)
    if attack != "audit off":
        SecurityManager.from_config()
        records = [json.loads(line) for line in
                   Path(".neuroflow/audit.log").read_text().splitlines()]
        assert [(r["event"], r["resource"]) for r in records] == [("config_weakened", key)]


@pytest.mark.usefixtures("no_system_policy")
def test_a_configuration_that_keeps_or_raises_security_has_no_notice(monkeypatch) -> None:
    Path("neuroflow.toml").write_text(PROJECT)
    monkeypatch.setenv("NEUROFLOW_SECURITY__LEVEL", '"strict"')
    monkeypatch.setenv("NEUROFLOW_SECURITY__ALLOWLIST__DENY", '["rm", "curl", "wget"]')
    assert get_config().notices == ()


@pytest.mark.usefixtures("no_system_policy")
def test_a_locked_section_ignores_every_later_layer(monkeypatch) -> None:
    Path("neuroflow.toml").write_text(PROJECT.replace('level = "standard"',
                                                      'level = "standard"\nlock = true'))
    for variable, value, _key in ATTACKS.values():
        monkeypatch.setenv(variable, value)
    cfg = get_config()
    security = cfg.section("security")
    assert security.settings.audit.enabled is True
    assert security.selected == ("allowlist", "paths", "network", "tools")
    assert security.options_for("allowlist").deny == ("rm", "curl")
    assert str(security.settings.level.value) == "standard"
    assert len(cfg.notices) == len(ATTACKS)
    assert all("is locked by neuroflow.toml" in n for n in cfg.notices)


def test_the_system_policy_holds_against_neuroflow_config_dev_null(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_system_policy: Path) -> None:
    no_system_policy.parent.mkdir()
    no_system_policy.write_text('[security]\nlock = true\nlevel = "strict"\n'
                                '[security.allowlist]\ndeny = ["rm"]\n')
    os.chmod(no_system_policy, 0o644)
    os.chmod(no_system_policy.parent, 0o755)
    if os.geteuid() != 0:
        pytest.skip("the system policy must be owned by root; this test runs as a plain user")
    Path("neuroflow.toml").write_text(PROJECT)
    monkeypatch.setenv("NEUROFLOW_CONFIG", "/dev/null")
    monkeypatch.setenv("NEUROFLOW_SECURITY__LEVEL", '"permissive"')
    reload_config()
    cfg = get_config()
    security = cfg.section("security")
    assert str(security.settings.level.value) == "strict"
    assert security.options_for("allowlist").deny == ("rm",)
    assert any("sets [security] but is not read" in n for n in cfg.notices)
    assert any("is locked by" in n and "security.level" in n for n in cfg.notices)


def test_a_policy_file_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[security]\nlock = true\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(path, 0o666)
    assert not policy.trusted_policy_file(path)
    os.chmod(path, 0o644)
    assert policy.trusted_policy_file(path) is (os.geteuid() == 0)


@pytest.mark.usefixtures("no_system_policy")
def test_keyword_arguments_are_the_program_s_choice_but_a_lock_still_holds() -> None:
    from neuroflow.config import load_config

    settings = {"security": {"guards": ["tools"], "audit": {"enabled": False}}}
    assert load_config(environ={}, **settings).notices == ()
    Path("neuroflow.toml").write_text("[security]\nlock = true\n")
    locked = load_config(environ={}, **settings)
    assert locked.section("security").selected == ("allowlist", "paths", "network", "tools")
    assert [n.split(":")[0] for n in locked.notices] == ["security.audit", "security.guards"]


@pytest.mark.usefixtures("no_system_policy")
def test_a_project_file_chooses_its_guards_but_a_second_file_lowering_it_is_noticed() -> None:
    Path("neuroflow.toml").write_text("[security]\nguards = ['allowlist']\n")
    assert get_config().notices == ()
    Path("pyproject.toml").write_text("[tool.neuroflow.security]\nlevel = 'strict'\n")
    Path("neuroflow.toml").write_text("[security]\nlevel = 'permissive'\n")
    reload_config()
    assert [n.split(":")[0] for n in get_config().notices] == ["security.level"]
