"""Hostile inputs for redaction: pathological arguments must be cleaned in linear time.

Each input runs in a child process with a generous time limit, so a quadratic (or
worse) scan fails the test instead of hanging the run; no test here asserts a speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from security_helpers import KEY

import neuroflow
from neuroflow.security.audit import AuditLogger, Redactor

N = 1_000_000

# name -> an expression building the hostile text (evaluated in the child, N in scope)
HOSTILE = {
    "semicolons after a value": "'password=a' + ';' * N + 'b'",
    "parens after a glued value": "'mysql -pa' + ')' * N + 'b'",
    "many mysql words": "'mysql -phunter2 ' * (N // 16)",
    "dotted scheme run": "'a.' * (N // 2) + '://u:p'",
    "slash segments": "'a/' * (N // 2) + 'mysql -px'",
    "dashes": "'-' * N + ' token=x'",
    "one long flag word": "'--' + 'ab' * (N // 2) + ' x token'",
    "long word before equals": "'ab' * (N // 2) + '= token'",
    "userinfo starts": "'a://b:' * (N // 6) + '@'",
    "dense flags": "'- ' * (N // 2) + 'token'",
}

CHILD = """
import json, sys
from neuroflow.security.audit import Redactor
N = {n}
text = {expr}
r = Redactor({key!r})
out = r.clean(text)
argv = r.clean(text.split(' ')[:50000])
print(json.dumps([len(out), out[:40], 'hmac-sha256:' in out]))
"""


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_text_is_cleaned_in_linear_time(name: str) -> None:
    code = CHILD.format(n=N, expr=HOSTILE[name], key=KEY)
    # Linear cleaning takes well under a second here; a quadratic one takes hours.
    # the child imports the very neuroflow this test imported
    src = str(Path(neuroflow.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False, env=env)
    assert done.returncode == 0, done.stderr
    length, _start, _digest = json.loads(done.stdout)
    assert length > 0


def test_the_secret_in_a_hostile_text_is_still_hidden() -> None:
    r = Redactor(KEY)
    text = "password=hunter2" + ";" * 200_000 + " x"
    out = r.clean(text)
    assert "hunter2" not in out
    assert out.startswith("password=" + r.digest("hunter2") + ";;;")
    assert out.endswith("; x")
    glued = r.clean("mysql -phunter2" + ")" * 50_000 + " main")
    assert "hunter2" not in glued and glued.endswith(") main")


def test_many_secrets_in_one_text_are_all_hidden() -> None:
    r = Redactor(KEY)
    text = " ".join(f"token=s{i:06d}x" for i in range(20_000))
    out = r.clean(text)
    assert "s000123x" not in out and "s019999x" not in out


@pytest.mark.anyio
async def test_a_large_record_is_written_and_cleaned(tmp_path) -> None:
    logger = AuditLogger(tmp_path / "audit.log", key=KEY)
    big = "password=hunter2" + ";" * N + " " + "x" * 1000
    seq = await logger.log_event("tool_call", "agent", {"arguments": big}, "success")
    assert seq == 1
    text = (tmp_path / "audit.log").read_text()
    assert "hunter2" not in text and len(text) > N


@pytest.mark.anyio
async def test_a_large_record_is_cleaned_off_the_event_loop(tmp_path) -> None:
    import anyio

    logger = AuditLogger(tmp_path / "audit.log", key=KEY)
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await anyio.sleep(0)

    big = {"arguments": "token=x " + "- " * 200_000}
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0)
        before = ticks
        await logger.log_event("tool_call", "agent", big, "success")
        during = ticks - before
        done = True
    assert during > 0  # the loop ran other tasks while the record was cleaned
    small_before = ticks
    await logger.log_event("tool_call", "agent", {"arguments": "x"}, "success")
    assert ticks == small_before  # a small record is written inline, as before


def test_characters_that_lower_case_to_two_do_not_shift_the_secret() -> None:
    r = Redactor(KEY)
    text = "İ" * 40 + " password=hunter2 rest"
    out = r.clean(text)
    assert "hunter2" not in out and out.startswith("İ" * 40 + " password=hmac-sha256:")
    assert out.endswith(" rest")
