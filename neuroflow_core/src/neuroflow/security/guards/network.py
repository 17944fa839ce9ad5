"""The ``network`` guard: whether and where actions may connect.

``[security.network]``::

    enabled = true                          # false: every network action is denied
    allow_hosts = ["api.example.com", "*.pypi.org", "10.0.0.0/8"]
    deny_hosts = ["169.254.169.254"]
    ports = [443]                           # empty: any port
    examples = [{target = "evil.com:443", expect = "deny"}]

    [[security.network.rules]]
    name = "researcher-web"
    effect = "allow"
    hosts = ["*.wikipedia.org"]
    actors = ["researcher"]

``*.example.com`` matches every subdomain (``a.example.com``, ``a.b.example.com``) but
not ``example.com`` itself; list both for both.  An entry that parses as an IP network
(``10.0.0.0/8``, ``::1``) matches addresses in it.  Host names are compared
case-insensitively, without a trailing dot.

The guard judges ``network`` actions (target = ``host``, ``host:port``, ``[v6]:port`` or
a URL) and, on any action, the hosts in ``resources["hosts"]``.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import attrs

from neuroflow.security.model import Action, ActionContext, ActionKind, Verdict
from neuroflow.security.rules import (
    Effect,
    RuleExample,
    check_examples,
    compile_globs,
    enum_converter,
)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "ssh": 22}


@attrs.frozen
class HostRule:
    """A named rule about hosts.

    Attributes:
        name: the rule's name, shown in verdicts and the audit log.
        effect: ``"allow"`` or ``"deny"``.
        hosts: host globs or IP networks.
        ports: the ports it covers (empty: all).
        actors: the actors (globs) it applies to.
        examples: actions with the verdict this rule must produce.
    """

    name: str
    effect: Effect = attrs.field(converter=enum_converter(Effect, "effect"))
    hosts: tuple[str, ...]
    ports: tuple[int, ...] = ()
    actors: tuple[str, ...] = ("*",)
    examples: tuple[RuleExample, ...] = ()


@attrs.frozen
class NetworkConfig:
    """``[security.network]``: network on/off, host allow and deny lists, ports.

    Attributes:
        enabled: ``false`` denies every network action (rule ``network.disabled``).
        allow_hosts: hosts that may be reached; when non-empty, other hosts are denied
            (rule ``network.unlisted-host``).
        deny_hosts: hosts never reached (rule ``network.deny``); deny overrides allow.
        ports: ports that may be used; empty means any (rule ``network.port``).
        rules: further named rules.
        examples: examples for the lists above.
    """

    enabled: bool = True
    allow_hosts: tuple[str, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    rules: tuple[HostRule, ...] = ()
    examples: tuple[RuleExample, ...] = ()

    def __attrs_post_init__(self) -> None:
        NetworkGuard(self)


def parse_target(target: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]:port`` or a URL into (lower-case host, port)."""
    target = target.strip()
    if "://" in target:
        parts = urlsplit(target)
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
        return host.rstrip(".").lower(), port or _DEFAULT_PORTS.get(parts.scheme.lower())
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif target.count(":") == 1:
        host, _, port = target.partition(":")
    else:
        host, port = target, ""
    return host.rstrip(".").lower(), int(port) if port.isdigit() else None


class _HostSet:
    __slots__ = ("globs", "nets")

    def __init__(self, entries: tuple[str, ...]) -> None:
        nets, globs = [], []
        for entry in entries:
            try:
                nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                globs.append(entry.rstrip(".").lower())
        self.nets = nets
        self.globs = compile_globs(globs)

    def match(self, host: str) -> bool:
        if self.globs is not None and self.globs.fullmatch(host):
            return True
        if self.nets:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            return any(address in net for net in self.nets)
        return False


class _Rule:
    __slots__ = ("actors", "effect", "hosts", "name", "ports")

    def __init__(self, name: str, effect: Effect, hosts: tuple[str, ...],
                 ports: tuple[int, ...], actors: tuple[str, ...]) -> None:
        self.name = name
        self.effect = effect
        self.hosts = _HostSet(hosts)
        self.ports = frozenset(ports)
        self.actors: re.Pattern[str] | None = (None if actors == ("*",)
                                               else compile_globs(actors))

    def matches(self, host: str, port: int | None, actor: str) -> bool:
        if self.actors is not None and not self.actors.fullmatch(actor):
            return False
        if self.ports and port not in self.ports:
            return False
        return self.hosts.match(host)


class NetworkGuard:
    """Judges network access by host and port; deny overrides allow."""

    name = "network"

    def __init__(self, config: NetworkConfig | None = None) -> None:
        self.config = config = config or NetworkConfig()
        rules = []
        if config.deny_hosts:
            rules.append(_Rule("network.deny", Effect.DENY, config.deny_hosts, (), ("*",)))
        rules += [_Rule(f"network.{r.name}", r.effect, r.hosts, r.ports, r.actors)
                  for r in config.rules]
        if config.allow_hosts:
            rules.append(_Rule("network.allow", Effect.ALLOW, config.allow_hosts, (), ("*",)))
        self._deny = [r for r in rules if r.effect is Effect.DENY]
        self._allow = [r for r in rules if r.effect is Effect.ALLOW]
        self._ports = frozenset(config.ports)
        examples = {"network.lists": config.examples} if config.examples else {}
        examples.update({f"network.{r.name}": r.examples for r in config.rules if r.examples})
        if examples:
            check_examples(self.name, self.check, ActionKind.NETWORK, examples)

    def check(self, action: Action, context: ActionContext) -> Verdict | None:
        """Judge the hosts an action connects to; abstain if it names none."""
        targets: list[str] = [action.target] if action.kind is ActionKind.NETWORK else []
        if action.resources:
            hosts = action.resources.get("hosts") or ()
            targets += [hosts] if isinstance(hosts, str) else [str(h) for h in hosts]
        if not targets:
            return None
        allowed: Verdict | None = None
        for target in targets:
            verdict = self._judge(str(target), action.actor)
            if verdict is None:
                continue
            if not verdict.allowed:
                return verdict
            allowed = allowed or verdict
        return allowed

    def _judge(self, target: str, actor: str) -> Verdict | None:
        cfg = self.config
        if not cfg.enabled:
            return Verdict.deny("network.disabled", f"network access to {target!r}: "
                                "network is off (security.network.enabled = false)")
        host, port = parse_target(target)
        if not host:
            return Verdict.deny("network.invalid", f"cannot tell the host of {target!r}")
        for rule in self._deny:
            if rule.matches(host, port, actor):
                return Verdict.deny(rule.name, f"host {host!r} is denied")
        if self._ports and port not in self._ports:
            return Verdict.deny("network.port", f"port {port} of {target!r} is not in "
                                f"security.network.ports {sorted(self._ports)}")
        for rule in self._allow:
            if rule.matches(host, port, actor):
                return Verdict.allow(rule.name, f"host {host!r} is allowed")
        if cfg.allow_hosts:
            return Verdict.deny("network.unlisted-host",
                                f"host {host!r} is not in security.network.allow_hosts")
        return None
