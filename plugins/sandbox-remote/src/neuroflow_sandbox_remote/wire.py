"""The data that crosses the cluster: requests and results as msgpack, never pickles.

A request carries the command, its arguments, stdin, the call's environment, its timeout,
the digest of the sandbox configuration it was judged under and the caller's trace
context.  A reply is a ``SandboxResult`` as plain fields, or an error by class name from
:mod:`neuroflow.errors` (anything else becomes ``SandboxError``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import msgpack

from neuroflow import errors
from neuroflow.sandbox import SandboxResult

#: Version of the request format; a node refuses others.
VERSION = 1


def pack(data: Mapping[str, Any]) -> bytes:
    """msgpack bytes of plain data (str, bytes, numbers, lists, maps)."""
    return msgpack.packb(data, use_bin_type=True)


def unpack(raw: bytes) -> Any:
    """The plain data in ``raw``; msgpack extension types are refused."""
    return msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=_no_ext)


def _no_ext(code: int, _data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not accepted")


def request(digest: str, command: str, args: Sequence[str], stdin: bytes | None,
            env: Mapping[str, str] | None, timeout: float | None,
            trace: Mapping[str, str]) -> bytes:
    """One execution request, packed."""
    return pack({
        "v": VERSION, "digest": digest, "command": command, "args": list(args),
        "stdin": stdin, "env": dict(env) if env else None, "timeout": timeout,
        "trace": dict(trace),
    })


def check_request(data: Any) -> dict[str, Any]:
    """``data`` if it is a well-formed request; ``ValueError`` naming the bad field."""
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValueError(f"request: expected format version {VERSION}")
    checks = {
        "digest": lambda v: isinstance(v, str),
        "command": lambda v: isinstance(v, str) and v != "",
        "args": lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
        "stdin": lambda v: v is None or isinstance(v, bytes),
        "env": lambda v: v is None or (isinstance(v, dict) and all(
            isinstance(k, str) and isinstance(x, str) for k, x in v.items())),
        "timeout": lambda v: v is None or (isinstance(v, (int, float))
                                           and not isinstance(v, bool)),
        "trace": lambda v: isinstance(v, dict) and all(
            isinstance(k, str) and isinstance(x, str) for k, x in v.items()),
    }
    for name, ok in checks.items():
        if not ok(data.get(name)):
            raise ValueError(f"request.{name}: malformed ({type(data.get(name)).__name__})")
    return data


def result_data(result: SandboxResult) -> dict[str, Any]:
    """A ``SandboxResult`` as plain fields."""
    data = attrs.asdict(result, recurse=False)
    data["reason"] = result.reason.value
    data["limits_hit"] = list(result.limits_hit)
    data["warnings"] = list(result.warnings)
    return data


def result_from(data: Mapping[str, Any]) -> SandboxResult:
    """The ``SandboxResult`` a node sent."""
    fields = dict(data)
    fields["limits_hit"] = tuple(fields.get("limits_hit", ()))
    fields["warnings"] = tuple(fields.get("warnings", ()))
    return SandboxResult(**fields)


def error_data(exc: BaseException) -> dict[str, str]:
    """An exception as its class name and message."""
    return {"type": type(exc).__name__, "message": str(exc)}


def error_from(data: Mapping[str, Any], where: str) -> Exception:
    """The exception a node reported: its class when it is one of NeuroFlow's errors
    (``CommandNotAllowedError``, ``UnsupportedLimitError``...), else ``SandboxError``."""
    name = str(data.get("type", ""))
    message = str(data.get("message", ""))
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.NeuroflowError):
        return cls(message)
    return errors.SandboxError(f"{where}: {name}: {message}")
