"""The data of agent-to-agent collaboration: registrations, replies, results, errors."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from neuroflow.errors import ConfigError, NeuroflowError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class A2AError(NeuroflowError):
    """An agent-to-agent call failed; the message names the agent and the reason."""


class AgentUnavailableError(A2AError):
    """The peer could not be reached, timed out, or answered something that is not A2A."""


class AgentTimeoutError(AgentUnavailableError):
    """The peer did not answer within the time left; its task was asked to cancel.

    (Not a ``TimeoutError``: an agent's tool loop reports those as its own tool timeout.)
    """


class CollaborationRefused(A2AError):
    """A delegation was refused before anything was sent: depth, cycle or deadline."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AgentNotFoundError(A2AError, KeyError):
    """No registered agent has that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _check_id(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not _ID.match(value):
        raise ConfigError(f"{attribute.name}: expected 1-128 letters, digits or _.:- "
                          f"starting with a letter or digit, got {value!r}")


def _check_text(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{attribute.name}: expected a string, got {value!r}")


def _check_endpoint(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not re.match(r"^(https?|grpc|local)://[^\s]+$", value):
        raise ConfigError(f"{attribute.name}: expected an http(s)://, grpc:// or local:// "
                          f"URL, got {value!r}")


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError(f"expected a list of strings, got the string {value!r}")
    if not isinstance(value, Iterable):
        raise ConfigError(f"expected a list of strings, got {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"expected a list of non-empty strings, got {item!r} in it")
    return tuple(dict.fromkeys(item.strip() for item in items))


def _check_ttl(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or value <= 0):
        raise ConfigError(f"{attribute.name}: expected a number of seconds > 0, got {value!r}")


def _check_transport(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name}: expected a transport name such as 'jsonrpc', "
                          f"got {value!r}")


@attrs.frozen(kw_only=True)
class AgentRegistration:
    """One agent another agent can find and call.

    Attributes:
        id: its unique id (also what the collaboration chain records).
        name: a human name.
        description: what it does (the model reads it to decide whom to ask).
        endpoint: where it answers: ``http(s)://`` (JSON-RPC or HTTP+JSON), ``grpc://`` or
            ``local://`` (an agent served in this process; the default, ``local://<id>``).
        capabilities: words other agents discover it by (``"web_search"``).
        skills: the ids of its skills (from its agent card, or its tools).
        tags: further words it is found by.
        transport: the binding to call it with (``"jsonrpc"``, ``"http-json"``,
            ``"grpc"``, ``"in-process"``); ``None`` picks by the endpoint's scheme and
            ``[a2a] backend``.
        card_url: the agent card it was registered from, if any.
        ttl_seconds: how long it stays discoverable without a heartbeat (``None``: the
            registry's default).
        last_seen: when it registered or last sent a heartbeat (seconds since the epoch).
        metadata: anything else (JSON values).
    """

    id: str = attrs.field(validator=_check_id)
    name: str = attrs.field(default="", validator=_check_text)
    description: str = attrs.field(default="", validator=_check_text)
    endpoint: str = attrs.field(
        default=attrs.Factory(lambda self: f"local://{self.id}", takes_self=True),
        validator=_check_endpoint)
    capabilities: tuple[str, ...] = attrs.field(default=(), converter=_words)
    skills: tuple[str, ...] = attrs.field(default=(), converter=_words)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_words)
    transport: str | None = attrs.field(default=None, validator=_check_transport)
    card_url: str | None = None
    ttl_seconds: float | None = attrs.field(default=None, validator=_check_ttl)
    last_seen: float = attrs.field(factory=time.time)
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    def terms(self) -> frozenset[str]:
        """Every word it is discovered by, lower-cased: capabilities, skills and tags."""
        return frozenset(w.lower() for w in (*self.capabilities, *self.skills, *self.tags))

    def alive(self, now: float, default_ttl: float | None) -> bool:
        """Whether its last heartbeat is recent enough at ``now``."""
        ttl = self.ttl_seconds if self.ttl_seconds is not None else default_ttl
        return ttl is None or now - self.last_seen <= ttl

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict`` reads it back)."""
        data = attrs.asdict(self, recurse=False)
        for key in ("capabilities", "skills", "tags"):
            data[key] = list(data[key])
        data["metadata"] = dict(self.metadata)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentRegistration:
        """Build one from :meth:`to_dict`'s form (unknown keys are an error)."""
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"agent registration: unknown key(s) {unknown}")
        return cls(**dict(data))


@attrs.frozen
class AgentReply:
    """What a called agent answered.

    Attributes:
        text: its answer.
        state: the task's final state (``"completed"``, ``"failed"``, ``"canceled"``,
            ``"rejected"``, ...).
        task_id: the remote task (empty when the agent answered with a plain message).
        context_id: the conversation it belongs to.
        metadata: the metadata the agent returned (a NeuroFlow agent returns the
            collaboration it did itself under ``"neuroflow.collaboration"``).
    """

    text: str
    state: str = "completed"
    task_id: str = ""
    context_id: str = ""
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class CardFetch:
    """An agent card fetched from a URL (``card`` is ``None`` when ``not_modified``)."""

    card: Mapping[str, Any] | None
    etag: str | None = None
    not_modified: bool = False


@attrs.frozen
class CollaborationResult:
    """What :meth:`CollaborativeOrchestratorV2.execute_with_collaboration` returns.

    Attributes:
        response: the final answer.
        collaborating_agents: the ids of every agent that answered part of the task,
            directly or further down the chain, in the order they were first asked.
        trace: who asked whom: one dict per delegation (``caller``, ``callee``,
            ``depth``, ``status``, ``duration_ms``, ``error``, the callee's ``trace_id``,
            and ``delegations`` the callee made in turn).
        trace_id: the OpenTelemetry trace the whole collaboration ran in.
        session_id: the orchestrating agent's session.
        tool_calls: the orchestrating agent's tool calls (delegations included).
    """

    response: str
    collaborating_agents: tuple[str, ...]
    trace: tuple[Mapping[str, Any], ...]
    trace_id: str = ""
    session_id: str = ""
    tool_calls: tuple[Mapping[str, Any], ...] = ()

    def __getitem__(self, key: str) -> Any:
        """``result["response"]`` works as well as ``result.response``."""
        if key in attrs.fields_dict(type(self)):
            return getattr(self, key)
        raise KeyError(key)
