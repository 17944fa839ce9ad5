"""Tool schemas derived from type hints and docstrings, argument checking, decoration errors."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, Optional

import attrs
import pytest

from neuroflow.agent import AINativeAgent, describe_tool
from neuroflow.agent.tools import parse_docstring
from neuroflow.errors import AgentError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Window:
    start: int
    end: int = 10


def search(
    query: str,
    limit: int = 5,
    threshold: float = 0.5,
    exact: bool = False,
    tags: list[str] | None = None,
    ids: tuple[int, ...] = (),
    weights: dict[str, float] | None = None,
    mode: Literal["fast", "deep"] = "fast",
    color: Color = Color.RED,
    window: Optional[Window] = None,  # noqa: UP045 - the Optional spelling is tested on purpose
    note: Annotated[str, "a free-form note"] = "",
) -> list[str]:
    """Search the notes.

    Longer explanation that is not part of the summary.

    Args:
        query: what to look for,
            over two lines.
        limit (int): how many results.
        threshold: minimum score.

    Returns:
        the matching notes.
    """
    return [query]


def test_schema_covers_every_supported_type() -> None:
    tool = describe_tool(search)
    assert tool.name == "search"
    assert tool.description == "Search the notes."
    assert not tool.is_async
    params = tool.parameters
    assert params["type"] == "object"
    assert params["required"] == ["query"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert props["query"] == {"type": "string", "description": "what to look for, over two lines."}
    assert props["limit"] == {"type": "integer", "description": "how many results.", "default": 5}
    assert props["threshold"] == {"type": "number", "description": "minimum score.",
                                  "default": 0.5}
    assert props["exact"] == {"type": "boolean", "default": False}
    assert props["tags"] == {"anyOf": [{"type": "array", "items": {"type": "string"}},
                                       {"type": "null"}], "default": None}
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}}
    assert props["weights"]["anyOf"][0] == {"type": "object",
                                            "additionalProperties": {"type": "number"}}
    assert props["mode"] == {"type": "string", "enum": ["fast", "deep"], "default": "fast"}
    assert props["color"] == {"type": "string", "enum": ["red", "blue"], "default": "red"}
    assert props["window"]["anyOf"][0] == {
        "type": "object",
        "properties": {"start": {"type": "integer"}, "end": {"type": "integer"}},
        "additionalProperties": False,
        "required": ["start"],
    }
    assert props["note"] == {"type": "string", "description": "a free-form note", "default": ""}
    assert tool.to_openai()["function"]["name"] == "search"


def test_prepare_converts_enums_attrs_and_tuples() -> None:
    tool = describe_tool(search)
    kwargs = tool.prepare({"query": "q", "color": "blue", "window": {"start": 3}, "ids": [1, 2]})
    assert kwargs == {"query": "q", "color": Color.BLUE, "window": Window(3, 10), "ids": (1, 2)}
    assert tool.prepare({"query": "q", "window": None})["window"] is None


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "query: required argument is missing"),
        ({"query": 3}, "query: expected string, got 3"),
        ({"query": "q", "limit": True}, "limit: expected integer, got True"),
        ({"query": "q", "mode": "slow"}, "mode: expected one of ['fast', 'deep'], got 'slow'"),
        ({"query": "q", "tags": ["a", 2]}, "tags: expected array or null"),
        ({"query": "q", "ids": [1, "x"]}, "ids[1]: expected integer, got 'x'"),
        ({"query": "q", "window": {"start": "x"}}, "window: expected object or null"),
        ({"query": "q", "bogus": 1}, "bogus: unknown argument (known: query, limit"),
        ([1, 2], "arguments: expected object, got [1, 2]"),
    ],
)
def test_prepare_rejects_bad_arguments_naming_the_path(arguments: Any, expected: str) -> None:
    with pytest.raises(AgentError, match="bad arguments for tool 'search'") as info:
        describe_tool(search).prepare(arguments)
    assert expected in str(info.value)


def test_async_function_and_description_override() -> None:
    async def fetch(url: str) -> str:
        return url

    tool = describe_tool(fetch, name="web-fetch", description="Fetch a page")
    assert tool.is_async and tool.name == "web-fetch" and tool.description == "Fetch a page"
    assert tool.parameters["required"] == ["url"]


def test_no_parameters_and_no_docstring() -> None:
    def now() -> str:
        return "noon"

    tool = describe_tool(now)
    assert tool.description == ""
    assert tool.parameters == {"type": "object", "properties": {},
                               "additionalProperties": False}
    assert tool.prepare({}) == {}


def _star_args(*items: str) -> None: ...
def _star_kwargs(query: str, **options: str) -> None: ...
def _untyped(query) -> None: ...  # type: ignore[no-untyped-def]
def _positional(query: str, /) -> None: ...
def _unsupported(items: set[int]) -> None: ...
def _any(value: Any) -> None: ...
def _bare_list(items: list) -> None: ...  # type: ignore[type-arg]
def _int_keys(table: dict[int, str]) -> None: ...
def _mixed_literal(x: Literal["a", 1]) -> None: ...
def _forward(x: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (_star_args, "parameter 'items' (*items) cannot be described"),
        (_star_kwargs, "parameter 'options' (**options) cannot be described"),
        (_untyped, "parameter 'query' has no type hint"),
        (_positional, "parameter 'query' is positional-only"),
        (_unsupported, "parameter 'items' has an unsupported type: set[int]"),
        (_any, "parameter 'value' has an unsupported type: Any"),
        (_bare_list, "parameter 'items' has an unsupported type"),
        (_int_keys, "parameter 'table' has an unsupported type"),
        (_mixed_literal, "parameter 'x' has an unsupported type"),
        (_forward, "cannot resolve its type hints"),
    ],
)
def test_undescribable_signatures_fail_at_decoration(function: Any, message: str) -> None:
    agent = AINativeAgent("a")
    with pytest.raises(AgentError, match="tool '") as info:
        agent.tool(function)
    assert message in str(info.value)
    assert not agent.tools


def test_tool_name_rules_and_duplicates() -> None:
    agent = AINativeAgent("a")

    @agent.tool(name="lookup")
    def first(q: str) -> str:
        return q

    assert first("x") == "x"  # the decorator returns the function unchanged
    with pytest.raises(AgentError, match="a tool named 'lookup' already exists"):
        agent.tool(name="lookup")(first)
    with pytest.raises(AgentError, match="tool name 'has space' is not valid"):
        agent.tool(name="has space")(first)
    assert list(agent.tools) == ["lookup"]


def test_parse_docstring_google_style() -> None:
    summary, params = parse_docstring(
        """Do the thing
        in two lines.

        Args:
            a: first.
            b (int): second,
                continued.
            *rest: ignored star.

        Raises:
            ValueError: never an argument.
        """
    )
    assert summary == "Do the thing in two lines."
    assert params == {"a": "first.", "b": "second, continued.", "rest": "ignored star."}
    assert parse_docstring(None) == ("", {})


# --- schemas written by others (MCP servers): the JSON Schema they use -----------------

#: The shapes real MCP servers send: zod (npm servers) writes type lists and draft-07
#: ``$schema``; pydantic (Python servers) writes ``$defs``/``$ref`` and ``anyOf`` with null;
#: OpenAPI-minded servers write ``nullable``.
FOREIGN = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 1},
        "encoding": {"type": ["string", "null"]},
        "head": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                 "default": None},
        "tail": {"type": "integer", "nullable": True},
        "mode": {"$ref": "#/$defs/Mode"},
        "edits": {"type": "array", "items": {"$ref": "#/$defs/Edit"}},
        "kind": {"oneOf": [{"const": "file"}, {"const": "dir"}]},
        "flags": {"allOf": [{"type": "object"}, {"required": ["recursive"]}]},
    },
    "required": ["path"],
    "additionalProperties": False,
    "$defs": {
        "Mode": {"type": "string", "enum": ["text", "binary"]},
        "Edit": {"type": "object", "properties": {"old": {"type": "string"},
                                                   "new": {"type": "string"}},
                 "required": ["old", "new"]},
    },
}


def foreign_tool(schema: dict[str, Any] = FOREIGN) -> Any:
    from neuroflow.agent.tools import Tool

    return Tool(name="read", description="", parameters=schema,
                function=lambda **kw: kw, is_async=False)


def test_schemas_from_mcp_servers_accept_what_json_schema_accepts() -> None:
    tool = foreign_tool()
    good = {"path": "a.txt", "encoding": None, "head": None, "tail": None, "mode": "text",
            "edits": [{"old": "a", "new": "b"}], "kind": "dir", "flags": {"recursive": True}}
    assert tool.prepare(good) == good
    assert tool.prepare({"path": "a", "encoding": "utf-8", "head": 3, "tail": 4}) == {
        "path": "a", "encoding": "utf-8", "head": 3, "tail": 4}


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"path": "a", "encoding": 5}, "encoding: expected string or null, got 5"),
    ({"path": "a", "head": 0}, "head: expected integer or null, got 0"),
    ({"path": "a", "tail": "x"}, "tail: expected integer or null, got 'x'"),
    ({"path": "a", "mode": "fast"}, "mode: expected one of ['text', 'binary'], got 'fast'"),
    ({"path": "a", "edits": [{"old": "a"}]}, "edits[0].new: required argument is missing"),
    ({"path": "a", "kind": "link"}, "kind: "),
    ({"path": "a", "flags": {}}, "flags.recursive: required argument is missing"),
    ({"path": ""}, "path: "),
    ({"path": "a", "colour": 1}, "colour: unknown argument (known: path, encoding"),
    ({}, "path: required argument is missing"),
])
def test_schemas_from_mcp_servers_reject_naming_the_path(arguments: Any, expected: str) -> None:
    with pytest.raises(AgentError, match="bad arguments for tool 'read'") as info:
        foreign_tool().prepare(arguments)
    assert expected in str(info.value)


def test_a_broken_schema_is_reported_as_the_tool_s_not_the_model_s() -> None:
    tool = foreign_tool({"type": "object", "properties": {"x": {"type": "strnig"}}})
    with pytest.raises(AgentError, match="tool 'read' has an invalid input schema"):
        tool.prepare({"x": "y"})


def test_a_ref_to_another_document_is_not_fetched() -> None:
    tool = foreign_tool({"type": "object", "properties": {
        "x": {"$ref": "https://schemas.example/x.json"}}})
    with pytest.raises(AgentError, match=r"\$ref that cannot be resolved"):
        tool.prepare({"x": 1})
