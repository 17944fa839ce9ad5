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
    _checker: Any = attrs.field(default=None, init=False, repr=False, eq=False)

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
            AgentError: listing every problem as ``path: what was expected, got what``;
                or the tool's own schema is not valid JSON Schema.
        """
        if self._checker is None:  # built once, on the first call
            object.__setattr__(self, "_checker", schema_checker(
                self.parameters, owner=f"tool {self.name!r}"))
        problems = validate(arguments, self.parameters, checker=self._checker)
        if not problems and not isinstance(arguments, Mapping):
            problems = [f"arguments: expected object, got {arguments!r}"]
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
#
# Arguments are checked with ``jsonschema`` (every draft, ``$ref``/``$defs``, type lists,
# ``anyOf``/``oneOf``/``allOf``, ``const``, bounds, patterns), so a schema an MCP server
# wrote is understood as that server meant it.  OpenAPI's ``nullable: true`` (outside JSON
# Schema, but some servers send it) also admits ``null``.  Problems are reported in one
# form, ``path.to[0].field: what was expected, got what``, for the model to correct.

_checker_classes: dict[type, type] = {}


def _checker_class(schema: Mapping[str, Any]) -> Any:
    """The ``jsonschema`` validator class for ``schema``'s ``$schema`` (default: 2020-12),
    extended with ``nullable``."""
    from jsonschema import validators

    base = validators.validator_for(schema, default=validators.Draft202012Validator)
    extended = _checker_classes.get(base)
    if extended is None:
        check_type = base.VALIDATORS["type"]

        def nullable_type(checker: Any, types: Any, instance: Any, schema: Any) -> Any:
            if instance is None and schema.get("nullable") is True:
                return
            yield from check_type(checker, types, instance, schema)

        extended = validators.extend(base, {"type": nullable_type})
        _checker_classes[base] = extended
    return extended


def schema_checker(schema: Mapping[str, Any], *, owner: str = "tool") -> Any:
    """A validator for ``schema`` (checked first).

    Raises:
        AgentError: the schema itself is not valid JSON Schema (``owner`` names whose).
    """
    from jsonschema.exceptions import SchemaError

    cls = _checker_class(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(root)"
        raise AgentError(f"{owner} has an invalid input schema at {where}: {exc.message}"
                         ) from None
    return cls(schema)


def _path(base: str, parts: Any) -> str:
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def _kinds(schema: Any) -> list[str]:
    """The JSON types a (sub)schema names, ``"null"`` for ``nullable``; ``[]`` if none."""
    if not isinstance(schema, Mapping):
        return []
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or ())
    if kinds and schema.get("nullable") is True and "null" not in kinds:
        kinds.append("null")
    return kinds


def _describe(error: Any, path: str) -> list[str]:
    """One ``jsonschema`` error as our problem lines."""
    where = _path(path, error.absolute_path)
    here = where or "arguments"
    value, rule, schema = error.instance, error.validator, error.schema
    if rule == "type":
        return [f"{here}: expected {' or '.join(_kinds(schema))}, got {value!r}"]
    if rule == "enum":
        return [f"{here}: expected one of {list(error.validator_value)!r}, got {value!r}"]
    prefix = f"{where}." if where else ""
    if rule == "required":
        return [f"{prefix}{key}: required argument is missing"
                for key in error.validator_value if key not in value]
    if rule == "additionalProperties" and error.validator_value is False:
        import re

        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        known = ", ".join(properties) or "none"
        return [f"{prefix}{key}: unknown argument (known: {known})" for key in value
                if key not in properties and not any(re.search(p, key) for p in patterns)]
    if rule in ("anyOf", "oneOf"):
        kinds = [_kinds(option) for option in error.validator_value]
        if all(kinds):
            names = " or ".join(dict.fromkeys(k for group in kinds for k in group))
            return [f"{here}: expected {names}, got {value!r}"]
    return [f"{here}: {error.message}"]


def validate(value: Any, schema: Mapping[str, Any], path: str = "", *,
             checker: Any = None) -> list[str]:
    """Check ``value`` against the JSON Schema ``schema``; return the problems, each
    ``path: what was expected, got what`` (``[]``: valid).

    ``checker``: a validator from :func:`schema_checker` for ``schema`` (built here when
    not given; then an invalid schema raises :class:`AgentError`).
    """
    from referencing.exceptions import Unresolvable

    if checker is None:
        checker = schema_checker(schema)
    problems: list[str] = []
    try:
        for error in checker.iter_errors(value):
            for line in _describe(error, path):
                if line not in problems:
                    problems.append(line)
    except Unresolvable as exc:  # a $ref to elsewhere: nothing is fetched
        raise AgentError(f"the input schema has a $ref that cannot be resolved here: {exc}"
                         ) from None
    return problems
