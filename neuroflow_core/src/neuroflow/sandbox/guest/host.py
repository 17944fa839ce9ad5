"""Host tools, seen from inside the sandbox: ``from host import tools``.

Each tool the host offers is a function of ``tools`` with its signature and docstring
(``help(tools.NAME)``); calling it sends one frame to the host and waits for the answer.
A call that fails raises :class:`ToolError` carrying only the host's message.  The
channel is the pair of file descriptors named by ``NEUROFLOW_HOST_FDS`` ("READ,WRITE").
"""

import inspect
import json
import os
import struct
import types

__all__ = ["ToolError"]  # and `tools`, listed from the host on first use

_LENGTH = struct.Struct(">I")
_PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
             "array": "list", "object": "dict", "null": "None"}


class ToolError(Exception):
    """A tool call that did not succeed; ``kind`` says why (``denied``, ``timeout``...)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def _fds():
    raw = os.environ.get("NEUROFLOW_HOST_FDS", "")
    try:
        read, write = (int(part) for part in raw.split(","))
    except ValueError:
        raise ToolError("protocol", "no host channel (NEUROFLOW_HOST_FDS is not set)") from None
    return read, write


def _read_exactly(fd, size):
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise ToolError("protocol", "the host closed the channel")
        data += chunk
    return bytes(data)


def _exchange(message):
    read, write = _fds()
    body = json.dumps(message, separators=(",", ":")).encode()
    frame = _LENGTH.pack(len(body)) + body
    while frame:
        frame = frame[os.write(write, frame):]
    (size,) = _LENGTH.unpack(_read_exactly(read, _LENGTH.size))
    answer = json.loads(_read_exactly(read, size))
    if not answer.get("ok"):
        raise ToolError(answer.get("kind", "tool_error"), answer.get("message", "failed"))
    return answer


def _annotation(schema):
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, list):
        return " | ".join(_PY_TYPES.get(k, k) for k in kind)
    return _PY_TYPES.get(kind, "object") if isinstance(kind, str) else "object"


def _make(descriptor):
    name = descriptor["name"]
    schema = descriptor.get("inputSchema") or {}
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    parameters = []
    for pname, pschema in properties.items():
        default = inspect.Parameter.empty
        if pname not in required:
            default = pschema.get("default") if isinstance(pschema, dict) else None
        parameters.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY,
                                            default=default,
                                            annotation=_annotation(pschema)))
    parameters.sort(key=lambda p: p.default is not inspect.Parameter.empty)

    def call(**arguments):
        return _exchange({"op": "call", "tool": name, "arguments": arguments})["result"]

    call.__name__ = call.__qualname__ = name
    call.__doc__ = descriptor.get("description") or name
    call.__signature__ = inspect.Signature(parameters)
    return call


def _load():
    namespace = types.ModuleType("host.tools", "The host's tools: call them with keywords.")
    for descriptor in _exchange({"op": "list"})["tools"]:
        setattr(namespace, descriptor["name"], _make(descriptor))
    return namespace


def __getattr__(name):
    """``tools`` is listed from the host on first use (PEP 562)."""
    if name == "tools":
        loaded = _load()
        globals()["tools"] = loaded
        return loaded
    raise AttributeError(f"module 'host' has no attribute {name!r}")
