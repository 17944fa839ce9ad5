"""Deny overrides allow between two configured built-in guards that disagree.

One guard allows the action (``allowlist`` allows the command, ``tools`` allows the tool),
another denies it (``paths`` denies a file the command reads, ``network`` denies the host
the tool connects to).  Whatever the order of ``[security] guards``, the deny wins, the
caller gets a ``SecurityError`` naming the denying rule, and the one audit record of the
decision says deny, by that rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from security_helpers import KEY

from neuroflow.config import load_config, reload_config
from neuroflow.errors import SecurityError
from neuroflow.security import SecurityManager, verify_audit_log
from neuroflow.security.model import Action

ORDERS = [("allowlist", "paths", "network", "tools"), ("tools", "network", "paths", "allowlist")]


def security_section(log: Path, guards: tuple[str, ...]) -> dict[str, Any]:
    """``[security]``: allowlist and tools allow, paths and network deny, audited to ``log``."""
    return {
        "level": "strict",  # nothing is allowed unless a guard allows it
        "guards": list(guards),
        "plugin_checks": False,  # only the built-in guards decide
        "audit": {"file": str(log), "key": KEY.decode()},
        "allowlist": {"allow": ["python3"]},
        "paths": {"deny": ["*.pem", "**/.ssh/**"]},
        "network": {"deny_hosts": ["169.254.169.254"]},
        "tools": {"rules": [{"name": "fetchers", "effect": "allow", "agent": "researcher",
                             "tool": "fetch"}]},
    }


def toml(section: dict[str, Any]) -> str:
    """``section`` as the ``[security]`` tables of a neuroflow.toml."""
    rule = section["tools"]["rules"][0]
    return "\n".join([
        "[security]",
        f'level = "{section["level"]}"',
        f"guards = {json.dumps(section['guards'])}",
        "plugin_checks = false",
        "[security.audit]",
        f'file = "{section["audit"]["file"]}"',
        f'key = "{section["audit"]["key"]}"',
        "[security.allowlist]",
        f"allow = {json.dumps(section['allowlist']['allow'])}",
        "[security.paths]",
        f"deny = {json.dumps(section['paths']['deny'])}",
        "[security.network]",
        f"deny_hosts = {json.dumps(section['network']['deny_hosts'])}",
        "[[security.tools.rules]]",
        *(f"{key} = {json.dumps(value)}" for key, value in rule.items()),
        "",
    ])


def decisions(log: Path) -> list[tuple[str, str, str]]:
    """The audit log's guard decisions as ``(target, decision, rule)``."""
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [(r["resource"], r["decision"], r["rule"]) for r in rows
            if r["event"] == "guard_decision"]


def gate_from_file(tmp_path: Path, guards: tuple[str, ...],
                   log_name: str = "audit.log") -> tuple[SecurityManager, Path]:
    """A gate built from a neuroflow.toml in the working directory."""
    log = tmp_path / log_name
    (Path.cwd() / "neuroflow.toml").write_text(toml(security_section(log, guards)))
    reload_config()  # the process reads its configuration once; this test writes it twice
    return SecurityManager.from_config(), log


def gate_from_keywords(tmp_path: Path, guards: tuple[str, ...]) -> tuple[SecurityManager, Path]:
    """A gate built from ``load_config(security={...})``."""
    log = tmp_path / "audit.log"
    cfg = load_config(files=[], security=security_section(log, guards))
    return SecurityManager.from_config(cfg), log


BUILDERS = {"file": gate_from_file, "keywords": gate_from_keywords}

READ_KEY = Action("command", "python3", actor="researcher", arguments=["show.py"],
                  resources={"read_paths": ["/srv/keys/server.pem"]})
READ_DATA = Action("command", "python3", actor="researcher", arguments=["show.py"],
                   resources={"read_paths": ["/srv/data/notes.txt"]})
FETCH_METADATA = Action("tool", "fetch", actor="researcher",
                        resources={"hosts": ["169.254.169.254"]})
FETCH_WIKI = Action("tool", "fetch", actor="researcher", resources={"hosts": ["en.wikipedia.org"]})


@pytest.mark.anyio
@pytest.mark.parametrize("source", sorted(BUILDERS))
@pytest.mark.parametrize("guards", ORDERS, ids=["allow-first", "deny-first"])
async def test_a_deny_from_one_builtin_guard_beats_an_allow_from_another(
    tmp_path: Path, source: str, guards: tuple[str, ...]
) -> None:
    gate, log = BUILDERS[source](tmp_path, guards)

    # allowlist allows the command, paths denies the file it reads
    with pytest.raises(SecurityError, match=r"denied by rule 'paths\.deny'") as info:
        await gate.authorize(READ_KEY)
    assert info.value.verdict.rule == "paths.deny"  # type: ignore[attr-defined]

    # the same pair for a tool: tools allows it, network denies the host it connects to
    with pytest.raises(SecurityError, match=r"denied by rule 'network\.deny'"):
        await gate.authorize(FETCH_METADATA)

    # where the denying guard has no objection, the allow stands (level strict: it had to)
    assert (await gate.authorize(READ_DATA)).rule == "allowlist.allow"
    assert (await gate.authorize(FETCH_WIKI)).rule == "tools.fetchers"

    assert decisions(log) == [
        ("python3", "deny", "paths.deny"),
        ("fetch", "deny", "network.deny"),
        ("python3", "allow", "allowlist.allow"),
        ("fetch", "allow", "tools.fetchers"),
    ]
    assert verify_audit_log(log, KEY).ok


@pytest.mark.anyio
async def test_each_guard_alone_says_what_it_says_in_the_pair(tmp_path: Path) -> None:
    """Alone, the allowing guards allow these very actions and the denying ones deny them:
    in the pair, the deny is one guard overriding the other."""
    gate, log = gate_from_file(tmp_path, ("allowlist", "tools"))
    assert (await gate.authorize(READ_KEY)).rule == "allowlist.allow"
    assert (await gate.authorize(FETCH_METADATA)).rule == "tools.fetchers"
    assert decisions(log) == [("python3", "allow", "allowlist.allow"),
                              ("fetch", "allow", "tools.fetchers")]
    gate, log = gate_from_file(tmp_path, ("paths", "network"), "deniers.log")
    with pytest.raises(SecurityError, match=r"'paths\.deny'"):
        await gate.authorize(READ_KEY)
    with pytest.raises(SecurityError, match=r"'network\.deny'"):
        await gate.authorize(FETCH_METADATA)
    assert decisions(log) == [("python3", "deny", "paths.deny"),
                              ("fetch", "deny", "network.deny")]
