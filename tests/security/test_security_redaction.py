"""Secrets inside strings and argv lists are written as keyed digests (not in clear)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from security_helpers import KEY

from neuroflow.security.audit import AuditLogger, Redactor


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(KEY)


CURL = ("curl -H 'Authorization: Bearer abc123secret' --password hunter2 "
        "https://u:pw@host/")


@pytest.mark.anyio
async def test_the_reviewed_curl_command_hides_every_secret(log_path: Path) -> None:
    logger = AuditLogger(log_path, key=KEY)
    await logger.log_event("command_execution", "agent-1", {"command": CURL}, "success")
    text = log_path.read_text()
    for secret in ("abc123secret", "hunter2", "u:pw@", ":pw@"):
        assert secret not in text
    record = _records(log_path)[0]
    command = record["details"]["command"]
    assert command.startswith("curl -H 'Authorization: Bearer hmac-sha256:")
    assert "--password hmac-sha256:" in command
    assert "https://u:hmac-sha256:" in command and command.endswith("@host/")
    assert record["resource"] == command  # the resource taken from details is cleaned too


@pytest.mark.parametrize(("text", "secret", "kept"), [
    ("Authorization: Bearer abc123secret", "abc123secret", "Authorization: Bearer hmac-"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA", "authorization=Basic "),
    ("-H 'Bearer abc123secret'", "abc123secret", "-H 'Bearer hmac-"),
    ("tool --password hunter2 --verbose", "hunter2", " --verbose"),
    ("tool --db-password 'two words' x", "two words", " x"),
    ("tool --api-key=K123 x", "K123", "--api-key=hmac-"),
    ("postgres://app:s3cr3t@db:5432/main", "s3cr3t", "postgres://app:hmac-"),
    ("mysql -u root -phunter2 main", "hunter2", "mysql -u root -phmac-"),
    ("sshpass -p hunter2 ssh host", "hunter2", "sshpass -p hmac-"),
    ("redis-cli -a hunter2 ping", "hunter2", " ping"),
    ("export TOKEN=abc123; make", "abc123", "; make"),
])
def test_secrets_inside_strings(redactor: Redactor, text: str, secret: str, kept: str) -> None:
    cleaned = redactor.clean(text)
    assert secret not in cleaned and kept in cleaned


@pytest.mark.parametrize(("argv", "hidden"), [
    (["mysql", "-u", "root", "-phunter2", "main"], 3),
    (["/usr/bin/mysqldump", "-phunter2"], 1),
    (["sshpass", "-p", "hunter2", "ssh", "host"], 2),
    (["redis-cli", "-a", "hunter2"], 2),
    (["tool", "--password", "hunter2"], 2),
])
def test_secrets_in_argv_lists(redactor: Redactor, argv: list[str], hidden: int) -> None:
    cleaned = redactor.clean(argv)
    assert "hunter2" not in json.dumps(cleaned)
    assert "hmac-sha256:" in cleaned[hidden]
    assert cleaned[0] == argv[0]


def test_a_string_inside_an_argv_list_is_cleaned(redactor: Redactor) -> None:
    cleaned = redactor.clean(["sh", "-c", "mysql -phunter2 main && curl https://u:pw@h/"])
    assert "hunter2" not in cleaned[2] and ":pw@" not in cleaned[2]


@pytest.mark.parametrize("text", [
    "psql -p 5432 -h db main",           # -p is a port here, not a password
    "ls -la /tmp", "python3 script.py", "https://example.com/a:b@c",
    "mysql -p main",                      # mysql prompts; `main` is the database
    "Basic usage is described below",     # not a token: too short a word after Basic
    "git commit -m 'fix: the bug'",
])
def test_strings_without_secrets_are_left_alone(redactor: Redactor, text: str) -> None:
    assert redactor.clean(text) == text


def test_equal_secrets_digest_equally_in_every_form(redactor: Redactor) -> None:
    a = redactor.clean("tool --password hunter2")
    b = redactor.clean(["tool", "--password", "hunter2"])
    c = redactor.clean("mysql -phunter2")
    digest = redactor.digest("hunter2")
    assert a.endswith(digest) and b[2] == digest and c.endswith(digest)


def test_cleaning_is_idempotent(redactor: Redactor) -> None:
    once = redactor.clean(CURL)
    assert redactor.clean(once) == once


@pytest.mark.parametrize("text", [
    "a" * 50_000 + "_token=x",             # one long word before a separator
    "http://u:" + "a" * 50_000 + "@host",
    "-a " * 20_000 + "--password x",
    "Bearer " + "A" * 50_000,
])
def test_long_strings_are_cleaned_in_linear_time(redactor: Redactor, text: str) -> None:
    # a quadratic scan of these would take minutes; the pytest run would hang, not fail
    cleaned = redactor.clean(text)
    assert cleaned[:5] == text[:5] and "hmac-sha256:" in cleaned
