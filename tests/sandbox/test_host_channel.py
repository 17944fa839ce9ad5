"""The host-tools channel of process-based sandboxes, against a real Python child.

The child imports the guest ``host`` module from its folder and talks over an inherited
socket; the host side serves it with :func:`neuroflow.sandbox.host_channel.serve`.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from neuroflow.sandbox import HostTool, HostToolError, HostTools
from neuroflow.sandbox.guest import FOLDER
from neuroflow.sandbox.host_channel import serve

pytestmark = pytest.mark.anyio

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "description": "a number"},
                                           "tag": {"type": ["string", "null"], "default": None}},
          "required": ["n"]}


async def _run(code: str, call: Any, **bounds: Any) -> tuple[str, list[Any]]:
    tools = HostTools(tools=(HostTool("double", "Double a number.", SCHEMA, 5.0),
                             HostTool("deny_me", "Always refused.", {"type": "object"}, 5.0)),
                      call=call, **bounds)
    host_end, guest_end = socket.socketpair()
    fd = guest_end.fileno()
    env = {**os.environ, "NEUROFLOW_HOST_FDS": f"{fd},{fd}", "PYTHONPATH": str(FOLDER)}
    async with await anyio.open_process([sys.executable, "-c", code], env=env,
                                        pass_fds=(fd,)) as process:
        guest_end.close()
        stream = await anyio.abc.UNIXSocketStream.from_socket(host_end)
        async with stream:
            records = await serve(stream, stream, tools)
        assert process.stdout is not None
        out = b"".join([chunk async for chunk in process.stdout])
        await process.wait()
    return out.decode(), records


async def _double(name: str, arguments: dict[str, Any]) -> Any:
    if name == "deny_me":
        raise HostToolError("denied", "denied by a rule")
    return arguments["n"] * 2


async def test_calls_results_and_refusals_cross_the_channel() -> None:
    code = (
        "from host import tools, ToolError\n"
        "import inspect\n"
        "print(tools.double(n=21))\n"
        "print(inspect.signature(tools.double))\n"
        "print(tools.double.__doc__)\n"
        "try:\n"
        "    tools.deny_me()\n"
        "except ToolError as exc:\n"
        "    print(exc.kind, exc)\n"
        "try:\n"
        "    tools.double(n='x' * 500)\n"
        "except ToolError as exc:\n"
        "    print(exc.kind)\n"
    )
    out, records = await _run(code, _double, max_request_bytes=200)
    lines = out.splitlines()
    assert lines[0] == "42"
    assert lines[1] == "(*, n: 'int', tag: 'str | None' = None)"
    assert lines[2] == "Double a number."
    assert lines[3] == "denied denied by a rule"
    assert lines[4] == "too_large"
    assert [(r.tool, r.outcome) for r in records] == [
        ("double", "ok"), ("deny_me", "denied"), ("double", "too_large")]


async def test_the_call_budget_holds_whatever_the_guest_does() -> None:
    code = (
        "from host import tools, ToolError\n"
        "n = 0\n"
        "for i in range(10):\n"
        "    try:\n"
        "        tools.double(n=i); n += 1\n"
        "    except ToolError as exc:\n"
        "        print(exc.kind)\n"
        "        break\n"
        "print(n)\n"
    )
    out, records = await _run(code, _double, max_calls=3)
    assert out.split() == ["budget_exceeded", "3"]
    assert [r.outcome for r in records] == ["ok", "ok", "ok", "budget_exceeded"]


async def test_a_hostile_guest_gets_no_further_than_its_frames() -> None:
    # raw frames: garbage JSON, a wrong op, an unknown tool, then a huge length
    code = (
        "import os, struct, json\n"
        "fd = int(os.environ['NEUROFLOW_HOST_FDS'].split(',')[0])\n"
        "def ask(body):\n"
        "    os.write(fd, struct.pack('>I', len(body)) + body)\n"
        "    size = struct.unpack('>I', os.read(fd, 4))[0]\n"
        "    return json.loads(os.read(fd, size))\n"
        "print(ask(b'{nope')['kind'])\n"
        "print(ask(b'{\"op\": \"exec\"}')['kind'])\n"
        "bad = {'op': 'call', 'tool': 'os.system', 'arguments': {}}\n"
        "print(ask(json.dumps(bad).encode())['kind'])\n"
        "os.write(fd, struct.pack('>I', 2**31))\n"
        "size = struct.unpack('>I', os.read(fd, 4))[0]\n"
        "print(json.loads(os.read(fd, size))['kind'])\n"
    )
    calls: list[str] = []

    async def record(name: str, arguments: dict[str, Any]) -> Any:
        calls.append(name)
        return None

    out, records = await _run(code, record)
    assert out.split() == ["protocol", "protocol", "unknown_tool", "too_large"]
    assert calls == []
    assert [r.outcome for r in records] == ["protocol", "protocol", "unknown_tool",
                                            "too_large"]


def test_frames_are_a_big_endian_length_and_json() -> None:
    from neuroflow.sandbox.host_channel import encode

    assert encode({"ok": True}) == struct.pack(">I", 11) + b'{"ok":true}'


async def test_a_silent_or_wrong_connection_does_not_hold_up_the_program(tmp_path: Path) -> None:
    from neuroflow.sandbox.code_runner import _accept

    path = tmp_path / "s"
    tools = HostTools(tools=(HostTool("double", "Double a number.", SCHEMA, 5.0),),
                      call=_double)
    records: list[Any] = []

    async def frame(stream: Any, body: bytes) -> None:
        await stream.send(struct.pack(">I", len(body)) + body)

    async with await anyio.create_unix_listener(path) as listener, \
            anyio.create_task_group() as group:
        group.start_soon(_accept, listener, b"right-token", path, tools, records)
        silent = await anyio.connect_unix(path)  # connects first and never speaks
        wrong = await anyio.connect_unix(path)
        await frame(wrong, b"wrong-token")
        with anyio.fail_after(5):  # well under the 30 s a silent connection may take
            good = await anyio.connect_unix(path)
            await frame(good, b"right-token")
            await frame(good, b'{"op":"call","tool":"double","arguments":{"n":4}}')
            size = struct.unpack(">I", await good.receive(4))[0]
            answer = await good.receive(size)
        assert answer == b'{"ok":true,"result":8}'
        assert not path.exists()  # removed once the program connected
        group.cancel_scope.cancel()
    for stream in (silent, wrong, good):
        await stream.aclose()
    assert [(r.tool, r.outcome) for r in records] == [("double", "ok")]
