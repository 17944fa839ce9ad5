"""Every hook a NeuroFlow plugin can implement.

A plugin is a module (or object) registered under the ``neuroflow`` entry-point group.
It implements any of these hooks with ``@neuroflow.hookimpl``.  The built-in backends
register through the very same hooks, so each of them can be blocked or replaced.

Hooks come in two groups:

* **The registration hook** (``neuroflow_backends``) is called once, when the plugin
  manager first needs to know the installed backends.  It returns a list of
  :class:`~neuroflow.backends.BackendSpec`.  They must be cheap: hand over
  names and ``"module:attr"`` references, and import heavy libraries inside the factory.
  All results are collected; a plugin whose hook raises is reported as failed and the
  others keep working.
* **Runtime hooks** (``neuroflow_guard_check``, ``neuroflow_audit_event``, ...) are resolved
  once into plain callables by the component that uses them, because they sit on hot
  paths.

Implementations are called the way pluggy calls them: an implementation may accept any
subset of a hook's arguments, by name, and a failing one is reported under its
plugin's name.
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
def neuroflow_backends() -> list[BackendSpec]:
    """Return every backend this plugin provides, of any kind.

    Called once, when the plugin manager first needs to know the installed backends.
    Each :class:`~neuroflow.BackendSpec` names its kind (``"isolation"``, ``"memory"``,
    ``"embedder"``, ``"tracer"``, ``"guard"``, ``"llm"``: the members of
    :class:`~neuroflow.BackendKind`).  Only :func:`neuroflow.create_backend` calls a
    factory: it reads the backend's ``[<section>.<name>]`` options, checks them against
    ``config_class``, builds the backend and, for kinds that run actions, puts it behind
    the security gate (unless ``enforces_gate=True`` says the factory takes ``gate=`` and
    ``actor=`` and enforces it itself).  The object built must satisfy the kind's
    Protocol (:class:`neuroflow.sandbox.IsolationBackend`,
    :class:`neuroflow.memory.MemoryStore`, ...).  All results are collected; a backend of
    an entry-point plugin replaces a built-in one of the same kind and name.

    Example::

        @hookimpl
        def neuroflow_backends():
            return [
                BackendSpec(
                    name="firejail", kind="isolation",
                    factory="neuroflow_firejail.backend:FirejailBackend",
                    config_class="neuroflow.sandbox:SandboxConfig",
                    description="Run commands under firejail",
                ),
                BackendSpec(name="redis", kind="memory",
                            factory="neuroflow_redis.store:RedisStore",
                            config_class="neuroflow_redis.store:RedisStoreConfig"),
            ]
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
