"""Configuration is read only from the project and files this user owns; secrets stay hidden."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli
from neuroflow.config import find_config_files, load_config


def test_the_search_stops_at_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / "neuroflow.toml").write_text("[security]\nguards = []\n")  # above the project
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "src").mkdir()
    assert find_config_files(project / "src") == []
    (project / "neuroflow.toml").write_text("")
    assert find_config_files(project / "src") == [project / "neuroflow.toml"]


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_file_owned_by_another_user_is_ignored_with_a_warning(tmp_path: Path) -> None:
    planted = tmp_path / "neuroflow.toml"
    planted.write_text("[security]\nguards = []\n")
    os.chown(planted, 65534, 65534)
    with pytest.warns(UserWarning, match="belongs to another user"):
        assert find_config_files(tmp_path) == []


def test_config_show_hides_secrets_in_free_form_tables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path("neuroflow.toml").write_text(
        "[sandbox.process.env]\nGITHUB_TOKEN = 'ghp_secret'\nLANG = 'C'\n"
        "[llm.openai]\nmodel = 'm'\napi_key = 'sk-secret'\n"
        "[llm.openai.headers]\nAuthorization = 'Bearer hdrsecret'\n"
    )
    shown = json.dumps(load_config().as_dict())
    for secret in ("ghp_secret", "sk-secret", "hdrsecret"):
        assert secret not in shown
    assert '"LANG": "C"' in shown
    result = CliRunner().invoke(build_cli(), ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "sandbox.process.env.GITHUB_TOKEN = \"<hidden>\"" in result.output
    assert "ghp_secret" not in result.output
