"""Bad arguments to ``execute`` are refused up front, by a ``SandboxError`` that names
the argument and says what was expected (never a raw error from deep in the stdlib)."""

from __future__ import annotations

from typing import Any

import pytest

from neuroflow.errors import SandboxError
from neuroflow.sandbox import SandboxConfig, SandboxIsolator

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("int-arg", {"args": [1]}, "args[0]: expected a string, got 1"),
    ("second-arg", {"args": ["ok", b"x"]}, "args[1]: expected a string, got b'x'"),
    ("nul-arg", {"args": ["a\0b"]}, "args[0]: expected a string without NUL bytes"),
    ("str-args", {"args": "abc"}, "args: expected a list of strings, got 'abc'"),
    ("int-args", {"args": 5}, "args: expected a list of strings, got 5"),
    ("nul-command", {"command": "ec\0ho"}, "command: expected a string without NUL bytes"),
    ("int-command", {"command": 3}, "command: expected a string, got 3"),
    ("empty-command", {"command": ""}, "command: expected a non-empty string"),
    ("env-value", {"env": {"A": 1}}, "env['A']: expected a string, got 1"),
    ("env-name", {"env": {1: "x"}}, "env: expected string names, got 1"),
    ("env-equals", {"env": {"A=B": "x"}}, "env: invalid variable name 'A=B'"),
    ("env-nul", {"env": {"A": "x\0"}}, "env['A']: expected a string without NUL bytes"),
    ("env-list", {"env": ["A=1"]}, "env: expected a mapping of names to strings"),
    ("timeout-str", {"timeout": "5"}, "timeout: expected a positive number of seconds"),
    ("timeout-negative", {"timeout": -1}, "timeout: expected a positive number of seconds"),
    ("timeout-zero", {"timeout": 0}, "timeout: expected a positive number of seconds"),
    ("timeout-nan", {"timeout": float("nan")}, "timeout: expected a positive number"),
    ("timeout-bool", {"timeout": True}, "timeout: expected a positive number of seconds"),
    ("stdin-str", {"stdin": "text"}, "stdin: expected bytes or None, got 'text'"),
    ("stdin-int", {"stdin": 5}, "stdin: expected bytes or None, got 5"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("call", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_arguments_are_named(call: dict[str, Any], expected: str) -> None:
    kwargs = dict(call)
    command = kwargs.pop("command", "/bin/echo")
    args = kwargs.pop("args", ())
    async with SandboxIsolator(SandboxConfig()) as isolator:
        with pytest.raises(SandboxError) as info:
            await isolator.execute(command, args, **kwargs)
    assert expected in str(info.value)


@pytest.mark.anyio
async def test_good_arguments_of_every_accepted_type_run() -> None:
    async with SandboxIsolator(SandboxConfig()) as isolator:
        result = await isolator.execute(
            "/bin/sh", ("-c", 'cat; echo " $A"'), stdin=bytearray(b"in"), env={"A": "a"},
            timeout=10,
        )
        viewed = await isolator.execute("/bin/cat", [], stdin=memoryview(b"mv"), timeout=2.5)
    assert result.stdout == b"in a\n"
    assert viewed.stdout == b"mv"
