"""``SecurityManager``: the :class:`~neuroflow.security.ActionGate` built from config.

Every guarded action goes through :meth:`SecurityManager.authorize`:

1. each configured guard, then each ``neuroflow_guard_check`` hook implementation, judges
   it (``None`` = no opinion); a guard that raises counts as a deny (``<guard>.error``);
2. any deny wins over every allow; with no verdict at all, the security level decides
   (``STRICT``: deny, rule ``level.strict``; ``STANDARD``/``PERMISSIVE``: allow);
3. the decision is written to the audit log, once; if it cannot be written the action is
   refused (:class:`~neuroflow.errors.SecurityError`), whatever the decision was;
4. on deny, :class:`~neuroflow.errors.SecurityError` names the rule and the reason.

:meth:`SecurityManager.record_outcome` then records how the action ended.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs

from neuroflow.errors import SecurityError
from neuroflow.security.audit import AuditLogger
from neuroflow.security.config import SecurityConfig
from neuroflow.security.levels import SandboxSecurityLevel
from neuroflow.security.model import Action, ActionContext, AuditEvent, Decision, Verdict
from neuroflow.security.protocol import ActionGate, Guard

GuardCheck = Callable[[Action, ActionContext], "Verdict | None"]


class SecurityManager:
    """Asks the guards, records every decision, refuses denied actions.

    Args:
        guards: ``(name, guard)`` pairs, asked in order.
        level: decides actions no guard has an opinion on.
        audit: the audit logger; ``None`` records nothing (only for tests and tools that
            must not write a log: the fail-closed guarantee needs a log).
        checks: extra checks asked after the guards, each a callable
            ``check(action, context)`` or a ``(name, check)`` pair; the name is what a
            failure is reported under (the resolved ``neuroflow_guard_check``
            implementations come named by their plugin).
    """

    def __init__(
        self,
        guards: Iterable[tuple[str, Guard]] = (),
        *,
        level: SandboxSecurityLevel | str = SandboxSecurityLevel.STANDARD,
        audit: AuditLogger | None = None,
        checks: Sequence[GuardCheck | tuple[str, GuardCheck]] = (),
    ) -> None:
        self.level = SandboxSecurityLevel(level)
        self.guards: list[tuple[str, Guard]] = list(guards)
        self.audit = audit
        self._checks: list[tuple[str, GuardCheck]] = [(n, g.check) for n, g in self.guards]
        self._checks += [c if isinstance(c, tuple)
                         else (getattr(c, "__name__", None) or "check", c) for c in checks]
        if self.level is SandboxSecurityLevel.STRICT:
            self._default = Verdict.deny("level.strict",
                                         "no rule covers this action and the level is strict")
        else:
            self._default = Verdict.allow(f"level.{self.level.value}",
                                          "no rule covers this action")

    @classmethod
    def from_config(cls, cfg: Any = None, *, manager: Any = None) -> SecurityManager:
        """Build from ``[security]`` of ``cfg`` (default: the process-wide configuration).

        Guards are built with :func:`neuroflow.create_backend`; the
        ``neuroflow_guard_check`` implementations are asked after them, and the
        ``neuroflow_audit_event`` implementations listen to the audit log, each called the
        way pluggy calls it and named by its plugin.
        """
        from neuroflow.backends import BackendKind, create_backend
        from neuroflow.config import get_config
        from neuroflow.plugins import get_plugin_manager

        manager = manager or get_plugin_manager()
        cfg = cfg if cfg is not None else get_config()
        section = cfg.section("security")
        settings: SecurityConfig = section.settings or SecurityConfig()
        guards = [(name, create_backend(BackendKind.GUARD, name, config=cfg))
                  for name in section.selected]
        checks: list[tuple[str, GuardCheck]] = []
        if settings.plugin_checks:
            argnames = manager.hook_argnames("neuroflow_guard_check")
            checks = [(impl.plugin, impl.positional(argnames))
                      for impl in manager.hook_impls("neuroflow_guard_check")]
        audit = None
        if settings.audit.enabled:
            argnames = manager.hook_argnames("neuroflow_audit_event")
            listeners = [_named(impl.positional(argnames), impl.plugin)
                         for impl in manager.hook_impls("neuroflow_audit_event")]
            audit = AuditLogger(settings.audit, listeners=listeners)
            if cfg.notices:
                audit.log_many_sync([
                    AuditEvent(event_type="config_weakened", actor="configuration",
                               action="config_weakened", resource=notice.split(":", 1)[0],
                               details={"notice": notice})
                    for notice in cfg.notices])
        return cls(guards, level=settings.level, audit=audit, checks=checks)

    # --- deciding ----------------------------------------------------------------------

    def check(self, action: Action, context: ActionContext | None = None) -> Verdict:
        """Decide ``action`` without recording anything (deny wins; else allow; else level)."""
        context = context or ActionContext()
        allowed: Verdict | None = None
        for name, check in self._checks:
            try:
                verdict = check(action, context)
            except Exception as exc:  # noqa: BLE001 - a failing guard must fail closed
                return Verdict.deny(f"{name}.error",
                                    f"guard {name!r} failed: {type(exc).__name__}: {exc}")
            if verdict is None:
                continue
            if not isinstance(verdict, Verdict):  # a broken guard must fail closed too
                return Verdict.deny(f"{name}.error", f"guard {name!r} returned "
                                    f"{type(verdict).__name__}, expected a Verdict or None")
            if verdict.decision is Decision.DENY:
                return verdict
            if allowed is None:
                allowed = verdict
        return allowed or self._default

    @staticmethod
    def _decision_details(action: Action, context: ActionContext,
                          verdict: Verdict) -> dict[str, Any]:
        details: dict[str, Any] = {"reason": verdict.reason}
        if action.arguments:
            details["arguments"] = action.arguments
        if action.resources:
            details["resources"] = action.resources
        if context.component:
            details["component"] = context.component
        if context.session_id:
            details["session_id"] = context.session_id
        return details

    @staticmethod
    def _refuse(action: Action, verdict: Verdict) -> SecurityError:
        error = SecurityError(
            f"{action.kind} {action.target!r} by {action.actor!r} denied by rule "
            f"{verdict.rule!r}: {verdict.reason}")
        error.verdict = verdict  # type: ignore[attr-defined]
        error.action = action  # type: ignore[attr-defined]
        return error

    async def authorize(self, action: Action, context: ActionContext | None = None) -> Verdict:
        """Decide, record and enforce ``action``.

        Returns:
            the allow verdict.

        Raises:
            SecurityError: the action was denied (``.verdict`` names the rule), or the
                decision could not be recorded (fail closed).
        """
        context = context or ActionContext()
        verdict = self.check(action, context)
        if self.audit is not None:
            seq = await self.audit.record(
                "guard_decision", action.actor, action.kind.value, action.target,
                verdict.decision.value, verdict.rule, None,
                self._decision_details(action, context, verdict), context.trace_id)
            verdict = attrs.evolve(verdict, audit_seq=seq)
        if verdict.decision is Decision.DENY:
            raise self._refuse(action, verdict)
        return verdict

    def authorize_sync(self, action: Action, context: ActionContext | None = None) -> Verdict:
        """:meth:`authorize` for synchronous callers (blocks while another writer holds the log)."""
        context = context or ActionContext()
        verdict = self.check(action, context)
        if self.audit is not None:
            seq = self.audit.record_sync(
                "guard_decision", action.actor, action.kind.value, action.target,
                verdict.decision.value, verdict.rule, None,
                self._decision_details(action, context, verdict), context.trace_id)
            verdict = attrs.evolve(verdict, audit_seq=seq)
        if verdict.decision is Decision.DENY:
            raise self._refuse(action, verdict)
        return verdict

    def _outcome_event(self, action: Action, context: ActionContext, outcome: str,
                       details: Mapping[str, Any] | None) -> AuditEvent:
        return AuditEvent(
            event_type="action_outcome", actor=action.actor, action=action.kind.value,
            resource=action.target, outcome=outcome, details=dict(details or {}),
            trace_id=context.trace_id,
        )

    async def record_outcome(
        self,
        action: Action,
        context: ActionContext | None,
        outcome: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record how an authorized action ended (``"success"``, ``"error"``, ``"timeout"``...).

        Raises:
            SecurityError: the record could not be written.
        """
        if self.audit is not None:
            await self.audit.log(self._outcome_event(action, context or ActionContext(),
                                                     outcome, details))

    def record_outcome_sync(self, action: Action, context: ActionContext | None, outcome: str,
                            details: Mapping[str, Any] | None = None) -> None:
        """:meth:`record_outcome` for synchronous callers."""
        if self.audit is not None:
            self.audit.log_sync(self._outcome_event(action, context or ActionContext(),
                                                    outcome, details))


class _named:
    """A hook implementation that shows its plugin's name in ``repr`` (for log lines)."""

    __slots__ = ("function", "plugin")

    def __init__(self, function: Callable[..., Any], plugin: str) -> None:
        self.function, self.plugin = function, plugin

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)

    def __repr__(self) -> str:
        return f"<plugin {self.plugin}>"


@asynccontextmanager
async def guarded(
    action: Action,
    context: ActionContext | None = None,
    gate: ActionGate | None = None,
) -> AsyncIterator[Verdict]:
    """Authorize ``action``, run the block, record its outcome.

    Example::

        async with guarded(Action("command", "python3", "agent-1", ["x.py"])):
            result = await run_it()

    The outcome is ``"success"``, or ``"error"`` with the exception's type and message
    (the exception propagates), or ``"cancelled"``.
    """
    gate = gate or get_default_gate()
    context = context or ActionContext()
    verdict = await gate.authorize(action, context)
    try:
        yield verdict
    except BaseException as exc:
        import anyio

        outcome = "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "error"
        with anyio.CancelScope(shield=True):
            await gate.record_outcome(action, context, outcome,
                                      {"error": f"{type(exc).__name__}: {exc}"})
        raise
    await gate.record_outcome(action, context, "success", {})


_default_gate: SecurityManager | None = None
_default_lock = threading.Lock()


def get_default_gate() -> SecurityManager:
    """The process-wide gate, built from the active configuration on first use."""
    global _default_gate
    gate = _default_gate
    if gate is None:
        with _default_lock:
            if _default_gate is None:
                _default_gate = SecurityManager.from_config()
            gate = _default_gate
    return gate


def set_default_gate(gate: SecurityManager | None) -> None:
    """Replace (or, with ``None``, forget so it is rebuilt) the process-wide gate."""
    global _default_gate
    with _default_lock:
        _default_gate = gate


class DefaultGate:
    """An :class:`ActionGate` that forwards to :func:`get_default_gate` at each call.

    Sandboxes and agents built without an explicit ``gate`` use this, so their actions are
    judged by the active configuration's guards and audited, and a later
    :func:`set_default_gate` takes effect for objects that already exist.  Nothing is read
    or built until the first action.
    """

    async def authorize(self, action: Action, context: ActionContext | None = None) -> Verdict:
        """Forward to the process-wide gate's ``authorize``."""
        return await get_default_gate().authorize(action, context)

    async def record_outcome(self, action: Action, context: ActionContext | None,
                             outcome: str, details: Mapping[str, Any]) -> None:
        """Forward to the process-wide gate's ``record_outcome``."""
        await get_default_gate().record_outcome(action, context, outcome, details)

    def __repr__(self) -> str:
        return "DefaultGate()"


def resolve_gate(gate: Any, owner: str) -> Any:
    """Turn a component's ``gate`` argument into the gate it uses, or ``None``.

    ``None`` means the configured default (:class:`DefaultGate`); ``False`` means no gate
    at all (nothing judged, nothing audited); anything else must be an ``ActionGate``.
    """
    if gate is None:
        return DefaultGate()
    if gate is False:
        return None
    if not callable(getattr(gate, "authorize", None)) or not callable(
            getattr(gate, "record_outcome", None)):
        from neuroflow.errors import ConfigError

        raise ConfigError(
            f"{owner}: gate must be an ActionGate (async authorize(action, context) and "
            f"record_outcome(...)), None for the configured default or False for none; "
            f"got {type(gate).__name__}")
    return gate
