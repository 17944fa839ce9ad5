"""Attacks on the cluster's token: from inside a sandboxed command, and from an
unprivileged local user."""

from __future__ import annotations

import os
from typing import Any

import pytest

from neuroflow import create_backend

pytestmark = pytest.mark.anyio


async def test_a_sandboxed_command_cannot_read_the_token_or_see_it(
        ray_cluster: Any, remote_config: Any) -> None:
    token = ray_cluster.token_file.read_text().strip()
    async with create_backend("isolation", "remote", remote_config, gate=False) as sandbox:
        for _ in range(4):  # whichever node runs it
            read = await sandbox.execute("/bin/cat", [str(ray_cluster.token_file)])
            assert read.exit_code != 0
            assert token.encode() not in read.stdout + read.stderr
            env = await sandbox.execute("/usr/bin/env")
            assert env.ok
            assert b"RAY_AUTH" not in env.stdout
            assert token.encode() not in env.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_an_unprivileged_user_cannot_read_the_token(ray_cluster: Any) -> None:
    """The token file is the only key to the cluster (a network probe without it is
    refused: test_the_cluster_checks_tokens); a local user other than its owner cannot
    read it.  The child drops to ``nobody`` and only opens the file (no interpreter
    start: the project's Python lives under a 0700 /root)."""
    pid = os.fork()
    if pid == 0:  # the child: become nobody, try to read, report by exit status
        status = 3
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                with open(ray_cluster.token_file) as handle:
                    handle.read()
                status = 1
            except PermissionError:
                status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "nobody could read the cluster's token"
    assert ray_cluster.token_file.stat().st_mode & 0o777 == 0o600
