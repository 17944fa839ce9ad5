"""The plugin manager: finds plugins, knows their backends, calls their hooks.

Plugins are found through the ``neuroflow`` entry-point group; the built-in backends are
registered from :data:`BUILTIN_PLUGINS` through the very same hooks, so any of them can be
blocked (``block = ["neuroflow.sandbox"]``) or replaced by a plugin providing the same
name.  A plugin that fails to import, register or answer a hook is reported by name with
its error and the others keep working.

Selection comes from configuration (``[plugins]``) and from environment variables:

``NEUROFLOW_DISABLE_PLUGIN_AUTOLOAD=1``
    load no entry-point plugins (built-ins still load).
``NEUROFLOW_PLUGINS=a,b``
    load only these entry-point plugins.
``NEUROFLOW_BLOCK_PLUGINS=a,b``
    never load these plugins (built-ins included).

The rest of the code never touches pluggy: it calls :meth:`PluginManager.backends`,
:meth:`PluginManager.get_backend` and the forwarding methods, and builds backends with
:func:`neuroflow.create_backend`.  Hook implementations are called the way pluggy calls
them (:class:`HookImpl`): each receives only the arguments it names, and a failure is
reported under its plugin's name.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from neuroflow import hookspecs
from neuroflow.backends import BackendKind, BackendSpec, install_hint
from neuroflow.errors import (
    BackendNotFoundError,
    MissingPluginError,
    PluginError,
    PluginLoadError,
)

if TYPE_CHECKING:
    import click

    from neuroflow.config import PluginsConfig
    from neuroflow.doctor import Check

ENTRY_POINT_GROUP = "neuroflow"

#: Modules of the core distribution that register built-in backends, by plugin name.
BUILTIN_PLUGINS: dict[str, str] = {
    "neuroflow.sandbox": "neuroflow.sandbox.builtin",
    "neuroflow.memory": "neuroflow.memory.builtin",
    "neuroflow.security": "neuroflow.security.builtin",
    "neuroflow.agent": "neuroflow.agent.builtin",
    "neuroflow.observability": "neuroflow.observability.builtin",
    "neuroflow.mcp": "neuroflow.mcp.builtin",
    "neuroflow.a2a": "neuroflow.a2a.builtin",
    "neuroflow.cli": "neuroflow.cli_commands",
}



@attrs.frozen
class HookImpl:
    """One plugin's implementation of a hook, callable with pluggy's semantics.

    Attributes:
        plugin: the name of the plugin that implements it (used in every error).
        function: the implementation itself.
        argnames: the hook arguments it accepts (any subset of the spec's, in its order).
    """

    plugin: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]

    def __call__(self, **kwargs: Any) -> Any:
        """Call with the hook's arguments by name; only those it accepts are passed."""
        return self.function(*[kwargs[name] for name in self.argnames])

    def positional(self, spec_argnames: tuple[str, ...]) -> Callable[..., Any]:
        """A plain callable taking the spec's arguments positionally, for hot paths.

        When the implementation takes exactly the spec's arguments it is returned as it
        is (no wrapper, no per-call cost); otherwise a small adapter passes the subset.
        """
        if self.argnames == spec_argnames:
            return self.function
        picks = [spec_argnames.index(name) for name in self.argnames]
        function = self.function
        return lambda *args: function(*[args[i] for i in picks])


@attrs.define
class PluginInfo:
    """What ``neuroflow plugins`` shows about one plugin."""

    name: str
    distribution: str
    version: str
    status: str  # "loaded", "blocked", "failed" or "missing" (required, not installed)
    error: str | None = None
    builtin: bool = False
    provides: dict[str, list[str]] = attrs.Factory(dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return attrs.asdict(self)


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


def _core_version() -> str:
    from neuroflow import __version__

    return __version__


def _canonical(name: str) -> str:
    """Normalise a plugin or distribution name the way packaging does (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@attrs.frozen
class EntryPoint:
    """One entry point of the ``neuroflow`` group, and the distribution that declares it."""

    name: str
    value: str
    dist: str
    version: str

    def load(self) -> Any:
        """Import the module (and attribute) the entry point names."""
        module, _, attribute = self.value.partition(":")
        target: Any = importlib.import_module(module.strip())
        for part in attribute.strip().split(".") if attribute.strip() else ():
            target = getattr(target, part)
        return target


def _metadata_header(folder: str) -> dict[str, str]:
    for name in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                header: dict[str, str] = {}
                for line in fh:
                    if not line.strip():
                        break
                    key, _, value = line.partition(":")
                    header.setdefault(key.strip().lower(), value.strip())
                return header
        except OSError:
            continue
    return {}


def _group_lines(text: str, group: str) -> list[tuple[str, str]]:
    found, inside = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            inside = line == f"[{group}]"
        elif inside and "=" in line:
            name, _, value = line.partition("=")
            found.append((name.strip(), value.split("[", 1)[0].strip()))
    return found


def scan_entry_points(group: str = "neuroflow", path: list[str] | None = None) -> list[EntryPoint]:
    """The entry points of ``group`` of every distribution on ``sys.path``.

    The same answer as ``importlib.metadata.entry_points(group=group)`` (the first
    distribution of a name on the path wins), read straight from the ``.dist-info`` /
    ``.egg-info`` folders: importing ``importlib.metadata`` costs more than the
    scan itself, and this runs in every ``neuroflow`` start-up.
    """
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in sys.path if path is None else path:
        base = entry or "."
        try:
            with os.scandir(base) as listing:
                folders = sorted(e.name for e in listing
                                 if e.name.endswith((".dist-info", ".egg-info")))
        except OSError:  # not a folder (a zip file) or unreadable
            continue
        for folder in folders:
            stem = folder.rpartition(".")[0]
            key = _canonical(stem.split("-")[0])
            if key in seen:
                continue
            seen.add(key)
            full = os.path.join(base, folder)
            try:
                with open(os.path.join(full, "entry_points.txt"), encoding="utf-8") as fh:
                    lines = _group_lines(fh.read(), group)
            except OSError:
                continue
            if not lines:
                continue
            header = _metadata_header(full)
            dist = header.get("name", stem.split("-")[0])
            version = header.get("version", stem.split("-")[1] if "-" in stem else "?")
            found += [EntryPoint(name, value, dist, version) for name, value in lines]
    return found


class PluginManager:
    """Loads plugins and answers which backends exist.

    Args:
        config: the ``[plugins]`` section; ``None`` means defaults plus environment.
        builtins: built-in plugin modules to register (default :data:`BUILTIN_PLUGINS`).
        entry_points: whether to load the ``neuroflow`` entry-point group.
    """

    def __init__(
        self,
        config: PluginsConfig | None = None,
        *,
        builtins: dict[str, str] | None = None,
        entry_points: bool = True,
    ) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._backends: dict[BackendKind, dict[str, BackendSpec]] | None = None
        self._lock = threading.Lock()
        allow = config.allow if config is not None else None
        block = list(config.block) if config is not None else []
        autoload = config.autoload if config is not None else True
        env_allow = _env_list("NEUROFLOW_PLUGINS")
        if env_allow is not None:
            allow = tuple(env_allow)
        block += _env_list("NEUROFLOW_BLOCK_PLUGINS") or []
        if os.environ.get("NEUROFLOW_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0"):
            autoload = False
        self._block = set(block)
        self._allow = set(allow) if allow is not None else None
        for name, module in (BUILTIN_PLUGINS if builtins is None else builtins).items():
            self._load_module(name, module, "neuroflow", _core_version(), builtin=True)
        if entry_points and autoload:
            self._load_entry_points()
        self._required: tuple[str, ...] = tuple(config.required) if config is not None else ()
        for problem, name in self._required_problems(self._required):
            if name is not None and _canonical(name) not in {
                _canonical(n) for n in self._infos
            }:
                self._infos[name] = PluginInfo(name, name, "", "missing", error=problem)

    # --- loading ---------------------------------------------------------------

    def _load_module(
        self, name: str, module: str | Callable[[], Any], dist: str, version: str, *, builtin: bool
    ) -> None:
        info = PluginInfo(name, dist, version, "loaded", builtin=builtin)
        self._infos[name] = info
        if name in self._block:
            info.status = "blocked"
            self._pm.set_blocked(name)
            return
        try:
            plugin = importlib.import_module(module) if isinstance(module, str) else module()
            self._pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the rest
            info.status = "failed"
            info.error = f"{type(exc).__name__}: {exc}"
            return
        unknown = [
            caller.name
            for caller in self._pm.get_hookcallers(plugin) or []
            if caller.spec is None and caller.name.startswith(f"{hookspecs.PROJECT_NAME}_")
        ]
        if unknown:
            self._pm.unregister(plugin, name=name)
            info.status = "failed"
            hook = unknown[0]
            close = difflib.get_close_matches(hook, self.hook_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            info.error = f"implements unknown hook {hook!r}{hint}"

    def _load_entry_points(self) -> None:
        for ep in scan_entry_points(ENTRY_POINT_GROUP):
            dist, version = ep.dist, ep.version
            if ep.name in self._infos:
                first = self._infos[ep.name]
                self._infos[f"{ep.name} ({dist})"] = PluginInfo(
                    ep.name, dist, version, "failed",
                    error=f"the plugin name {ep.name!r} is already used by "
                    f"{first.distribution}; rename the entry point",
                )
                continue
            if self._allow is not None and ep.name not in self._allow:
                self._infos[ep.name] = PluginInfo(
                    ep.name, dist, version, "blocked", error="not in the allow list"
                )
                continue
            self._load_module(ep.name, ep.load, dist, version, builtin=False)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object at run time (tests, applications embedding plugins).

        Raises :class:`PluginError` if a plugin of that name is already known.  A plugin
        that fails to register is reported like any other (``plugin_infos()``).
        """
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if name in self._infos:
            raise PluginError(f"a plugin named {name!r} is already registered; pass another name")
        self._load_module(name, lambda: plugin, "(registered at run time)", "", builtin=False)
        with self._lock:
            self._backends = None

    def check_required(self, required: Iterable[str] | None = None) -> None:
        """Raise :class:`MissingPluginError` unless every requirement is loaded.

        A requirement is a plugin or distribution name with an optional version
        specifier: ``"neuroflow-sandbox-wasm>=0.1"``.  ``None`` checks the ``required``
        list of the configuration this manager was built from.
        """
        problems = [p for p, _ in self._required_problems(
            self._required if required is None else required)]
        if problems:
            raise MissingPluginError("\n".join(problems))

    def _required_problems(self, required: Iterable[str]) -> list[tuple[str, str | None]]:
        """``(message, missing name or None)`` for every requirement that is not met."""
        if not required:
            return []
        from packaging.requirements import InvalidRequirement, Requirement

        problems: list[tuple[str, str | None]] = []
        for text in required:
            try:
                req = Requirement(text)
            except InvalidRequirement as exc:
                problems.append(
                    (f"plugins.required: {text!r} is not a requirement: {exc}", None)
                )
                continue
            wanted = _canonical(req.name)
            matches = [
                info
                for info in self._infos.values()
                if wanted in (_canonical(info.name), _canonical(info.distribution))
                and info.status != "missing"
            ]
            loaded = [info for info in matches if info.status == "loaded"]
            if not loaded:
                why = f" ({matches[0].status}: {matches[0].error})" if matches else ""
                fix = "; pip install" if not matches else "; unblock or fix it, or pip install"
                problems.append((
                    f"plugins.required: {req.name!r} is not loaded{why}{fix} '{text}'",
                    None if matches else req.name,
                ))
            elif req.specifier and not any(
                req.specifier.contains(info.version, prereleases=True) for info in loaded
            ):
                problems.append((
                    f"plugins.required: {req.name} {loaded[0].version} is installed but "
                    f"{text!r} is required; pip install '{text}'",
                    None,
                ))
        return problems

    def hook_names(self) -> list[str]:
        """The names of every hook a plugin can implement."""
        return sorted(
            name for name in dir(hookspecs) if name.startswith(f"{hookspecs.PROJECT_NAME}_")
        )

    # --- queries ------------------------------------------------------------------

    def plugin_infos(self) -> list[PluginInfo]:
        """Every plugin seen, with status and (for loaded ones) what it provides."""
        self._all_backends()
        return list(self._infos.values())

    def backends(self, kind: BackendKind | str) -> dict[str, BackendSpec]:
        """Return the installed backends of ``kind`` by name (collected once)."""
        return self._all_backends()[BackendKind(kind)]

    def _all_backends(self) -> dict[BackendKind, dict[str, BackendSpec]]:
        found = self._backends
        if found is None:
            with self._lock:
                found = self._backends
                if found is None:
                    found = self._backends = self._collect()
        return found

    def _collect(self) -> dict[BackendKind, dict[str, BackendSpec]]:
        found: dict[BackendKind, dict[str, BackendSpec]] = {kind: {} for kind in BackendKind}
        for known in self._infos.values():
            known.provides.clear()
        # In registration order (built-ins first), so that an entry-point plugin's
        # backend replaces a built-in one of the same kind and name.
        for impl in self.hook_impls("neuroflow_backends")[::-1]:
            info = self._infos.get(impl.plugin)
            try:
                specs = list(impl() or [])
                for spec in specs:
                    if not isinstance(spec, BackendSpec):
                        raise TypeError(f"expected BackendSpec, got {type(spec).__name__}")
            except Exception as exc:  # noqa: BLE001 - reported, the rest keep working
                self._mark_failed(impl.plugin, "neuroflow_backends", exc)
                continue
            for spec in specs:
                spec.plugin = impl.plugin
                spec.distribution = info.distribution if info else ""
                found[spec.kind][spec.name] = spec
                if info is not None:
                    info.provides.setdefault(spec.kind.value, []).append(spec.name)
        return found

    def _mark_failed(self, plugin: str, hook: str, exc: BaseException) -> PluginInfo | None:
        """Report ``plugin`` as failed in ``hook``; return its info (if known)."""
        info = self._infos.get(plugin)
        if info is not None:
            info.status = "failed"
            info.error = f"{hook}: {type(exc).__name__}: {exc}"
        return info

    def get_backend(self, kind: BackendKind | str, name: str, *, field: str = "") -> BackendSpec:
        """Return the spec of backend ``name``, or raise an error saying what to install.

        ``field`` is the configuration path that selected it, used in the message.
        """
        kind = BackendKind(kind)
        available = self.backends(kind)
        spec = available.get(name)
        if spec is not None:
            return spec
        where = f"{field}: " if field else ""
        installed = ", ".join(sorted(available)) or "none"
        parts = [f"{where}unknown {kind.word} {name!r} (installed: {installed})"]
        close = difflib.get_close_matches(name, list(available), n=1)
        if close:
            parts.append(f"did you mean {close[0]!r}?")
        hint = install_hint(kind, name)
        if hint:
            parts.append(hint)
        blocked = [i.name for i in self._infos.values() if i.status in ("blocked", "failed")]
        if blocked:
            parts.append(f"plugins not loaded: {', '.join(blocked)} (see `neuroflow plugins`)")
        raise BackendNotFoundError("; ".join(parts))

    # --- forwarding for runtime hooks ---------------------------------------------------

    def hook_impls(self, hook_name: str) -> list[HookImpl]:
        """The implementations of a hook, in pluggy's call order (latest registered first).

        Each is a :class:`HookImpl`: call it with the hook's arguments by name (it gets
        only those it accepts), or take :meth:`HookImpl.positional` once for a hot path.
        """
        caller = getattr(self._pm.hook, hook_name)
        return [HookImpl(impl.plugin_name, impl.function, tuple(impl.argnames))
                for impl in caller.get_hookimpls()][::-1]

    def hook_argnames(self, hook_name: str) -> tuple[str, ...]:
        """The arguments of hook ``hook_name``, in the spec's order."""
        return tuple(getattr(self._pm.hook, hook_name).spec.argnames)

    def add_cli_commands(self, cli: click.Group) -> list[PluginInfo]:
        """Let every plugin add its subcommands to ``cli``.

        A plugin whose hook raises is marked failed and returned (so the CLI can warn);
        the others' commands are still added.
        """
        failed: list[PluginInfo] = []
        for impl in self.hook_impls("neuroflow_cli_commands")[::-1]:
            try:
                impl(cli=cli)
            except Exception as exc:  # noqa: BLE001
                info = self._mark_failed(impl.plugin, "neuroflow_cli_commands", exc)
                if info is not None:
                    failed.append(info)
        return failed

    def doctor_checks(self) -> list[Check]:
        """Collect ``neuroflow_doctor_checks`` from every plugin; failures become checks."""
        from neuroflow.doctor import Check

        checks: list[Check] = []
        for impl in self.hook_impls("neuroflow_doctor_checks")[::-1]:
            try:
                checks.extend(impl() or [])
            except Exception as exc:  # noqa: BLE001
                checks.append(Check(f"plugin {impl.plugin}", False, f"{type(exc).__name__}: {exc}"))
        return checks


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """Return the process-wide plugin manager, loaded from the effective configuration."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                from neuroflow.config import get_config

                _manager = PluginManager(get_config().plugins)
    return _manager


def set_plugin_manager(manager: PluginManager | None) -> None:
    """Replace (or, with ``None``, forget) the process-wide plugin manager."""
    global _manager
    with _manager_lock:
        _manager = manager


__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "EntryPoint",
    "HookImpl",
    "PluginInfo",
    "PluginLoadError",
    "PluginManager",
    "get_plugin_manager",
    "scan_entry_points",
    "set_plugin_manager",
]
