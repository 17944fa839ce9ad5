"""Length-prefixed msgpack frames between a node actor and its runner process."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from neuroflow_sandbox_remote.wire import pack, unpack

_HEADER = struct.Struct(">I")
#: Largest frame accepted: two 16 MiB output streams and their fields, with room.
MAX_FRAME = 80 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    """One frame: a 4-byte big-endian length, then the msgpack body."""
    body = pack(message)
    return _HEADER.pack(len(body)) + body


async def read(reader: asyncio.StreamReader) -> Any | None:
    """The next message, or ``None`` at end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is over the {MAX_FRAME}-byte limit")
    try:
        return unpack(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None
