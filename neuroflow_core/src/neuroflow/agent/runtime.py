"""``AINativeAgent``: tools, the tool loop, sessions, guards, and OpenTelemetry GenAI spans."""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar, overload

import anyio
from opentelemetry import trace

from neuroflow.agent.codemode import (
    RUN_CODE,
    CodeMode,
    offered_tools,
    render_for_model,
    run_code_description,
    run_program,
)
from neuroflow.agent.llm import Completion, LLMConfig, ToolCall, create_provider
from neuroflow.agent.protocol import LLMProvider
from neuroflow.agent.sessions import SessionStore
from neuroflow.agent.tools import Tool, describe_tool
from neuroflow.errors import AgentError, ConfigError, SecurityError
from neuroflow.observability.metrics import metered

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("neuroflow.agent")

#: Spans follow the OpenTelemetry GenAI semantic conventions; opened through the API only,
#: so they cost next to nothing when no SDK is configured.
_TRACER = trace.get_tracer("neuroflow")
_CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_USAGE = {"gen_ai.usage.input_tokens": ("input_tokens", "prompt_tokens"),
          "gen_ai.usage.output_tokens": ("output_tokens", "completion_tokens")}


def _capture_content() -> bool:
    """Whether message content goes on spans (off unless the standard variable says so)."""
    return os.environ.get(_CAPTURE_CONTENT, "").strip().lower() in ("1", "true", "yes")


def _trace_id_of(span: Any) -> str | None:
    context = getattr(span, "get_span_context", None)
    if context is not None:
        ctx = context()
        return f"{ctx.trace_id:032x}" if ctx.is_valid else None
    value = getattr(span, "trace_id", None)
    if isinstance(value, int) and value:
        return f"{value:032x}"
    if isinstance(value, str) and value:
        return value
    return None


@contextmanager
def _otel_span(name: str, kind: trace.SpanKind,
               attributes: dict[str, Any]) -> Iterator[trace.Span]:
    with _TRACER.start_as_current_span(name, kind=kind, attributes=attributes) as span:
        if span.get_span_context().is_valid:
            yield span
            return
        # No SDK records spans: carry a fresh trace id anyway, so the guard's audit records
        # and logs inside this run still share one id.
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        ids = RandomIdGenerator()
        stand_in = trace.NonRecordingSpan(trace.SpanContext(
            ids.generate_trace_id(), ids.generate_span_id(), is_remote=False))
        with trace.use_span(stand_in):
            yield stand_in


def _configured_code_mode() -> CodeMode | None:
    """``[llm.code_mode]`` of the active configuration, if set."""
    from neuroflow.config import get_config

    settings = get_config().section("llm").settings
    return getattr(settings, "code_mode", None)


def _is_tracing_service(tracer: Any) -> bool:
    from neuroflow.observability.tracing import TracingService

    return isinstance(tracer, TracingService)


def _chat_attributes(span: trace.Span, completion: Completion,
                     messages: list[dict[str, Any]] | None) -> None:
    """The GenAI attributes of a ``chat`` span once the model answered."""
    if completion.model:
        span.set_attribute("gen_ai.response.model", completion.model)
    for key, names in _USAGE.items():
        value = next((completion.usage[n] for n in names if n in completion.usage), None)
        if isinstance(value, int):
            span.set_attribute(key, value)
    span.set_attribute("gen_ai.response.finish_reasons",
                       ["tool_calls" if completion.tool_calls else "stop"])
    if messages is not None:
        span.set_attribute("gen_ai.input.messages",
                           json.dumps(messages, default=str, ensure_ascii=False))
        span.set_attribute("gen_ai.output.messages", json.dumps(
            [{"role": "assistant", "content": completion.text,
              "tool_calls": [c.name for c in completion.tool_calls]}], ensure_ascii=False))


def _denial(exc: SecurityError) -> str:
    verdict = getattr(exc, "verdict", None)
    rule = getattr(verdict, "rule", None) or getattr(exc, "rule", None)
    reason = getattr(verdict, "reason", None) or getattr(exc, "reason", None)
    if rule:
        return f"denied by {rule}: {reason or exc}"
    return f"denied: {exc}"


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _assistant_message(completion: Completion, calls: list[ToolCall]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.raw_arguments
                    if call.arguments is None
                    else json.dumps(dict(call.arguments), ensure_ascii=False),
                },
            }
            for call in calls
        ]
    return message


class AINativeAgent:
    """An agent: a model, the tools it may call, and the loop between them.

    Args:
        name: the agent's id; the actor of every guarded action.
        llm_config: which model to use; ``None`` uses the ``[llm]`` configuration
            (default: the scripted provider).
        system_prompt: the system message put before every conversation.
        max_steps: how many model calls one :meth:`handle` may make.
        tool_timeout_seconds: how long one tool call may run.
        deadline_seconds: how long one :meth:`handle` may take in total.
        gate: an :class:`~neuroflow.security.ActionGate` every tool call passes
            through first (e.g. a ``SecurityManager``); ``None`` (the default) uses the
            gate built from ``[security]`` of the active configuration; ``False`` runs
            tools unguarded and unaudited.
        tracer: ``None`` or a ``neuroflow.observability.TracingService``: spans are
            OpenTelemetry spans (GenAI conventions: ``invoke_agent``, ``chat``,
            ``execute_tool``) sent wherever the configured tracer backend sends them.  Any
            other object with ``span(name, attributes=...)`` returning a context manager
            (whose value has ``set_attribute`` and optionally ``trace_id``) receives the
            spans instead.  Message content goes on spans only when
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
        provider: an LLM provider object to use instead of building one from
            ``llm_config``.
        sessions: where conversations are kept (default: in memory, bounded).
        code_mode: ``True`` or a :class:`~neuroflow.agent.CodeMode`: offer the model one
            tool, ``run_code``, whose program calls the agent's (read-only) tools inside a
            sandbox, each call guarded, audited and traced (:mod:`neuroflow.agent.codemode`);
            ``None`` (the default) takes ``[llm.code_mode]`` when the configuration has it,
            ``False`` turns it off.

    Example::

        agent = AINativeAgent("researcher", LLMConfig(provider="openai", model="gpt-4o"))

        @agent.tool
        async def research(topic: str) -> str:
            \"\"\"Research a topic.

            Args:
                topic: what to research.
            \"\"\"
            return f"notes on {topic}"

        result = await agent.handle("Research AI trends")
        print(result["response"])
    """

    def __init__(
        self,
        name: str,
        llm_config: LLMConfig | None = None,
        *,
        system_prompt: str | None = None,
        max_steps: int = 8,
        tool_timeout_seconds: float = 30,
        deadline_seconds: float = 120,
        gate: Any = None,
        tracer: Any = None,
        provider: LLMProvider | None = None,
        sessions: SessionStore | None = None,
        code_mode: CodeMode | bool | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise AgentError(f"AINativeAgent: name must be a non-empty string, got {name!r}")
        if llm_config is not None and not isinstance(llm_config, LLMConfig):
            raise AgentError(
                f"AINativeAgent: llm_config must be an LLMConfig, got {type(llm_config).__name__}"
            )
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise AgentError(f"AINativeAgent: max_steps must be an integer >= 1, got {max_steps!r}")
        for field, value in (("tool_timeout_seconds", tool_timeout_seconds),
                             ("deadline_seconds", deadline_seconds)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise AgentError(f"AINativeAgent: {field} must be a number > 0, got {value!r}")
        from neuroflow.security.manager import resolve_gate

        try:
            gate = resolve_gate(gate, "AINativeAgent")
        except ConfigError as exc:
            raise AgentError(str(exc)) from None
        self.name = name
        self.llm_config = llm_config
        self.system_prompt = system_prompt
        self.max_steps = max_steps
        self.tool_timeout_seconds = float(tool_timeout_seconds)
        self.deadline_seconds = float(deadline_seconds)
        self.gate = gate
        self.tracer = tracer
        self._duck_tracer = tracer is not None and not _is_tracing_service(tracer)
        self.sessions = sessions if sessions is not None else SessionStore()
        self._provider = provider
        self._tools: dict[str, Tool] = {}
        if code_mode is None:
            code_mode = _configured_code_mode()
        if code_mode is True:
            code_mode = CodeMode()
        if code_mode is not None and code_mode is not False and not isinstance(
                code_mode, CodeMode):
            raise AgentError(f"AINativeAgent: code_mode must be True, False or a CodeMode, "
                             f"got {type(code_mode).__name__}")
        self.code_mode: CodeMode | None = code_mode or None
        self._code_sandbox: Any = None
        self._code_runs = 0

    # --- tools ------------------------------------------------------------------------

    @overload
    def tool(self, function: F, /) -> F: ...

    @overload
    def tool(
        self, *, name: str | None = None, description: str | None = None,
        read_only: bool = False,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        function: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        read_only: bool = False,
    ) -> Any:
        """Register a function as a tool: ``@agent.tool`` or ``@agent.tool(name=...)``.

        Sync and async functions both work (sync ones run in a worker thread).
        The JSON schema comes from the type hints; the description from the docstring's
        summary and its ``Args:`` section.  ``read_only=True`` says the tool changes
        nothing (code mode offers only such tools unless its policy names others).  The
        function is returned unchanged.

        Raises:
            AgentError: the signature cannot be described, or the name is taken.
        """

        def register(fn: F) -> F:
            self.add_tool(fn, name=name, description=description, read_only=read_only)
            return fn

        return register(function) if function is not None else register

    def add_tool(
        self,
        function: Callable[..., Any] | Tool,
        *,
        name: str | None = None,
        description: str | None = None,
        read_only: bool = False,
    ) -> Tool:
        """Register a function (or a ready :class:`Tool`) and return its :class:`Tool`."""
        tool = function if isinstance(function, Tool) else describe_tool(
            function, name, description, read_only=read_only
        )
        if tool.name in self._tools:
            raise AgentError(f"agent {self.name!r}: a tool named {tool.name!r} already exists")
        self._tools[tool.name] = tool
        return tool

    @property
    def tools(self) -> Mapping[str, Tool]:
        """The registered tools by name."""
        return dict(self._tools)

    # --- the model ----------------------------------------------------------------------

    @property
    def provider(self) -> LLMProvider:
        """The LLM provider, built from ``llm_config`` (or the configuration) on first use."""
        if self._provider is None:
            self._provider = create_provider(self.llm_config)
        return self._provider

    async def aclose(self) -> None:
        """Release the provider's connections (if it holds any) and code mode's sandbox."""
        sandbox, self._code_sandbox = self._code_sandbox, None
        if sandbox is not None:
            await sandbox.aclose()
        closer = getattr(self._provider, "aclose", None)
        if closer is not None:
            await closer()

    # --- code mode ------------------------------------------------------------------------

    def _sandbox_for_code(self) -> Any:
        if self._code_sandbox is None:
            from neuroflow.backends import BackendKind, create_backend

            mode = self.code_mode
            assert mode is not None
            sandbox = create_backend(BackendKind.ISOLATION, mode.backend, mode.sandbox_options,
                                     gate=self.gate if self.gate is not None else False,
                                     actor=self.name, field="code_mode.backend")
            if not callable(getattr(sandbox, "run_code", None)):
                raise AgentError(f"code_mode: the {mode.backend!r} sandbox backend cannot run "
                                 "code with host tools (it has no run_code); use 'wasm-python'")
            self._code_sandbox = sandbox
        return self._code_sandbox

    def _run_code_tool(self, session: str, result: dict[str, Any]) -> Tool:
        mode = self.code_mode
        assert mode is not None
        offered = offered_tools(self._tools, mode)

        async def run_code(code: str) -> str:
            self._code_runs += 1
            run = await run_program(self, self._sandbox_for_code(), mode, code,
                                    session=session, trace_id=result["trace_id"],
                                    run_id=f"code_{self._code_runs}")
            result["code_runs"].append(run.to_dict())
            return render_for_model(run)

        parameters = {"type": "object", "additionalProperties": False, "required": ["code"],
                      "properties": {"code": {"type": "string",
                                              "description": "the Python program to run"}}}
        return Tool(name=RUN_CODE, description=run_code_description(offered, mode),
                    parameters=parameters, function=run_code, is_async=True)

    def _offered(self, session: str, result: dict[str, Any]) -> dict[str, Tool]:
        """The tools the model is offered in this turn."""
        if self.code_mode is None:
            return self._tools
        return {RUN_CODE: self._run_code_tool(session, result)}

    async def __aenter__(self) -> AINativeAgent:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- tracing ------------------------------------------------------------------------

    def _span(self, name: str, attributes: dict[str, Any],
              kind: trace.SpanKind = trace.SpanKind.INTERNAL) -> AbstractContextManager[Any]:
        if self._duck_tracer:
            return self.tracer.span(name, attributes=attributes)
        return _otel_span(name, kind, attributes)

    def _request_model(self, provider: LLMProvider) -> str:
        model = getattr(self.llm_config, "model", None) or getattr(
            getattr(provider, "config", None), "model", None)
        return model if isinstance(model, str) else ""

    # --- the loop -----------------------------------------------------------------------

    async def handle(self, message: str, session_id: str | None = None) -> dict[str, Any]:
        """Answer ``message``, calling tools as the model asks, and return what happened.

        Returns a dict with:

        * ``response``: the model's final text;
        * ``tool_calls``: one dict per call: ``id``, ``name``, ``arguments``, ``status``
          (``"ok"``, ``"error"``, ``"denied"``, ``"timeout"``), ``result`` or ``error``,
          ``duration_ms``, and with a gate ``audit_seq`` (its guard decision's record);
        * ``trace_id`` (32 hex digits), ``session_id`` (pass it back to continue);
        * ``steps`` (model calls made), ``finish_reason`` (``"stop"`` or ``"max_steps"``),
          ``model`` and ``usage`` (summed token counts);
        * in code mode, ``code_runs``: one :class:`~neuroflow.agent.CodeRun` dict per
          program (output, every tool call it made, and the reconciliation of the sandbox's,
          the host's and the audit log's records).

        Raises:
            AgentError: the deadline passed (``.result`` holds what happened so far) or
                the provider failed.  Cancellation propagates unchanged; the session then
                keeps no part of the interrupted turn.
        """
        if not isinstance(message, str):
            raise AgentError(f"handle: message must be a string, got {type(message).__name__}")
        if session_id is not None and (not isinstance(session_id, str) or not session_id):
            raise AgentError(f"handle: session_id must be a non-empty string, got {session_id!r}")
        session = session_id if session_id is not None else secrets.token_hex(8)
        provider = self.provider
        result: dict[str, Any] = {
            "response": "",
            "tool_calls": [],
            "trace_id": "",
            "session_id": session,
            "steps": 0,
            "finish_reason": "",
            "model": "",
            "usage": {},
            "agent": self.name,
        }
        if self.code_mode is not None:
            result["code_runs"] = []
        attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": self.name,
                      "gen_ai.conversation.id": session}
        with self._span(f"invoke_agent {self.name}", attributes) as span, \
                metered("agent", "invoke_agent"):
            # the span's trace (a stand-in id when no SDK records spans), else a new one
            result["trace_id"] = _trace_id_of(span) or secrets.token_hex(16)
            turn: list[dict[str, Any]] = [{"role": "user", "content": message}]
            with anyio.move_on_after(self.deadline_seconds) as scope:
                await self._loop(provider, session, turn, result)
            if scope.cancelled_caught:
                result["finish_reason"] = "deadline"
                error = AgentError(
                    f"agent {self.name!r}: deadline_seconds={self.deadline_seconds:g} passed "
                    f"after {result['steps']} model call(s) and "
                    f"{len(result['tool_calls'])} tool call(s)"
                )
                error.result = result  # type: ignore[attr-defined]
                if span is not None:
                    span.set_attribute("agent.finish_reason", "deadline")
                raise error
            self.sessions.append(session, turn)
            if span is not None:
                span.set_attribute("agent.steps", result["steps"])
                span.set_attribute("agent.tool_calls", len(result["tool_calls"]))
                span.set_attribute("agent.finish_reason", result["finish_reason"])
                for key, names in _USAGE.items():
                    value = next((usage[n] for n in names if n in (usage := result["usage"])),
                                 None)
                    if value is not None:
                        span.set_attribute(key, value)
        return result

    async def _loop(
        self,
        provider: LLMProvider,
        session: str,
        turn: list[dict[str, Any]],
        result: dict[str, Any],
    ) -> None:
        prefix = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        history = self.sessions.history(session)
        offered = self._offered(session, result)
        tools = [tool.to_openai() for tool in offered.values()]
        # run_code's own bound: the program's time and the sandbox's start, not one tool's
        run_timeout = (self.code_mode.timeout_seconds + 30.0 if self.code_mode is not None
                       else None)
        usage: dict[str, int] = result["usage"]
        model = self._request_model(provider)
        chat = {"gen_ai.operation.name": "chat", "gen_ai.agent.name": self.name}
        system = getattr(self.llm_config, "provider", None) or getattr(provider, "name", None)
        if isinstance(system, str):
            chat["gen_ai.provider.name"] = system
        if model:
            chat["gen_ai.request.model"] = model
        capture = _capture_content()
        for _ in range(self.max_steps):
            with self._span(f"chat {model}" if model else "chat", chat,
                            trace.SpanKind.CLIENT) as span:
                messages = [*prefix, *history, *turn]
                completion = await provider.complete(messages, tools)
                if span is not None and not self._duck_tracer:
                    _chat_attributes(span, completion, messages if capture else None)
            result["steps"] += 1
            result["model"] = completion.model or result["model"]
            for key, value in completion.usage.items():
                if isinstance(value, int):
                    usage[key] = usage.get(key, 0) + value
            calls = [
                call if call.id else ToolCall(f"call_{result['steps']}_{i}", call.name,
                                              call.arguments, call.arguments_error,
                                              call.raw_arguments)
                for i, call in enumerate(completion.tool_calls)
            ]
            turn.append(_assistant_message(completion, calls))
            if not calls:
                result["response"] = completion.text or ""
                result["finish_reason"] = "stop"
                return
            for call in calls:
                record = await self._run_tool(call, session, result["trace_id"], tools=offered,
                                              timeout=run_timeout)
                result["tool_calls"].append(record)
                content = (
                    _render(record["result"]) if record["status"] == "ok"
                    else f"error: {record['error']}"
                )
                turn.append({"role": "tool", "tool_call_id": call.id, "content": content})
        result["finish_reason"] = "max_steps"
        result["response"] = (
            f"(stopped: the model was still calling tools after max_steps={self.max_steps} "
            "model calls)"
        )

    async def _run_tool(self, call: ToolCall, session: str, trace_id: str, *,
                        tools: Mapping[str, Tool] | None = None, timeout: float | None = None,
                        component: str = "agent") -> dict[str, Any]:
        started = time.perf_counter()
        arguments: Any = call.arguments if call.arguments is not None else call.raw_arguments
        record: dict[str, Any] = {"id": call.id, "name": call.name, "arguments": arguments}

        def finish(status: str, **fields: Any) -> dict[str, Any]:
            record["status"] = status
            record.update(fields)
            record["duration_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
            return record

        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.name,
                      "gen_ai.tool.call.id": call.id, "tool.name": call.name}
        with self._span(f"execute_tool {call.name}", attributes) as span, \
                metered("tool", "execute_tool") as meter:
            record = await self._call_tool(
                call, session, trace_id, finish,
                self._tools if tools is None else tools,
                self.tool_timeout_seconds if timeout is None else timeout, component)
            if record["status"] != "ok":
                meter.error = record["status"]
            if span is not None:
                span.set_attribute("tool.status", record["status"])
                span.set_attribute("tool.duration_ms", record["duration_ms"])
                if record["status"] == "denied":
                    span.set_attribute("neuroflow.guard.decision", "deny")
                if record["status"] in ("error", "timeout") and not self._duck_tracer:
                    span.set_attribute("error.type", record["status"])
        return record

    async def _call_tool(
        self,
        call: ToolCall,
        session: str,
        trace_id: str,
        finish: Callable[..., dict[str, Any]],
        tools: Mapping[str, Tool],
        timeout: float,
        component: str,
    ) -> dict[str, Any]:
        if call.arguments_error is not None:
            return finish("error", error=f"arguments of {call.name!r} are not valid: "
                                         f"{call.arguments_error}")
        tool = tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(tools)) or "none"
            return finish("error", error=f"unknown tool {call.name!r} (tools: {known})")
        try:
            kwargs = tool.prepare(call.arguments or {})
        except AgentError as exc:
            return finish("error", error=str(exc))

        action = context = seq = None
        if self.gate is not None:
            from neuroflow.security.model import Action, ActionContext

            action = Action(kind="tool", target=tool.name, actor=self.name,
                            arguments=dict(call.arguments or {}))
            context = ActionContext(session_id=session, trace_id=trace_id,
                                    component=component)
            try:
                verdict = await self.gate.authorize(action, context)
            except SecurityError as exc:
                seq = getattr(getattr(exc, "verdict", None), "audit_seq", None)
                if seq is not None and not self._duck_tracer:
                    trace.get_current_span().set_attribute("neuroflow.audit.seq", seq)
                return finish("denied", error=_denial(exc), audit_seq=seq)
            seq = getattr(verdict, "audit_seq", None)
            if not self._duck_tracer:
                span = trace.get_current_span()
                span.set_attribute("neuroflow.guard.decision", "allow")
                if seq is not None:
                    span.set_attribute("neuroflow.audit.seq", seq)

        began = time.perf_counter()
        try:
            with anyio.fail_after(timeout):
                if tool.is_async:
                    value = await tool.function(**kwargs)
                else:
                    value = await anyio.to_thread.run_sync(
                        functools.partial(tool.function, **kwargs), abandon_on_cancel=True
                    )
        except anyio.get_cancelled_exc_class():
            if self.gate is not None and action is not None and context is not None:
                # the decision is in the audit log; so is the fact that the call never ended
                with anyio.move_on_after(5, shield=True):
                    await self.gate.record_outcome(
                        action, context, "cancelled",
                        {"duration_ms": round((time.perf_counter() - began) * 1000.0, 3)},
                    )
            raise
        except TimeoutError:
            record = finish("timeout", error=(
                f"tool {tool.name!r} timed out after tool_timeout_seconds={timeout:g}"
            ))
        except Exception as exc:
            log.debug("tool %r raised", tool.name, exc_info=True)
            record = finish("error", error=f"{type(exc).__name__}: {exc}")
        else:
            record = finish("ok", result=value)
        if self.gate is not None:
            record["audit_seq"] = seq

        if self.gate is not None and action is not None and context is not None:
            details: dict[str, Any] = {"duration_ms": record["duration_ms"]}
            if "error" in record:
                details["error"] = record["error"]
            await self.gate.record_outcome(
                action, context, "success" if record["status"] == "ok" else record["status"],
                details,
            )
        return record

