"""The security-level table (``level_settings``) is what the process backend really does."""

from __future__ import annotations

import pytest

from neuroflow.errors import UnsupportedLimitError
from neuroflow.sandbox import SandboxConfig, SandboxIsolator, SandboxSecurityLevel
from neuroflow.security.levels import level_settings


@pytest.mark.parametrize("level", list(SandboxSecurityLevel))
def test_each_level_sets_the_process_backend_as_the_table_says(
    level: SandboxSecurityLevel,
) -> None:
    table = level_settings(level)["process"]
    config = SandboxConfig(security_level=level, allow_weaker_isolation=False)
    assert config.weaker_allowed is table["allow_weaker_isolation"]
    if table["enable_network"]:
        sandbox = SandboxIsolator(config, gate=False)
        assert sandbox._strict is table["exact_rlimits"]
    else:
        # The process backend cannot cut the network: it refuses instead of pretending.
        with pytest.raises(UnsupportedLimitError, match="network off"):
            SandboxIsolator(config, gate=False)
        weaker = SandboxConfig(security_level=level, allow_weaker_isolation=True)
        assert SandboxIsolator(weaker, gate=False)._strict is table["exact_rlimits"]


def test_every_level_describes_every_backend_and_the_guards() -> None:
    for level in SandboxSecurityLevel:
        assert set(level_settings(level)) == {"guards", "process", "namespace", "wasm"}
    assert level_settings("strict")["guards"]["unmatched_action"] == "deny"
