"""``neuroflow cluster status|down`` and ``neuroflow doctor`` against the session cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from remote_session import STATE_DIR

from neuroflow.cli import build_cli


def test_cluster_status_reports_auth_and_nodes(ray_cluster: Any) -> None:
    result = CliRunner().invoke(build_cli(), ["cluster", "status", "--state-dir", str(STATE_DIR)],
                                prog_name="neuroflow")
    assert result.exit_code == 0, result.output
    assert "token authentication: on" in result.output
    assert "head node answers our token: ok" in result.output
    assert result.output.count(": ALIVE") >= 2


def test_cluster_commands_without_a_cluster_say_so(tmp_path: Path) -> None:
    for command in ("status", "down"):
        result = CliRunner().invoke(build_cli(), ["cluster", command, "--state-dir", str(tmp_path)],
                                    prog_name="neuroflow")
        assert result.exit_code != 0
        assert "no local cluster is up" in result.output


def test_doctor_reports_the_cluster_nodes_and_their_backends(
        ray_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroflow.config import reload_config
    from neuroflow_sandbox_remote.doctor import checks

    monkeypatch.setenv("NEUROFLOW_SANDBOX__BACKEND", "remote")
    monkeypatch.setenv("NEUROFLOW_SANDBOX__REMOTE__ADDRESS", f'"{ray_cluster.address}"')
    monkeypatch.setenv("NEUROFLOW_SANDBOX__REMOTE__AUTH_TOKEN_FILE",
                       f'"{ray_cluster.token_file}"')
    reload_config()
    found = {check.name: check for check in checks()}
    assert found["sandbox: Ray for the remote backend"].ok
    cluster = found[f"sandbox: Ray cluster at {ray_cluster.address}"]
    assert cluster.ok and "token authentication enforced" in cluster.detail
    nodes = [c for name, c in found.items() if name.startswith("sandbox: node ")]
    assert len(nodes) >= 2
    assert all(c.ok and "process" in c.detail for c in nodes)


def test_doctor_fails_a_cluster_without_token_auth(
        fake_gcs: tuple[str, list[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroflow.config import reload_config
    from neuroflow_sandbox_remote.doctor import checks

    address, _ = fake_gcs
    monkeypatch.setenv("NEUROFLOW_SANDBOX__BACKEND", "remote")
    monkeypatch.setenv("NEUROFLOW_SANDBOX__REMOTE__ADDRESS", f'"{address}"')
    reload_config()
    found = {check.name: check for check in checks()}
    cluster = found[f"sandbox: Ray cluster at {address}"]
    assert not cluster.ok and cluster.required
    assert "without token authentication" in cluster.detail
