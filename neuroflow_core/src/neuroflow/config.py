"""Configuration: one attrs model, one cattrs converter, files + environment + keywords.

Sources, later wins:

1. defaults;
2. ``[tool.neuroflow]`` in ``pyproject.toml``;
3. ``neuroflow.toml`` (or the file named by ``NEUROFLOW_CONFIG``);
4. ``NEUROFLOW_<SECTION>__<KEY>[__<KEY>...]`` environment variables (values are read as TOML
   literals, so ``NEUROFLOW_SANDBOX__PROCESS__CPU_TIME_LIMIT=5`` is an int);
5. keyword arguments to :func:`load_config`.

Files are looked for in the working directory and its parents, up to the repository root;
the first directory that holds either file wins.  A relative path in a file (fields
declared with :func:`file_relative`) is taken from that file's folder; sizes (fields typed
:data:`~neuroflow.units.ByteSize`) accept ``"256M"``.

The process reads all of this once (:func:`get_config`; :func:`reload_config` reads it
again), and builds each section the first time it is used, so a problem in one section
does not stop capabilities that do not need it.  :func:`load_config` reads a
configuration of your own and checks every section at once.

Each section selects backends by name (``[sandbox] backend = "process"``) and keeps each
backend's options in a table named after it (``[sandbox.process] cpu_time_limit = 5``),
checked against the config class the backend's plugin registered.  There is one validation
layer: the converter checks types and keys, config classes' validators check values naming
only their field, and every error reaches the user as one line ``path.to.key: what was
expected, got what (in FILE or env VAR)``.
"""

from __future__ import annotations

import difflib
import enum
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from neuroflow.backends import KNOWN_BACKENDS, BackendKind, load_reference
from neuroflow.errors import BackendNotFoundError, ConfigError
from neuroflow.units import ByteSize, parse_size

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


def _structure_size(value: Any, _type: type) -> int:
    if isinstance(value, str):
        return parse_size(value)
    return _strict_int(value, int)


def _make_converter() -> cattrs.Converter:
    import cattrs

    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(Path, lambda v, _t: Path(_strict_str(v, str)))
    conv.register_structure_hook(ByteSize, _structure_size)
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
            out += _problems(sub, exc.cl, [*path, str(note.name)])
        for sub in without:
            out += _problems(sub, exc.cl, path)
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
    if isinstance(exc, ConfigError):
        # A validator of ``cls`` names its field first ("cpu_time_limit: expected ...");
        # put the field under the path, so every message has the one form.
        fields = {a.name for a in attrs.fields(cls)} if attrs.has(cls) else set()
        out = []
        for line in exc.problems:
            field, sep, rest = line.partition(": ")
            head_name = field.split(".", 1)[0]
            if sep and head_name in fields:
                out.append(([*path, *field.split(".")], rest))
            else:
                out.append((path, line))
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
    folders: Mapping[str, Path] | None = None,
) -> T:
    """Turn ``data`` into ``cls`` with the one converter, or raise :class:`ConfigError`.

    Each problem becomes one line: ``sandbox.process.cpu_time_limit: expected an integer,
    got 'lots' (in neuroflow.toml)``.  ``sources`` says where each dotted path's value came
    from; ``folders`` gives, for values read from a file, that file's folder: relative
    paths in fields marked with :func:`file_relative` are resolved against it.
    """
    if isinstance(data, cls):
        return data
    if attrs.has(cls) and not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__}: expected a table, got {data!r}")
    try:
        built = get_converter().structure(data, cls)
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
    if folders:
        built = _anchor(built, path, folders)
    return built


def _source_for(dotted: str, sources: Mapping[str, str] | None) -> str:
    if not sources:
        return ""
    probe = dotted
    while probe:
        if probe in sources:
            return f" (in {sources[probe]})"
        probe = probe.rpartition(".")[0]
    return ""


# --- paths relative to the file that set them -------------------------------------------

#: attrs field metadata key: how to anchor the field's relative value to a folder.
ANCHOR = "neuroflow.anchor"


def _anchor_path(value: Any, folder: Path) -> Any:
    if isinstance(value, Path):
        return value if value.is_absolute() or str(value).startswith("~") else folder / value
    if not isinstance(value, str) or not value or value.startswith("~"):
        return value
    return value if os.path.isabs(value) else str(folder / value)


def _anchor_sqlite_url(value: Any, folder: Path) -> Any:
    prefix = "sqlite:///"
    if not isinstance(value, str) or not value.startswith(prefix):
        return value
    rest = value[len(prefix):]
    database, sep, query = rest.partition("?")
    if not database or database == ":memory:" or database.startswith("/"):
        return value
    return f"{prefix}{folder / database}{sep}{query}"


def file_relative(kind: str = "path", **kwargs: Any) -> Any:
    """An attrs field whose relative value, when read from a file, is taken relative to
    that file's folder rather than the working directory.

    ``kind`` is ``"path"`` (a file or folder path) or ``"sqlite-url"``
    (``sqlite:///relative.db``).  Other ``attrs.field`` arguments pass through.
    """
    how = {"path": _anchor_path, "sqlite-url": _anchor_sqlite_url}[kind]
    metadata = {**kwargs.pop("metadata", {}), ANCHOR: how}
    return attrs.field(metadata=metadata, **kwargs)


def _anchor(obj: Any, path: str, folders: Mapping[str, Path]) -> Any:
    """Resolve ``obj``'s file-relative fields (recursively) against their files' folders.

    Tables of config objects keyed by name (``[mcp.servers.<name>]``) are walked too:
    each value's fields are anchored under ``<path>.<name>``.
    """
    if isinstance(obj, Mapping) and not attrs.has(type(obj)):
        changed = {key: _anchor(value, f"{path}.{key}", folders)
                   for key, value in obj.items() if attrs.has(type(value))}
        if not any(changed[key] is not obj[key] for key in changed):
            return obj
        return type(obj)({**obj, **changed}) if isinstance(obj, dict) else {**obj, **changed}
    if not attrs.has(type(obj)):
        return obj
    changes: dict[str, Any] = {}
    for field in attrs.fields(type(obj)):
        dotted = f"{path}.{field.name}" if path else field.name
        value = getattr(obj, field.name)
        how = field.metadata.get(ANCHOR)
        if how is not None and dotted in folders:
            anchored = how(value, folders[dotted])
        else:
            anchored = _anchor(value, dotted, folders)
        if anchored is not value:
            changes[field.name] = anchored
    return attrs.evolve(obj, **changes) if changes else obj


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


#: The backend-selecting sections of ``neuroflow.toml``, by name (from the kinds table).
SECTIONS: dict[str, BackendKind] = {kind.section: kind for kind in BackendKind}


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
class RawConfig:
    """The merged sources before any checking.

    Attributes:
        data: every source merged, later ones winning.
        sources: where each dotted path's value came from (``"neuroflow.toml"``,
            ``"env NEUROFLOW_SANDBOX__BACKEND"``, ``"keyword argument"``).
        folders: for values read from a file, that file's folder.
        files: the configuration files that were read.
        notices: how the layers lowered security, or tried to while it was locked
            (see :mod:`neuroflow.security.policy`).
    """

    data: Mapping[str, Any]
    sources: Mapping[str, str]
    folders: Mapping[str, Path]
    files: tuple[Path, ...]
    notices: tuple[str, ...] = ()


class NeuroflowConfig:
    """The effective configuration: read once, each section built and checked when first used.

    A problem in one section is reported when that section is used (or by :meth:`check`),
    so it does not stop capabilities that do not need it.

    Attributes:
        plugins: the ``[plugins]`` section (its defaults, if it is invalid: :meth:`check`
            reports the problem).
        sources: where each dotted path's value came from; absent means default.
        files: the configuration files that were read.
    """

    def __init__(self, raw: RawConfig, *, manager: Any = None) -> None:
        self._raw = raw
        self._manager = manager
        self._built: dict[str, Section | ConfigError] = {}
        self._plugins_problem: ConfigError | None = None
        self.plugins = PluginsConfig()
        if raw.data.get("plugins"):
            try:
                self.plugins = structure(raw.data["plugins"], PluginsConfig, path="plugins",
                                         sources=raw.sources)
            except ConfigError as exc:
                self._plugins_problem = exc

    @property
    def sources(self) -> Mapping[str, str]:
        """Where each dotted path's value came from (absent: the default)."""
        return self._raw.sources

    @property
    def files(self) -> tuple[Path, ...]:
        """The configuration files that were read."""
        return self._raw.files

    @property
    def notices(self) -> tuple[str, ...]:
        """How the configuration layers lowered security (one line each, naming the layer)."""
        return self._raw.notices

    def _plugin_manager(self) -> Any:
        if self._manager is None:
            from neuroflow.plugins import get_plugin_manager

            return get_plugin_manager()
        return self._manager

    def section(self, name: str) -> Section:
        """Return section ``name``, built and checked on first use.

        Raises:
            ConfigError: the section is unknown or invalid (every problem, one per line).
        """
        built = self._built.get(name)
        if built is None:
            if name not in SECTIONS:
                raise ConfigError(f"unknown configuration section {name!r} "
                                  f"(known: {', '.join(SECTIONS)})")
            try:
                built = _build_section(SECTIONS[name], self._raw, self._plugin_manager())
            except ConfigError as exc:
                built = exc
            self._built[name] = built
        if isinstance(built, ConfigError):
            raise ConfigError(built.problems)
        return built

    @property
    def sections(self) -> dict[str, Section]:
        """Every section, built (raises :class:`ConfigError` listing every problem)."""
        self.check()
        return {name: self.section(name) for name in SECTIONS}

    def options(self, section: str, backend: str | None = None) -> Any:
        """The config object of a section's selected (or named) backend."""
        return self.section(section).options_for(backend)

    def selection(self, kind: BackendKind) -> tuple[str, ...]:
        """The backend names ``[<section>] <selector>`` chooses (or the kind's default).

        Checks only the selection itself, so a problem in a backend's options table does
        not stop another backend of the section from being built.
        """
        table = self._raw.data.get(kind.section)
        if table is not None and not isinstance(table, Mapping):
            raise ConfigError(f"{kind.section}: expected a table, got {table!r}"
                              f"{_source_for(kind.section, self._raw.sources)}")
        problems: list[str] = []
        chosen = _selection(kind, dict(table or {}), self._raw.sources, problems)
        if problems:
            raise ConfigError(problems)
        return chosen

    def backend_options(self, kind: BackendKind, name: str, config_class: type) -> Any:
        """``[<section>.<name>]`` as a ``config_class`` object, or ``None`` if not set.

        Checks only that table, so a backend chosen by name works even when another
        part of its section is invalid.
        """
        table = self._raw.data.get(kind.section)
        raw = table.get(name) if isinstance(table, Mapping) else None
        if raw is None:
            return None
        return structure(raw, config_class, path=f"{kind.section}.{name}",
                         sources=self._raw.sources, folders=self._raw.folders)

    def check(self) -> None:
        """Build every section; raise one :class:`ConfigError` listing every problem."""
        raw = self._raw
        problems: list[str] = []
        if self._plugins_problem is not None:
            problems += self._plugins_problem.problems
        if self.plugins.required:
            from neuroflow.errors import MissingPluginError

            try:
                self._plugin_manager().check_required(self.plugins.required)
            except MissingPluginError as exc:
                where = _source_for("plugins.required", raw.sources)
                problems += [line + where for line in str(exc).splitlines()]
        for name in SECTIONS:
            try:
                self.section(name)
            except ConfigError as exc:
                problems += exc.problems
        for key in raw.data:
            if key != "plugins" and key not in SECTIONS:
                known = ["plugins", *SECTIONS]
                close = did_you_mean(key, known)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(f"{key}: unknown section{hint} (known: {', '.join(known)})"
                                f"{_source_for(key, raw.sources)}")
        if problems:
            raise ConfigError(problems)

    def as_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data (what ``config show`` prints)."""
        converter = get_converter()
        out: dict[str, Any] = {"plugins": converter.unstructure(self.plugins)}
        for name, sec in self.sections.items():
            kind = SECTIONS[name]
            body: dict[str, Any] = {}
            body[kind.selector] = list(sec.selected) if kind.multi else sec.backend
            if sec.settings is not None:
                body.update(_public(sec.settings, converter.unstructure(sec.settings)))
            for backend, opts in sec.options.items():
                body[backend] = _hide_named_secrets(opts) if isinstance(opts, dict) else _public(
                    opts, converter.unstructure(opts))
            out[name] = body
        return out

    def __repr__(self) -> str:
        files = ", ".join(str(f) for f in self.files) or "no files"
        return f"NeuroflowConfig({files})"


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


def _merge(dst: dict[str, Any], src: Mapping[str, Any], label: str, sources: dict[str, str],
           folders: dict[str, Path], folder: Path | None, prefix: str) -> None:
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, label, sources, folders, folder, dotted + ".")
            continue
        dst[key] = _plain(value)
        for path in _paths(dotted, value):
            sources[path] = label
            if folder is None:
                folders.pop(path, None)
            else:
                folders[path] = folder


def _plain(value: Any) -> Any:
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def _paths(dotted: str, value: Any) -> list[str]:
    """``dotted`` and, for a table, every dotted path below it."""
    out = [dotted]
    if isinstance(value, Mapping):
        for key, sub in value.items():
            out += _paths(f"{dotted}.{key}", sub)
    return out


#: How many times configuration files were read in this process (tests count reads).
files_read = 0


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    global files_read
    files_read += 1
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


def _find_config_data(start: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """The configuration files that apply, each read once, with their NeuroFlow tables."""
    explicit = os.environ.get("NEUROFLOW_CONFIG")
    if explicit:
        path = Path(explicit)
        return [(path, _file_data(path, _read_toml(path)))]
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        found = []
        for path in (folder / "pyproject.toml", folder / CONFIG_FILE_NAME):
            if path.is_file() and _trusted(path):
                data = _read_toml(path)
                if path.name == CONFIG_FILE_NAME or "neuroflow" in data.get("tool", {}):
                    found.append((path, _file_data(path, data)))
        if found:
            return found
        if (folder / ".git").exists():
            break  # the repository root: configuration above it belongs to someone else
    return []


def find_config_files(start: Path | None = None) -> list[Path]:
    """Return ``[pyproject.toml?, neuroflow.toml?]`` from the nearest directory holding either.

    The search goes from ``start`` (the working directory) up to the repository root (the
    first directory with a ``.git``) and no further; files owned by another user are
    skipped with a warning.  ``NEUROFLOW_CONFIG`` names one file explicitly and disables
    the search.
    """
    return [path for path, _ in _find_config_data(start)]


def _file_data(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    if path.name == "pyproject.toml":
        return data.get("tool", {}).get("neuroflow", {})
    return data


def parse_value(raw: str) -> Any:
    """A value given as text (an environment variable, ``--set NAME=VALUE``): a TOML
    literal (``5``, ``1.5``, ``true``, ``"x"``, ``[1, 2]``) or, if it is not one, the text
    itself."""
    import tomllib

    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_data(environ: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node: dict[str, Any] = {}
        top = node
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = parse_value(raw)
        out.append((f"env {name}", top))
    return out


def read_raw_config(files: list[Path] | None = None, environ: Mapping[str, str] | None = None,
                    overrides: Mapping[str, Any] | None = None) -> RawConfig:
    """Read and merge every source once: the system policy, files, environment, keywords.

    Variables that lower security, and files that lower what an earlier file set, are
    noticed (keyword arguments are the program's own choice); once a file locks
    ``[security]`` (``lock = true``), later layers' values for it are ignored (and
    noticed).  The system
    policy (:data:`neuroflow.security.policy.SYSTEM_POLICY`) is read for the process's
    own configuration (``files=None``), before everything else.
    """
    from neuroflow.security import policy

    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, Any], Path | None]] = []
    notices: list[str] = []
    if files is None:
        system = policy.SYSTEM_POLICY
        if system.is_file() and policy.trusted_policy_file(system):
            layers.append((str(system), _read_toml(system), system.parent))
        found = _find_config_data()
        explicit = os.environ.get("NEUROFLOW_CONFIG")
        if explicit:
            hidden = [path for path, data in _searched_without(explicit)
                      if isinstance(data.get("security"), Mapping)]
            notices += policy.explicit_file_hides(explicit, hidden)
    else:
        found = [(Path(p), _file_data(Path(p), _read_toml(Path(p)))) for p in files]
    cwd = Path.cwd()
    layers += [(str(path.name if path.parent == cwd else path), data, path.resolve().parent)
               for path, data in found]
    file_layers = len(layers)
    layers += [(label, data, None) for label, data in _env_data(environ)]
    layers.append(("keyword argument", overrides or {}, None))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    folders: dict[str, Path] = {}
    locked_by: str | None = None
    for index, (label, data, folder) in enumerate(layers):
        security = data.get("security")
        if isinstance(security, Mapping):
            if locked_by is not None:
                notices += policy.locked_out(security, label, locked_by)
                data = {key: value for key, value in data.items() if key != "security"}
            elif label != "keyword argument":  # the program's own explicit choice
                notices += policy.weakenings(merged.get("security") or {}, security, label,
                                             defaults=index >= file_layers)
        _merge(merged, data, label, sources, folders, folder, "")
        if locked_by is None and index < file_layers and (
                (merged.get("security") or {}).get("lock") is True):
            locked_by = label
    if notices:
        import logging

        log = logging.getLogger("neuroflow.security")
        for notice in notices:
            log.warning("configuration lowers security: %s", notice)
    return RawConfig(merged, sources, folders, tuple(path for path, _ in found), tuple(notices))


def _searched_without(explicit: str) -> list[tuple[Path, dict[str, Any]]]:
    """The files the search would have found, had ``NEUROFLOW_CONFIG`` not been set."""
    saved = os.environ.pop("NEUROFLOW_CONFIG", None)
    try:
        return [(path, data) for path, data in _find_config_data()
                if path.resolve() != Path(explicit).resolve()]
    finally:
        if saved is not None:
            os.environ["NEUROFLOW_CONFIG"] = saved


def _settings_class(kind: BackendKind) -> type | None:
    return load_reference(kind.settings, f"[{kind.section}] settings") if kind.settings else None


def _selection(kind: BackendKind, raw: dict[str, Any], sources: Mapping[str, str],
               problems: list[str]) -> tuple[str, ...]:
    name, selector = kind.section, kind.selector
    chosen = raw.pop(selector, kind.default)
    where = _source_for(f"{name}.{selector}", sources)
    if kind.multi:
        if isinstance(chosen, str) or not isinstance(chosen, (list, tuple)) or not all(
                isinstance(item, str) for item in chosen):
            problems.append(f"{name}.{selector}: expected a list of names, got {chosen!r}{where}")
            return ()
        return tuple(chosen)
    if not isinstance(chosen, str):
        problems.append(f"{name}.{selector}: expected a backend name, got {chosen!r}{where}")
        return ()
    return (chosen,)


def _build_section(kind: BackendKind, raw_config: RawConfig, manager: Any) -> Section:
    name = kind.section
    sources, folders = raw_config.sources, raw_config.folders
    raw = raw_config.data.get(name)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected a table, got {raw!r}{_source_for(name, sources)}")
    raw = dict(raw)
    problems: list[str] = []
    selected = _selection(kind, raw, sources, problems)
    installed = manager.backends(kind)
    explicit = f"{name}.{kind.selector}" in sources
    for backend in selected:
        # A default that no plugin provides (no MCP client installed) fails only when used.
        if backend not in installed and (explicit or backend != kind.default):
            try:
                manager.get_backend(kind, backend, field=f"{name}.{kind.selector}")
            except BackendNotFoundError as exc:
                problems.append(str(exc) + _source_for(f"{name}.{kind.selector}", sources))

    settings_cls = _settings_class(kind)
    settings_fields = {a.name for a in attrs.fields(settings_cls)} if settings_cls else set()
    settings_raw = {k: raw.pop(k) for k in list(raw) if k in settings_fields}

    options: dict[str, Any] = {}
    for key, value in raw.items():
        if key in installed:
            config_cls = installed[key].load_config_class()
            if config_cls is None:
                if value:
                    problems.append(f"{name}.{key}: {kind.word} {key!r} takes no options")
                continue
            try:
                options[key] = structure(value, config_cls, path=f"{name}.{key}",
                                         sources=sources, folders=folders)
            except ConfigError as exc:
                problems += exc.problems
        elif (kind, key) in KNOWN_BACKENDS and isinstance(value, Mapping):
            options[key] = dict(value)  # options for a known backend that is not installed
        else:
            known = sorted(settings_fields | set(installed) | {kind.selector})
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
            settings = structure(settings_raw, settings_cls, path=name, sources=sources,
                                 folders=folders)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    own = {path: origin for path, origin in sources.items()
           if path == name or path.startswith(name + ".")}
    return Section(name, selected, settings, options, own)


# --- the process-wide snapshot --------------------------------------------------------------

_snapshot: NeuroflowConfig | None = None
_snapshot_lock = threading.Lock()


def get_config() -> NeuroflowConfig:
    """The process-wide configuration: files and environment read once, on first use.

    Sections are built (and checked) when first used.  Call :func:`reload_config` after
    changing files or ``NEUROFLOW_*`` variables at run time.
    """
    global _snapshot
    snapshot = _snapshot
    if snapshot is None:
        with _snapshot_lock:
            if _snapshot is None:
                _snapshot = NeuroflowConfig(read_raw_config())
            snapshot = _snapshot
    return snapshot


def reload_config() -> None:
    """Forget the process-wide configuration and the security gate built from it; the
    next use reads files and environment again.

    The plugin manager stays (plugins load once per process); to apply a changed
    ``[plugins]`` section too, also call ``neuroflow.plugins.set_plugin_manager(None)``.
    """
    global _snapshot
    with _snapshot_lock:
        _snapshot = None
    from neuroflow.security.manager import set_default_gate

    set_default_gate(None)


def load_config(
    *,
    files: list[Path] | None = None,
    environ: Mapping[str, str] | None = None,
    manager: Any = None,
    check: bool = True,
    **overrides: Any,
) -> NeuroflowConfig:
    """Read a configuration of your own (the process-wide one is :func:`get_config`).

    Args:
        files: configuration files to read instead of searching (``[]`` reads none).
        environ: the environment to read ``NEUROFLOW_*`` from (default ``os.environ``).
        manager: the plugin manager that knows the installed backends (default: the
            process-wide one).
        check: build and check every section now (default); ``False`` defers each
            section's checks to its first use.
        **overrides: sections as keyword arguments, e.g. ``sandbox={"backend": "process"}``.

    Raises:
        ConfigError: with one line per problem, each naming the path and the source.
    """
    config = NeuroflowConfig(read_raw_config(files, environ, overrides), manager=manager)
    if check:
        config.check()
    return config
