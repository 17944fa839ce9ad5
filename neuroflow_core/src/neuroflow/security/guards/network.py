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
(``10.0.0.0/8``, ``::1``) matches addresses in it.

The guard judges ``network`` actions (target = ``host``, ``host:port``, ``[v6]:port`` or
a URL) and, on any action, the hosts in ``resources["hosts"]``.  Targets are read the way
HTTP clients read them, and every spelling of one address is judged as that address:

* a target holding ``/ ? # @ \\`` or ``://`` is parsed as a URL by every parser that is
  installed (``urllib.parse``, ``httpx``, ``urllib3``, and once more with ``\\`` read as
  ``/`` as browsers do); a host any of them finds is judged (deny wins; allow needs all);
* a host is lower-cased, its brackets and trailing dot dropped, and must then be a
  valid host name (letters, digits, ``-``, ``_``, ``.``) or an address: anything else is
  denied (rule ``network.invalid``), so a glob never matches across ``/ ? # @``;
* an address is canonicalised: the ``inet_aton`` forms (``2130706433``, ``0x7f000001``,
  ``0177.0.0.1``, ``127.1``) are IPv4, an IPv4-mapped or -compatible IPv6 address
  (``::ffff:127.0.0.1``) is its IPv4 address, and the unspecified addresses ``0.0.0.0``
  and ``::`` (which reach this host) are judged as the loopback addresses as well;
* with ``resolve = true``, a host name is resolved (``getaddrinfo``) before it is judged,
  and every address it resolves to is judged too (a deny on any denies);
  :meth:`NetworkGuard.judge` returns the addresses judged, so a caller can connect to
  exactly those (pinning them against a DNS answer that changes between check and use).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from functools import lru_cache
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
        resolve: resolve host names (``getaddrinfo``) and judge the addresses too.
    """

    enabled: bool = True
    allow_hosts: tuple[str, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    rules: tuple[HostRule, ...] = ()
    examples: tuple[RuleExample, ...] = ()
    resolve: bool = False

    def __attrs_post_init__(self) -> None:
        NetworkGuard(self)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_HOSTNAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?")
_INET_ATON = re.compile(r"(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}")
_URL_CHARS = ("/", "?", "#", "@", "\\")


@lru_cache(maxsize=4096)
def canonical_address(host: str) -> Address | None:
    """``host`` as an IP address if it spells one (every inet_aton form), else ``None``.

    IPv4-mapped (``::ffff:a.b.c.d``) and IPv4-compatible (``::a.b.c.d``) IPv6 addresses
    give their IPv4 address.
    """
    host = host.strip("[]")
    try:
        address: Address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        if not _INET_ATON.fullmatch(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        value = int(address)
        if 1 < value < 2 ** 32:  # ::a.b.c.d (deprecated IPv4-compatible form)
            return ipaddress.IPv4Address(value)
    return address


def _clean_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".") if host not in (".", "") else ""


def _url_hosts(url: str) -> tuple[list[str], int | None]:
    """The hosts every installed URL parser finds in ``url``, and the port urllib finds."""
    hosts: list[str] = []
    port: int | None = None
    variants = [url] + ([url.replace("\\", "/")] if "\\" in url else [])
    for variant in variants:
        try:
            parts = urlsplit(variant)
            hosts.append(parts.hostname or "")
            try:
                port = port or parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
            except ValueError:
                hosts.append("")  # a port that is not a number: refuse
        except ValueError:
            hosts.append("")
        for parse in _OTHER_PARSERS:
            try:
                hosts.append(parse(variant) or "")
            except Exception:  # noqa: BLE001 - a parser that refuses the URL finds no host
                continue
    return hosts, port


def _httpx_host(url: str) -> str | None:
    import httpx

    return httpx.URL(url).host


def _urllib3_host(url: str) -> str | None:
    from urllib3.util import parse_url

    return parse_url(url).host


def _parsers() -> list:
    found = []
    try:
        import httpx  # noqa: F401

        found.append(_httpx_host)
    except ImportError:
        pass
    try:
        import urllib3  # noqa: F401

        found.append(_urllib3_host)
    except ImportError:
        pass
    return found


_OTHER_PARSERS = _parsers()


@lru_cache(maxsize=4096)
def parse_hosts(target: str) -> tuple[tuple[str, ...], int | None]:
    """Every host ``target`` may reach (see the module docstring) and its port.

    A host that is not a valid host name or address is given as ``""`` (denied).
    """
    target = target.strip()
    if "://" in target or any(c in target for c in _URL_CHARS):
        url = target if "://" in target else "http://" + target
        raw_hosts, port = _url_hosts(url)
    else:
        if target.startswith("["):
            host, _, rest = target[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
            if rest and not rest.startswith(":"):
                host = ""
        elif target.count(":") == 1:
            host, _, port_text = target.partition(":")
        else:
            host, port_text = target, ""
        raw_hosts = [host]
        port = int(port_text) if port_text.isdigit() else None
        if port_text and port is None:
            raw_hosts = [""]
    hosts: list[str] = []
    for raw in raw_hosts:
        host = _clean_host(raw)
        if host and canonical_address(host) is None and not _HOSTNAME.fullmatch(host):
            host = ""
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts), port


def parse_target(target: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]:port`` or a URL into (lower-case host, port).

    The host is the first one found (see :func:`parse_hosts` for all of them); ``""`` when
    the target names no valid host.
    """
    hosts, port = parse_hosts(target)
    return (hosts[0] if len(hosts) == 1 else ("" if "" in hosts else hosts[0])), port


def _addresses_of(host: str, port: int | None) -> tuple[Address, ...]:
    """Every address ``host`` resolves to (none when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return ()
    found: list[Address] = []
    for info in infos:
        address = canonical_address(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    return tuple(found)


@lru_cache(maxsize=4096)
def _judged_forms(host: str) -> tuple[str, Address | None, tuple[Address, ...]]:
    """(name, its address if it is one, the extra addresses it reaches: 0.0.0.0 -> 127.0.0.1)."""
    address = canonical_address(host)
    if address is None:
        return host, None, ()
    extra: tuple[Address, ...] = ()
    if address.is_unspecified:
        extra = ((ipaddress.IPv4Address("127.0.0.1"),) if address.version == 4
                 else (ipaddress.IPv6Address("::1"), ipaddress.IPv4Address("127.0.0.1")))
    return str(address), address, extra


@attrs.frozen
class Judgement:
    """What :meth:`NetworkGuard.judge` decided about one target.

    Attributes:
        verdict: the verdict, or ``None`` (no rule covers it).
        hosts: the canonical hosts found in the target.
        port: its port, if known.
        addresses: the addresses judged (the target's own, and with ``resolve`` on, what
            its names resolved to); connect to one of these.
    """

    verdict: Verdict | None
    hosts: tuple[str, ...]
    port: int | None
    addresses: tuple[str, ...] = ()


class _HostSet:
    __slots__ = ("globs", "nets")

    def __init__(self, entries: tuple[str, ...]) -> None:
        nets, globs = [], []
        for entry in entries:
            text = entry.strip().strip("[]")
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                address = canonical_address(text)  # 127.1, 0x7f000001, ::ffff:1.2.3.4
                if address is not None:
                    nets.append(ipaddress.ip_network(address))
                else:
                    globs.append(entry.rstrip(".").lower())
                continue
            mapped = canonical_address(str(net.network_address)) if net.version == 6 else None
            if mapped is not None and mapped.version == 4 and net.prefixlen >= 96:
                net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}", strict=False)
            nets.append(net)
        self.nets = nets
        self.globs = compile_globs(globs)

    def match(self, host: str, addresses: tuple[Address, ...] = ()) -> bool:
        """Whether the (canonical) ``host`` or any of ``addresses`` is in the set."""
        if self.globs is not None and self.globs.fullmatch(host):
            return True
        if self.nets:
            for address in addresses:
                for net in self.nets:
                    if address.version == net.version and address in net:
                        return True
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

    def matches(self, host: str, port: int | None, actor: str,
                addresses: tuple[Address, ...] = ()) -> bool:
        if self.actors is not None and not self.actors.fullmatch(actor):
            return False
        if self.ports and port not in self.ports:
            return False
        return self.hosts.match(host, addresses)


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
            if isinstance(hosts, (str, bytes, bytearray)):
                hosts = [hosts]  # one host, not its characters (or byte values)
            targets += [h.decode("utf-8", "replace") if isinstance(h, (bytes, bytearray))
                        else str(h) for h in hosts]
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
        return self.judge(target, actor).verdict

    def judge(self, target: str, actor: str = "user") -> Judgement:
        """Judge one target (host, ``host:port``, URL); say which addresses were judged.

        With ``resolve`` on, a caller that connects should use one of
        ``Judgement.addresses``: those are what was judged.
        """
        cfg = self.config
        if not cfg.enabled:
            return Judgement(Verdict.deny(
                "network.disabled", f"network access to {target!r}: "
                "network is off (security.network.enabled = false)"), (), None)
        hosts, port = parse_hosts(target)
        if not hosts or "" in hosts:
            return Judgement(Verdict.deny(
                "network.invalid", f"cannot tell the host of {target!r} (not a valid host "
                "name or address, or URL parsers disagree)"), hosts, port)
        judged: list[tuple[str, tuple[Address, ...]]] = []
        every: list[str] = []
        for host in hosts:
            name, address, extra = _judged_forms(host)
            addresses = ((address,) if address is not None else ()) + extra
            if address is None and cfg.resolve:
                addresses = _addresses_of(name, port)
                if not addresses:
                    return Judgement(Verdict.deny(
                        "network.unresolved", f"host {name!r} of {target!r} does not "
                        "resolve (security.network.resolve = true)"), hosts, port)
            judged.append((name, addresses))
            every += [str(a) for a in addresses if str(a) not in every]
        shown = ", ".join(every)
        for name, addresses in judged:
            for rule in self._deny:
                if rule.matches(name, port, actor, addresses):
                    via = f" (address {shown})" if shown and shown != name else ""
                    return Judgement(Verdict.deny(rule.name, f"host {name!r}{via} is denied"),
                                     hosts, port, tuple(every))
        if self._ports and port not in self._ports:
            return Judgement(Verdict.deny(
                "network.port", f"port {port} of {target!r} is not in "
                f"security.network.ports {sorted(self._ports)}"), hosts, port, tuple(every))
        allowed: Verdict | None = None
        for name, addresses in judged:
            for rule in self._allow:
                if rule.matches(name, port, actor, addresses):
                    allowed = allowed or Verdict.allow(rule.name, f"host {name!r} is allowed")
                    break
            else:
                if cfg.allow_hosts:
                    return Judgement(Verdict.deny(
                        "network.unlisted-host",
                        f"host {name!r} is not in security.network.allow_hosts"),
                        hosts, port, tuple(every))
                if allowed is not None:
                    return Judgement(None, hosts, port, tuple(every))
        return Judgement(allowed, hosts, port, tuple(every))
