"""Every hook a NeuroFlow plugin can implement.

A plugin is a module (or object) registered under the ``neuroflow`` entry-point group.
It implements any of these hooks with ``@neuroflow.hookimpl``.  The built-in backends
register through the very same hooks, so each of them can be blocked or replaced.

Hooks come in two groups:

* **Registration hooks** (``neuroflow_*_backends``, ``neuroflow_memory_stores``, ...) are
  called once, when the plugin manager first needs backends of that kind.  Each returns
  a list of :class:`~neuroflow.backends.BackendSpec`.  They must be cheap: hand over
  names and ``"module:attr"`` references, and import heavy libraries inside the factory.
  All results are collected; a plugin whose hook raises is reported as failed and the
  others keep working.
* **Runtime hooks** (``neuroflow_guard_check``, ``neuroflow_audit_event``, ...) are resolved
  once into plain callables by the component that uses them, because they sit on hot
  paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from neuroflow.backends import BackendSpec
    from neuroflow.doctor import Check
    from neuroflow.security.model import Action, ActionContext, AuditEvent, Verdict

PROJECT_NAME = "neuroflow"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- registration: backends --------------------------------------------------------


@hookspec
def neuroflow_isolation_backends() -> list[BackendSpec]:
    """Return the sandbox (isolation) backends this plugin provides.

    Called once, when a sandbox backend is first looked up.  The factory receives the
    backend's config object (an instance of ``config_class``) and returns an object that
    satisfies :class:`neuroflow.sandbox.IsolationBackend`.  All results are collected.

    Example::

        @hookimpl
        def neuroflow_isolation_backends():
            return [BackendSpec(
                name="firejail", kind="isolation",
                factory="neuroflow_firejail.backend:FirejailBackend",
                config_class="neuroflow.sandbox:SandboxConfig",
                description="Run commands under firejail",
            )]
    """


@hookspec
def neuroflow_memory_stores() -> list[BackendSpec]:
    """Return the memory stores this plugin provides.

    The factory receives the store's config object and returns an object that satisfies
    :class:`neuroflow.memory.MemoryStore`.  All results are collected.

    Example::

        @hookimpl
        def neuroflow_memory_stores():
            return [BackendSpec(
                name="redis", kind="memory",
                factory="neuroflow_redis.store:RedisStore",
                config_class="neuroflow_redis.store:RedisStoreConfig",
            )]
    """


@hookspec
def neuroflow_embedders() -> list[BackendSpec]:
    """Return the text embedders this plugin provides, for semantic memory search.

    The factory receives the embedder's config object and returns an object that
    satisfies :class:`neuroflow.memory.Embedder`.  All results are collected.

    Example::

        @hookimpl
        def neuroflow_embedders():
            return [BackendSpec(name="my-model", kind="embedder",
                                factory="my_pkg.embed:MyEmbedder")]
    """


@hookspec
def neuroflow_transports() -> list[BackendSpec]:
    """Return the agent-to-agent transports this plugin provides.

    A transport carries messages between agents (in-process, A2A JSON-RPC, A2A gRPC).
    All results are collected.

    Example::

        @hookimpl
        def neuroflow_transports():
            return [BackendSpec(name="a2a-jsonrpc", kind="transport",
                                factory="neuroflow_a2a.jsonrpc:JsonRpcTransport")]
    """


@hookspec
def neuroflow_tracers() -> list[BackendSpec]:
    """Return the tracers this plugin provides (where spans go).

    The factory receives the tracer's config object and returns an object that
    satisfies :class:`neuroflow.observability.Tracer`.  All results are collected.

    Example::

        @hookimpl
        def neuroflow_tracers():
            return [BackendSpec(name="otel", kind="tracer",
                                factory="neuroflow_otel.tracer:OtelTracer",
                                config_class="neuroflow_otel.tracer:OtelConfig")]
    """


@hookspec
def neuroflow_guards() -> list[BackendSpec]:
    """Return the guards this plugin provides.

    A guard inspects an :class:`~neuroflow.security.model.Action` before it runs and
    returns a verdict.  Guards are enabled by name in ``[security] guards = [...]`` and
    their rules live under ``[security.<name>]``.  All results are collected.

    Example::

        @hookimpl
        def neuroflow_guards():
            return [BackendSpec(name="business-hours", kind="guard",
                                factory="my_pkg.guards:BusinessHoursGuard")]
    """


@hookspec
def neuroflow_llm_providers() -> list[BackendSpec]:
    """Return the LLM providers this plugin provides.

    The factory receives the provider's config object and returns an object that
    satisfies :class:`neuroflow.agent.LLMProvider`.  All results are collected.

    Example::

        @hookimpl
        def neuroflow_llm_providers():
            return [BackendSpec(name="anthropic", kind="llm",
                                factory="my_pkg.llm:AnthropicProvider",
                                config_class="my_pkg.llm:AnthropicConfig")]
    """


# --- runtime: security ------------------------------------------------------------


@hookspec
def neuroflow_guard_check(action: Action, context: ActionContext) -> Verdict | None:
    """Judge ``action`` before it runs; return a verdict, or ``None`` to abstain.

    Called for every guarded action (a sandbox command, a tool call, an MCP tool call, a
    delegation to another agent), after the configured guards.  All results are
    collected and a deny from any of them wins over every allow.  Keep it fast: it
    runs on every action.

    Example::

        @hookimpl
        def neuroflow_guard_check(action, context):
            if action.kind == "tool" and action.target == "rm_rf":
                return Verdict.deny("no-rm-rf", "this tool is never allowed")
            return None
    """


@hookspec
def neuroflow_audit_event(event: AuditEvent) -> None:
    """Observe an audit event after it has been written to the audit log.

    Called once per recorded event (a guard decision, an action's outcome).  Use it to
    forward events elsewhere; an exception here is logged and does not undo the record.

    Example::

        @hookimpl
        def neuroflow_audit_event(event):
            if event.decision == "deny":
                alert(event.actor, event.action)
    """


# --- runtime: tooling ----------------------------------------------------------------


@hookspec
def neuroflow_cli_commands(cli: click.Group) -> None:
    """Add subcommands to the ``neuroflow`` command-line tool.

    Called once when the CLI starts, with the root ``click`` group.

    Example::

        @hookimpl
        def neuroflow_cli_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello")
    """


@hookspec
def neuroflow_doctor_checks() -> list[Check]:
    """Return what this plugin needs from the machine, checked by ``neuroflow doctor``.

    Each :class:`~neuroflow.doctor.Check` names a capability, whether it is present and
    what to do if it is not.  All results are collected.

    Example::

        @hookimpl
        def neuroflow_doctor_checks():
            ok = shutil.which("firejail") is not None
            return [Check("firejail binary", ok, "apt-get install firejail")]
    """
