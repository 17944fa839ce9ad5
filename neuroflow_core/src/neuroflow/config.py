"""Configuration: one attrs model, one cattrs converter, files + environment + keywords.

Sources, later wins:

1. defaults;
2. ``[tool.neuroflow]`` in ``pyproject.toml``;
3. ``neuroflow.toml`` (or the file named by ``NEUROFLOW_CONFIG``);
4. ``NEUROFLOW_<SECTION>__<KEY>[__<KEY>...]`` environment variables (values are read as TOML
   literals, so ``NEUROFLOW_SANDBOX__PROCESS__CPU_TIME_LIMIT=5`` is an int);
5. keyword arguments to :func:`load_config`.

Files are looked for in the working directory and its parents; the first directory that
holds either file wins.

Each section selects backends by name (``[sandbox] backend = "process"``) and keeps each
backend's options in a table named after it (``[sandbox.process] cpu_time_limit = 5``),
checked against the config class the backend's plugin registered.  Every error names
the path, what was expected and the source of the value.
"""

from __future__ import annotations

import difflib
import enum
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from neuroflow.backends import KNOWN_BACKENDS, BackendKind
from neuroflow.errors import BackendNotFoundError, ConfigError

if TYPE_CHECKING:
    import cattrs

T = TypeVar("T")

ENV_PREFIX = "NEUROFLOW_"
CONFIG_FILE_NAME = "neuroflow.toml"


# --- the one converter ------------------------------------------------------------------


def _strict_int(value: Any, _type: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _strict_float(value: Any, _type: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _strict_bool(value: Any, _type: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _strict_str(value: Any, type_: type) -> Any:
    # str-based enums (``class Level(str, Enum)``) reach this hook too: give them their
    # member, or name the allowed values.
    if type_ is not str and isinstance(type_, type) and issubclass(type_, enum.Enum):
        if isinstance(value, type_):
            return value
        try:
            return type_(value)
        except ValueError:
            known = ", ".join(str(m.value) for m in type_)
            raise ValueError(f"expected one of {known}, got {value!r}") from None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _make_converter() -> cattrs.Converter:
    import cattrs

    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(Path, lambda v, _t: Path(_strict_str(v, str)))
    conv.register_unstructure_hook(Path, str)
    return conv


_converter: cattrs.Converter | None = None


def get_converter() -> cattrs.Converter:
    """The one converter every config class goes through (``neuroflow.config.converter``).

    Built on first use: plugin discovery reads configuration without paying for cattrs.
    """
    global _converter
    if _converter is None:
        _converter = _make_converter()
    return _converter


def __getattr__(name: str) -> Any:
    if name == "converter":  # the converter, created lazily (see get_converter)
        return get_converter()
    raise AttributeError(f"module 'neuroflow.config' has no attribute {name!r}")


def did_you_mean(key: str, known: list[str]) -> list[str]:
    """The known name closest to a mistyped ``key`` (``[]`` if none is close).

    Spelling slips (``cpu_time_limt``) and reordered words (``limit_memory``) both match.
    """
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return close
    words = sorted(key.lower().replace("-", "_").split("_"))
    return [name for name in known if sorted(name.replace("-", "_").split("_")) == words][:1]


def _lookup(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, (list, tuple)) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _problems(exc: BaseException, cls: type, path: list[str]) -> list[tuple[list[str], str]]:
    """Walk a cattrs error tree into ``(path, message)`` pairs."""
    from cattrs.errors import (
        ClassValidationError,
        ForbiddenExtraKeysError,
        IterableValidationError,
    )

    if isinstance(exc, ForbiddenExtraKeysError):
        known = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        out = []
        for key in sorted(exc.extra_fields):
            close = did_you_mean(key, known)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(([*path, key], f"unknown key{hint} (known: {', '.join(known)})"))
        return out
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        out = []
        for sub, note in with_notes:
            out += _problems(sub, cls, [*path, str(note.name)])
        for sub in without:
            out += _problems(sub, cls, path)
        return out
    if isinstance(exc, IterableValidationError):
        with_notes, without = exc.group_exceptions()
        out = []
        for sub, note in with_notes:
            out += _problems(sub, cls, [*path, str(note.index)])
        for sub in without:
            out += _problems(sub, cls, path)
        return out
    if isinstance(exc, BaseExceptionGroup):
        out = []
        for sub in exc.exceptions:
            out += _problems(sub, cls, path)
        return out
    if isinstance(exc, KeyError):
        key = str(exc.args[0])
        # cattrs already put the missing field's name on the path (as the note)
        return [(path if path[-1:] == [key] else [*path, key], "required key is missing")]
    return [(path, str(exc) or type(exc).__name__)]


def structure(
    data: Any,
    cls: type[T],
    *,
    path: str = "",
    sources: Mapping[str, str] | None = None,
) -> T:
    """Turn ``data`` into ``cls`` with the one converter, or raise :class:`ConfigError`.

    Each problem becomes one line: ``sandbox.process.cpu_time_limit: expected an integer,
    got 'lots' (in neuroflow.toml)``.
    """
    if isinstance(data, cls):
        return data
    if attrs.has(cls) and not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__}: expected a table, got {data!r}")
    try:
        return get_converter().structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - re-raised as ConfigError with paths
        base = path.split(".") if path else []
        lines = []
        for parts, message in _problems(exc, cls, base):
            dotted = ".".join(parts) or cls.__name__
            value = _lookup(data, parts[len(base) :])
            if value is not None and not message.startswith(("unknown", "required")) and (
                "got" not in message
            ):
                message = f"{message}, got {value!r}"
            origin = _source_for(dotted, sources)
            lines.append(f"{dotted}: {message}{origin}")
        raise ConfigError(lines) from None


def _source_for(dotted: str, sources: Mapping[str, str] | None) -> str:
    if not sources:
        return ""
    probe = dotted
    while probe:
        if probe in sources:
            return f" (in {sources[probe]})"
        probe = probe.rpartition(".")[0]
    return ""


# --- the model --------------------------------------------------------------------------


@attrs.frozen
class PluginsConfig:
    """``[plugins]``: which plugins load.

    Attributes:
        autoload: load entry-point plugins at all.
        allow: if set, only these entry-point plugins load.
        block: these plugins never load (built-ins included, e.g. ``"neuroflow.sandbox"``).
        required: requirements that must be loaded, e.g. ``"neuroflow-memory-sqlite>=0.1"``.
    """

    autoload: bool = True
    allow: tuple[str, ...] | None = None
    block: tuple[str, ...] = ()
    required: tuple[str, ...] = ()


@attrs.frozen
class SectionSpec:
    """How one configuration section selects backends.

    Attributes:
        kind: the backend kind the section selects.
        default: the default backend name (or names, for a multi-backend section).
        multi: the section enables several backends at once (``guards = [...]``).
        selector: the key that names the backend(s).
        settings: ``"module:Class"`` of the section's own common fields, or ``None``.
    """

    kind: BackendKind
    default: str | tuple[str, ...]
    multi: bool = False
    selector: str = "backend"
    settings: str | None = None


#: The sections of ``neuroflow.toml``, by name.
SECTIONS: dict[str, SectionSpec] = {
    "sandbox": SectionSpec(BackendKind.ISOLATION, "process"),
    "memory": SectionSpec(
        BackendKind.MEMORY, "memory", settings="neuroflow.memory.config:MemoryConfig"
    ),
    "embedder": SectionSpec(BackendKind.EMBEDDER, "lexical"),
    "tracer": SectionSpec(BackendKind.TRACER, "local"),
    "llm": SectionSpec(BackendKind.LLM, "scripted"),
    "security": SectionSpec(
        BackendKind.GUARD,
        ("allowlist", "paths", "network", "tools"),
        multi=True,
        selector="guards",
        settings="neuroflow.security.config:SecurityConfig",
    ),
}


@attrs.frozen
class Section:
    """One section of the effective configuration.

    Attributes:
        name: the section name (``"sandbox"``).
        selected: the selected backend names (one, unless the section is multi).
        settings: the section's common settings object, or ``None``.
        options: each configured backend's options, as its config object (or the raw
            table for a known backend that is not installed).
        sources: where each of this section's values came from (dotted path -> source).
    """

    name: str
    selected: tuple[str, ...]
    settings: Any = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    sources: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def backend(self) -> str:
        """The selected backend (the first, for a multi section)."""
        return self.selected[0]

    def options_for(self, name: str | None = None) -> Any:
        """The config object for backend ``name`` (default: the selected one), or ``None``."""
        return self.options.get(name or self.backend)


@attrs.frozen
class NeuroflowConfig:
    """The effective configuration.

    Attributes:
        plugins: the ``[plugins]`` section.
        sections: every backend-selecting section, by name.
        sources: where each dotted path's value came from (``"neuroflow.toml"``,
            ``"env NEUROFLOW_SANDBOX__BACKEND"``, ``"keyword argument"``); absent means default.
        files: the configuration files that were read.
    """

    plugins: PluginsConfig = attrs.field(factory=PluginsConfig)
    sections: Mapping[str, Section] = attrs.field(factory=dict)
    sources: Mapping[str, str] = attrs.field(factory=dict)
    files: tuple[Path, ...] = ()

    def section(self, name: str) -> Section:
        """Return section ``name``; raise :class:`ConfigError` for an unknown one."""
        try:
            return self.sections[name]
        except KeyError:
            raise ConfigError(f"unknown configuration section {name!r}") from None

    def options(self, section: str, backend: str | None = None) -> Any:
        """The config object of a section's selected (or named) backend."""
        return self.section(section).options_for(backend)

    def as_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data (what ``config show`` prints)."""
        converter = get_converter()
        out: dict[str, Any] = {"plugins": converter.unstructure(self.plugins)}
        for name, sec in self.sections.items():
            spec = SECTIONS[name]
            body: dict[str, Any] = {}
            body[spec.selector] = list(sec.selected) if spec.multi else sec.backend
            if sec.settings is not None:
                body.update(_public(sec.settings, converter.unstructure(sec.settings)))
            for backend, opts in sec.options.items():
                body[backend] = _hide_named_secrets(opts) if isinstance(opts, dict) else _public(
                    opts, converter.unstructure(opts))
            out[name] = body
        return out


def _secret_name(name: str) -> bool:
    from neuroflow.security.config import DEFAULT_REDACT_KEYS

    return any(word in name.lower() for word in DEFAULT_REDACT_KEYS)


def _hide_named_secrets(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: "<hidden>" if isinstance(k, str) and v is not None and _secret_name(k)
                else _hide_named_secrets(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_hide_named_secrets(v) for v in data]
    return data


def _public(obj: Any, data: Any) -> Any:
    """Hide secrets: fields declared ``repr=False`` (API keys, HMAC keys) and, in free-form
    tables (``env``, ``headers``), values under a secret-looking name; recursively."""
    if not attrs.has(type(obj)):
        return _hide_named_secrets(data)
    if not isinstance(data, dict):
        return data
    for field in attrs.fields(type(obj)):
        if field.name not in data:
            continue
        if data[field.name] is not None and (not field.repr or _secret_name(field.name)):
            data[field.name] = "<hidden>"
        else:
            data[field.name] = _public(getattr(obj, field.name), data[field.name])
    return data


# --- reading sources ----------------------------------------------------------------------


def _merge(
    dst: dict[str, Any], src: Mapping[str, Any], label: str, sources: dict[str, str], prefix: str
) -> None:
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, label, sources, dotted + ".")
        else:
            dst[key] = dict(value) if isinstance(value, Mapping) else value
            sources[dotted] = label
            if isinstance(value, Mapping):
                _mark(value, label, sources, dotted + ".")


def _mark(src: Mapping[str, Any], label: str, sources: dict[str, str], prefix: str) -> None:
    for key, value in src.items():
        sources[f"{prefix}{key}"] = label
        if isinstance(value, Mapping):
            _mark(value, label, sources, f"{prefix}{key}.")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None


def _trusted(path: Path) -> bool:
    """Whether a configuration file may be read: owned by this user or by root.

    Like git's ``safe.directory``: a file someone else planted (say in ``/tmp`` above the
    project) must not switch guards off or point the LLM client at their server.
    """
    try:
        owner = path.stat().st_uid
    except OSError:
        return False
    if owner in (os.geteuid(), 0):
        return True
    import warnings

    warnings.warn(f"ignoring {path}: it belongs to another user (uid {owner}); "
                  f"set NEUROFLOW_CONFIG={path} to use it anyway", stacklevel=3)
    return False


def find_config_files(start: Path | None = None) -> list[Path]:
    """Return ``[pyproject.toml?, neuroflow.toml?]`` from the nearest directory holding either.

    The search goes from ``start`` (the working directory) up to the repository root (the
    first directory with a ``.git``) and no further; files owned by another user are
    skipped with a warning.  ``NEUROFLOW_CONFIG`` names one file
    explicitly and disables the search.
    """
    explicit = os.environ.get("NEUROFLOW_CONFIG")
    if explicit:
        return [Path(explicit)]
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        found = [p for p in (pyproject, folder / CONFIG_FILE_NAME) if p.is_file() and _trusted(p)]
        if pyproject in found and "neuroflow" not in _read_toml(pyproject).get("tool", {}):
            found.remove(pyproject)
        if found:
            return found
        if (folder / ".git").exists():
            break  # the repository root: configuration above it belongs to someone else
    return []


def _file_data(path: Path) -> dict[str, Any]:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        return data.get("tool", {}).get("neuroflow", {})
    return data


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_data(environ: Mapping[str, str], sources: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _env_value(raw)
        sources[".".join(parts)] = f"env {name}"
    return out


def _raw_config(
    files: list[Path] | None, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str], list[Path]]:
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    paths = find_config_files() if files is None else list(files)
    for path in paths:
        _merge(merged, _file_data(path), str(path.name if path.parent == Path.cwd() else path),
               sources, "")
    env_sources: dict[str, str] = {}
    env = _env_data(environ, env_sources)
    _merge(merged, env, "env", sources, "")
    sources.update(env_sources)
    _merge(merged, overrides, "keyword argument", sources, "")
    return merged, sources, paths


def _structure_plugins(raw: Mapping[str, Any], sources: Mapping[str, str]) -> PluginsConfig:
    if not raw.get("plugins"):
        return PluginsConfig()
    return structure(raw.get("plugins", {}), PluginsConfig, path="plugins", sources=sources)


def load_plugins_config(environ: Mapping[str, str] | None = None) -> PluginsConfig:
    """Read only ``[plugins]`` (the plugin manager needs it before anything else)."""
    raw, sources, _ = _raw_config(None, os.environ if environ is None else environ, {})
    return _structure_plugins(raw, sources)


def _load_ref(ref: str) -> type:
    from neuroflow.backends import _resolve

    return _resolve(ref, "settings class", ref)


def _build_section(
    name: str, raw: Any, sources: Mapping[str, str], manager: Any
) -> Section:
    spec = SECTIONS[name]
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a table, got {raw!r}{_source_for(name, sources)}")
    raw = dict(raw)
    problems: list[str] = []
    selected_raw = raw.pop(spec.selector, spec.default)
    if spec.multi:
        if isinstance(selected_raw, str) or not isinstance(selected_raw, (list, tuple)):
            where = _source_for(f"{name}.{spec.selector}", sources)
            problems.append(f"{name}.{spec.selector}: expected a list of names, "
                            f"got {selected_raw!r}{where}")
            selected: tuple[str, ...] = ()
        else:
            selected = tuple(selected_raw)
    elif not isinstance(selected_raw, str):
        problems.append(f"{name}.{spec.selector}: expected a backend name, got {selected_raw!r}"
                        f"{_source_for(f'{name}.{spec.selector}', sources)}")
        selected = ()
    else:
        selected = (selected_raw,)

    installed = manager.backends(spec.kind)
    for backend in selected:
        if backend not in installed:
            try:
                manager.get_backend(spec.kind, backend, field=f"{name}.{spec.selector}")
            except BackendNotFoundError as exc:
                problems.append(str(exc) + _source_for(f"{name}.{spec.selector}", sources))

    settings_cls = _load_ref(spec.settings) if spec.settings else None
    settings_fields = {a.name for a in attrs.fields(settings_cls)} if settings_cls else set()
    settings_raw = {k: raw.pop(k) for k in list(raw) if k in settings_fields}

    options: dict[str, Any] = {}
    for key, value in raw.items():
        if key in installed:
            config_cls = installed[key].load_config_class()
            if config_cls is None:
                if value:
                    problems.append(f"{name}.{key}: backend {key!r} takes no options")
                continue
            try:
                options[key] = structure(value, config_cls, path=f"{name}.{key}", sources=sources)
            except ConfigError as exc:
                problems += exc.problems
        elif (spec.kind, key) in KNOWN_BACKENDS and isinstance(value, Mapping):
            options[key] = dict(value)  # options for a known backend that is not installed
        else:
            known = sorted(settings_fields | set(installed) | {spec.selector})
            close = did_you_mean(key, known)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"{name}.{key}: unknown key{hint} (known: {', '.join(known)})"
                f"{_source_for(f'{name}.{key}', sources)}"
            )
    for backend in selected:
        if backend in installed and backend not in options:
            config_cls = installed[backend].load_config_class()
            if config_cls is not None:
                options[backend] = config_cls()

    settings = None
    if settings_cls is not None:
        try:
            settings = structure(settings_raw, settings_cls, path=name, sources=sources)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    own = {path: origin for path, origin in sources.items()
           if path == name or path.startswith(name + ".")}
    return Section(name, selected, settings, options, own)


def load_section(
    name: str,
    *,
    files: list[Path] | None = None,
    environ: Mapping[str, str] | None = None,
    manager: Any = None,
    **overrides: Any,
) -> Section:
    """Load and check only section ``name`` of the effective configuration.

    A capability that needs one section uses this, so a problem in another capability's
    section (or a plugin that failed to load) does not stop it from working.  Arguments
    are those of :func:`load_config`.
    """
    if name not in SECTIONS:
        raise ConfigError(f"unknown configuration section {name!r} "
                          f"(known: {', '.join(SECTIONS)})")
    raw, sources, _ = _raw_config(files, os.environ if environ is None else environ, overrides)
    if manager is None:
        from neuroflow.plugins import get_plugin_manager

        manager = get_plugin_manager()
    return _build_section(name, raw.get(name), sources, manager)


def load_config(
    *,
    files: list[Path] | None = None,
    environ: Mapping[str, str] | None = None,
    manager: Any = None,
    **overrides: Any,
) -> NeuroflowConfig:
    """Load and check the effective configuration.

    Args:
        files: configuration files to read instead of searching (``[]`` reads none).
        environ: the environment to read ``NEUROFLOW_*`` from (default ``os.environ``).
        manager: the plugin manager that knows the installed backends (default: the
            process-wide one).
        **overrides: sections as keyword arguments, e.g. ``sandbox={"backend": "process"}``.

    Raises:
        ConfigError: with one line per problem, each naming the path and the fix.
    """
    raw, sources, paths = _raw_config(files, os.environ if environ is None else environ, overrides)
    problems: list[str] = []
    try:
        plugins = _structure_plugins(raw, sources)
    except ConfigError as exc:
        problems += exc.problems
        plugins = PluginsConfig()
    if manager is None:
        from neuroflow.plugins import get_plugin_manager

        manager = get_plugin_manager()
    if plugins.required:
        from neuroflow.errors import MissingPluginError

        try:
            manager.check_required(plugins.required)
        except MissingPluginError as exc:
            where = _source_for("plugins.required", sources)
            problems += [line + where for line in str(exc).splitlines()]
    sections: dict[str, Section] = {}
    for name in SECTIONS:
        try:
            sections[name] = _build_section(name, raw.get(name), sources, manager)
        except ConfigError as exc:
            problems += exc.problems
    for key in raw:
        if key != "plugins" and key not in SECTIONS:
            known = ["plugins", *SECTIONS]
            close = did_you_mean(key, known)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{key}: unknown section{hint} (known: {', '.join(known)})"
                            f"{_source_for(key, sources)}")
    if problems:
        raise ConfigError(problems)
    return NeuroflowConfig(plugins, sections, sources, tuple(paths))
