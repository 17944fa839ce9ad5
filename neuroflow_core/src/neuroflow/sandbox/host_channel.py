"""The host side of host tools for process-based sandboxes: length-prefixed JSON frames.

A sandboxed Python program imports the ``host`` module (:mod:`neuroflow.sandbox.guest`,
put on its import path) and calls ``tools.NAME(...)``; each call is one frame to the host
and one frame back, over a pair of inherited file descriptors.  A frame is a 4-byte
big-endian length and that many bytes of UTF-8 JSON:

- guest → host ``{"op": "list"}`` → ``{"ok": true, "tools": [{name, description,
  inputSchema}, ...]}``;
- guest → host ``{"op": "call", "tool": NAME, "arguments": {...}}`` → ``{"ok": true,
  "result": ...}`` or ``{"ok": false, "kind": KIND, "message": "..."}``.

:func:`serve` answers frames until the guest closes its end, enforcing the bounds of the
:class:`~neuroflow.sandbox.HostTools` (calls, request bytes) itself, whatever the guest
does, and returns the record of every call.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Protocol

import anyio

from neuroflow.sandbox.host_tools import HostCallRecord, HostToolError, HostTools

_LENGTH = struct.Struct(">I")
#: Frames of ``op: list`` allowed beyond ``max_calls`` (the guest lists the tools once).
LIST_FRAMES = 8


class _Receive(Protocol):
    async def receive(self, max_bytes: int = ...) -> bytes: ...


class _Send(Protocol):
    async def send(self, item: bytes) -> None: ...


class _Frames:
    """Reads whole frames from a byte stream."""

    def __init__(self, stream: _Receive) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            try:
                chunk = await self._stream.receive(65536)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return False
            if not chunk:
                return False
            self._buffer += chunk
        return True

    async def next(self, limit: int) -> bytes | None:
        """The next frame's body; ``None`` at the end of the stream.

        Raises:
            HostToolError: ``too_large`` when the frame is longer than ``limit``.
        """
        if not await self._fill(_LENGTH.size):
            return None
        (size,) = _LENGTH.unpack(self._buffer[:_LENGTH.size])
        if size > limit:
            raise HostToolError("too_large", f"a frame of {size} bytes is over {limit}")
        if not await self._fill(_LENGTH.size + size):
            return None
        body = bytes(self._buffer[_LENGTH.size:_LENGTH.size + size])
        del self._buffer[:_LENGTH.size + size]
        return body


def encode(message: Any) -> bytes:
    """One frame holding ``message`` as JSON."""
    body = json.dumps(message, separators=(",", ":"), default=str).encode()
    return _LENGTH.pack(len(body)) + body


def _descriptors(host_tools: HostTools) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description,
             "inputSchema": dict(t.input_schema)} for t in host_tools.tools]


async def serve(receive: _Receive, send: _Send, host_tools: HostTools,
                records: list[HostCallRecord] | None = None) -> list[HostCallRecord]:
    """Answer the guest's frames until it closes its end; return every call it made.

    Each call is appended to ``records`` (a new list if not given) as soon as it is
    answered, so a caller that cancels the serving still holds the record of every call.
    A frame over ``max_request_bytes`` (plus a little for the envelope) ends the channel:
    its bytes are not read, the guest's next call fails.
    """
    frames = _Frames(receive)
    names = {t.name for t in host_tools.tools}
    records = [] if records is None else records
    calls = lists = 0
    limit = host_tools.max_request_bytes + 1024
    while True:
        try:
            body = await frames.next(limit)
        except HostToolError as exc:
            records.append(HostCallRecord(len(records) + 1, "", exc.kind, exc.message))
            await _answer(send, {"ok": False, "kind": exc.kind, "message": exc.message})
            return records
        if body is None:
            return records
        try:
            frame = json.loads(body)
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or frame.get("op") not in ("list", "call"):
            records.append(HostCallRecord(len(records) + 1, "", "protocol", "not a frame"))
            await _answer(send, {"ok": False, "kind": "protocol",
                                 "message": "expected a list or call frame"})
            continue
        if frame["op"] == "list":
            lists += 1
            if lists > LIST_FRAMES:
                await _answer(send, {"ok": False, "kind": "budget_exceeded",
                                     "message": "the tools were listed too often"})
            else:
                await _answer(send, {"ok": True, "tools": _descriptors(host_tools)})
            continue
        name = frame.get("tool")
        name = name if isinstance(name, str) else ""
        arguments = frame.get("arguments")
        seq = len(records) + 1
        try:
            answer, outcome, message = await _call(host_tools, name, arguments, names, calls)
        except anyio.get_cancelled_exc_class():
            records.append(HostCallRecord(seq, name[:64], "cancelled",
                                          "the run ended during the call"))
            raise
        calls += 1
        records.append(HostCallRecord(seq, name[:64], outcome, message))
        await _answer(send, answer)


async def _call(host_tools: HostTools, name: str, arguments: Any, names: set[str],
                calls: int) -> tuple[dict[str, Any], str, str | None]:
    def failed(kind: str, message: str) -> tuple[dict[str, Any], str, str]:
        return {"ok": False, "kind": kind, "message": message}, kind, message

    if name not in names:
        return failed("unknown_tool", f"no tool named {name!r}")
    if not isinstance(arguments, dict):
        return failed("invalid_arguments", "arguments must be an object")
    if calls >= host_tools.max_calls:
        return failed("budget_exceeded", f"max_calls={host_tools.max_calls} used up")
    size = len(json.dumps(arguments, separators=(",", ":")).encode())
    if size > host_tools.max_request_bytes:
        return failed("too_large", f"request of {size} bytes is over "
                      f"max_request_bytes={host_tools.max_request_bytes}")
    try:
        result = await host_tools.call(name, arguments)
    except HostToolError as exc:
        return failed(exc.kind, exc.message)
    except Exception as exc:  # noqa: BLE001 - the guest learns only that it failed
        return failed("tool_error", f"{name}: {type(exc).__name__}")
    answer = {"ok": True, "result": result}
    if len(encode(answer)) > host_tools.max_response_bytes + 64:
        return failed("too_large", f"{name}: the result is over "
                      f"max_response_bytes={host_tools.max_response_bytes}")
    return answer, "ok", None


async def _answer(send: _Send, message: dict[str, Any]) -> None:
    try:
        await send.send(encode(message))
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass  # the guest is gone; its record says what it asked
