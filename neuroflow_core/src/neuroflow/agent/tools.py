"""Tools: a Python function described as a JSON schema the model can call.

:func:`describe_tool` reads a function's signature, type hints and docstring (summary plus
Google-style ``Args:`` section) and returns a :class:`Tool`.  Supported parameter types:
``str``, ``int``, ``float``, ``bool``, ``list[X]``/``tuple[X, ...]``/``Sequence[X]``,
``dict``/``dict[str, X]``, ``X | None``, ``Literal[...]``, ``Enum`` subclasses, attrs classes
and ``Annotated[X, "description"]``.  A signature that cannot be described raises
:class:`~neuroflow.errors.AgentError` at decoration time, naming the parameter.

:meth:`Tool.prepare` checks the model's arguments against the schema and converts them
(an enum value to the Enum member, a table to the attrs class) before the call.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from neuroflow.errors import AgentError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SUPPORTED = (
    "str, int, float, bool, list[X], tuple[X, ...], dict[str, X], X | None, Literal[...], "
    "Enum subclasses, attrs classes"
)


class _Unsupported(Exception):
    """A type that has no JSON-schema description; the message says which."""


@attrs.frozen
class Tool:
    """A function the model may call.

    Attributes:
        name: the name the model uses (``[A-Za-z0-9_-]{1,64}``).
        description: what the tool does, shown to the model.
        parameters: the JSON schema (``{"type": "object", ...}``) of its keyword arguments.
        function: the function itself (sync or async).
        is_async: whether ``function`` is a coroutine function.
        read_only: the tool only reads (it changes nothing outside itself); code mode
            offers only such tools unless a policy names others.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: Callable[..., Any] = attrs.field(repr=False)
    is_async: bool
    _converters: Mapping[str, Callable[[Any], Any]] = attrs.field(
        factory=dict, repr=False, alias="converters"
    )
    read_only: bool = attrs.field(default=False, kw_only=True)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI function-tool description handed to LLM providers."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def prepare(self, arguments: Any) -> dict[str, Any]:
        """Check ``arguments`` against the schema and return the keyword arguments to call with.

        Raises:
            AgentError: listing every problem as ``path: what was expected, got what``.
        """
        problems = validate(arguments, self.parameters, "")
        if problems:
            raise AgentError(f"bad arguments for tool {self.name!r}: " + "; ".join(problems))
        kwargs = dict(arguments)
        for key, convert in self._converters.items():
            if key in kwargs:
                kwargs[key] = convert(kwargs[key])
        return kwargs


# --- schema derivation ------------------------------------------------------------------


def _schema_for(tp: Any) -> tuple[dict[str, Any], Callable[[Any], Any] | None]:
    """Return ``(schema, converter-or-None)`` for a type hint."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        schema, conv = _schema_for(args[0])
        notes = [a for a in args[1:] if isinstance(a, str)]
        if notes:
            schema = {**schema, "description": " ".join(notes)}
        return schema, conv
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}, None
    if tp is type(None):
        return {"type": "null"}, None
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        optional = len(members) < len(args)
        if len(members) == 1:
            schema, conv = _schema_for(members[0])
            if optional:
                schema = {"anyOf": [schema, {"type": "null"}]}
                if conv is not None:
                    inner = conv
                    conv = lambda v: None if v is None else inner(v)  # noqa: E731
            return schema, conv
        parts = [_schema_for(m) for m in members]
        if any(c is not None for _, c in parts):
            raise _Unsupported(f"a union of {tp!r} with enum or attrs members")
        schemas = [s for s, _ in parts] + ([{"type": "null"}] if optional else [])
        return {"anyOf": schemas}, None
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        if len(kinds) != 1 or next(iter(kinds)) not in _SCALARS:
            raise _Unsupported(f"{tp!r} (Literal values must all be str, int, float or bool)")
        return {"type": _SCALARS[next(iter(kinds))], "enum": list(args)}, None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        kinds = {type(v) for v in values}
        if len(kinds) != 1 or next(iter(kinds)) not in _SCALARS:
            raise _Unsupported(f"enum {tp.__name__} (its values must all be str or all int)")
        return {"type": _SCALARS[next(iter(kinds))], "enum": values}, tp
    if tp in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise _Unsupported(f"{tp!r} (use tuple[X, ...] or list[X])")
        item = args[0] if args else None
        if item is None:
            raise _Unsupported(f"{tp!r} without an item type (use list[str], ...)")
        schema, conv = _schema_for(item)
        make = tuple if (tp is tuple or origin is tuple) else list
        if conv is None and make is list:
            return {"type": "array", "items": schema}, None
        item_conv = conv or (lambda v: v)
        return {"type": "array", "items": schema}, lambda v: make(item_conv(x) for x in v)
    if tp is dict or origin in (dict, collections.abc.Mapping):
        if not args:
            return {"type": "object"}, None
        if args[0] is not str:
            raise _Unsupported(f"{tp!r} (JSON object keys are strings: use dict[str, X])")
        schema, conv = _schema_for(args[1])
        if conv is not None:
            raise _Unsupported(f"{tp!r} (dict values may not be enums or attrs classes)")
        return {"type": "object", "additionalProperties": schema}, None
    if isinstance(tp, type) and attrs.has(tp):
        return _attrs_schema(tp)
    raise _Unsupported(repr(tp) if not isinstance(tp, type) else tp.__name__)


def _attrs_schema(cls: type) -> tuple[dict[str, Any], Callable[[Any], Any]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        if not field.init:
            continue
        key = field.alias or field.name
        schema, _ = _schema_for(hints.get(field.name, field.type))
        properties[key] = schema
        if field.default is attrs.NOTHING:
            required.append(key)
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required

    def convert(value: Any) -> Any:
        from neuroflow.config import converter

        return converter.structure(value, cls)

    return schema, convert


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:\s*$")
_OTHER_SECTION = re.compile(
    r"^\s*(Returns?|Yields?|Raises|Examples?|Notes?|Attributes|See Also|Warnings?)\s*:\s*$"
)
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Return ``(summary, {parameter: description})`` from a Google-style docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary_lines: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line) or _OTHER_SECTION.match(line):
            break
        summary_lines.append(line.strip())
    params: dict[str, str] = {}
    in_args = False
    indent: int | None = None
    current: str | None = None
    for line in lines:
        if _SECTION.match(line):
            in_args, indent, current = True, None, None
            continue
        if not in_args:
            continue
        if _OTHER_SECTION.match(line) or (line.strip() and not line[:1].isspace()):
            in_args = False
            continue
        if not line.strip():
            continue
        this_indent = len(line) - len(line.lstrip())
        if indent is None:
            indent = this_indent
        match = _ARG_LINE.match(line.strip())
        if this_indent <= indent and match:
            current = match.group(1).lstrip("*")
            params[current] = match.group(3).strip()
        elif current is not None:
            params[current] = f"{params[current]} {line.strip()}".strip()
    return " ".join(summary_lines), params


def describe_tool(
    function: Callable[..., Any], name: str | None = None, description: str | None = None,
    *, read_only: bool = False,
) -> Tool:
    """Describe ``function`` as a :class:`Tool` (``read_only``: it changes nothing).

    Raises:
        AgentError: the name is not a valid tool name, or a parameter cannot be described
            (``*args``/``**kwargs``, positional-only, no type hint, unsupported type); the
            message names the parameter.
    """
    tool_name = name or getattr(function, "__name__", "")
    if not _NAME.match(tool_name):
        raise AgentError(
            f"tool name {tool_name!r} is not valid: use 1-64 letters, digits, '_' or '-'"
        )
    where = f"tool {tool_name!r}"
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise AgentError(f"{where}: cannot read the signature of {function!r}: {exc}") from None
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - any failure to resolve hints is reported
        raise AgentError(f"{where}: cannot resolve its type hints: {exc}") from None
    summary, arg_docs = parse_docstring(inspect.getdoc(function))
    properties: dict[str, Any] = {}
    required: list[str] = []
    converters: dict[str, Callable[[Any], Any]] = {}
    for param in signature.parameters.values():
        pname = f"{where}: parameter {param.name!r}"
        if param.kind is param.VAR_POSITIONAL or param.kind is param.VAR_KEYWORD:
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise AgentError(
                f"{pname} ({star}{param.name}) cannot be described to a model: "
                "declare each argument as a named, typed parameter"
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise AgentError(f"{pname} is positional-only; tools are called with keywords")
        if param.name not in hints:
            raise AgentError(f"{pname} has no type hint (supported: {_SUPPORTED})")
        try:
            schema, convert = _schema_for(hints[param.name])
        except _Unsupported as exc:
            raise AgentError(
                f"{pname} has an unsupported type: {exc} (supported: {_SUPPORTED})"
            ) from None
        if param.name in arg_docs and "description" not in schema:
            schema = {**schema, "description": arg_docs[param.name]}
        if param.default is param.empty:
            required.append(param.name)
        elif isinstance(param.default, (str, int, float, bool, type(None))):
            schema = {**schema, "default": param.default}
        elif isinstance(param.default, enum.Enum):
            schema = {**schema, "default": param.default.value}
        properties[param.name] = schema
        if convert is not None:
            converters[param.name] = convert
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        parameters["required"] = required
    return Tool(
        name=tool_name,
        description=description if description is not None else summary,
        parameters=parameters,
        function=function,
        is_async=inspect.iscoroutinefunction(function)
        or inspect.iscoroutinefunction(type(function).__call__),
        converters=converters,
        read_only=bool(read_only),
    )


# --- validation ---------------------------------------------------------------------------

_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, Mapping),
}


def validate(value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    """Check ``value`` against the JSON-schema subset tools use; return the problems."""
    where = path or "arguments"
    if "anyOf" in schema:
        if any(not validate(value, option, path) for option in schema["anyOf"]):
            return []
        kinds = " or ".join(o.get("type", "value") for o in schema["anyOf"])
        return [f"{where}: expected {kinds}, got {value!r}"]
    kind = schema.get("type")
    if kind is not None and not _JSON_TYPES[kind](value):
        return [f"{where}: expected {kind}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: expected one of {schema['enum']!r}, got {value!r}"]
    problems: list[str] = []
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], f"{path}[{i}]")
    if kind == "object":
        prefix = f"{path}." if path else ""
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                problems.append(f"{prefix}{key}: required argument is missing")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                problems += validate(item, properties[key], f"{prefix}{key}")
            elif extra is False:
                known = ", ".join(properties) or "none"
                problems.append(f"{prefix}{key}: unknown argument (known: {known})")
            elif isinstance(extra, Mapping):
                problems += validate(item, extra, f"{prefix}{key}")
    return problems
