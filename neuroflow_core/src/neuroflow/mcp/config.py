"""MCP configuration: the servers to manage and the client's options.

Servers are described once, as :class:`MCPServerConfig`, whatever file they come from:

* ``[mcp.servers.<name>]`` in ``neuroflow.toml`` (the ``[mcp]`` section's settings,
  :class:`MCPSettings`);
* SPEC's ``config.yaml`` (``servers:`` or ``mcp: {servers: ...}``, needs PyYAML);
* the ``mcpServers`` JSON that Claude Desktop, Cursor and VS Code use
  (``{"mcpServers": {"fs": {"command": "npx", "args": [...]}}}``).

:class:`MCPConfigParser` reads the last two; every form goes through the one converter,
so a malformed entry is one line naming the server and the field:
``mcp.servers.fs.timeout_seconds: expected a number, got 'soon' (in config.yaml)``.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from neuroflow.config import file_relative
from neuroflow.errors import ConfigError


class Transport(str, enum.Enum):
    """How NeuroFlow talks to a server."""

    STDIO = "stdio"
    HTTP = "http"
    SSE = "sse"


class NameCollision(str, enum.Enum):
    """What ``list_tools()`` does when two servers offer a tool of the same name.

    ``prefix``: every colliding tool is listed as ``"<server>/<tool>"``; ``first``: the
    first server (in configuration order) keeps the bare name, the others are prefixed;
    ``error``: listing raises, naming both servers.
    """

    PREFIX = "prefix"
    FIRST = "first"
    ERROR = "error"


def _positive(instance: object, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{attribute.name}: expected a positive number of seconds, "
                          f"got {value!r}")


#: Host environment variables every stdio server gets (the rest only through ``env_allow``).
BASE_ENV: tuple[str, ...] = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "USER", "LOGNAME",
                             "SHELL", "TMPDIR")


@attrs.frozen(kw_only=True)
class MCPServerConfig:
    """One MCP server.

    Attributes:
        name: the server's name (the key of its table; filled in by the parser).
        transport: ``"stdio"`` (a local process), ``"http"`` (streamable HTTP) or ``"sse"``.
        command: the program a stdio server runs (``"npx"``, ``"uvx"``, ``"python3"``).
        args: its arguments.
        env: environment variables set for the server (values given here).
        env_allow: host environment variables passed through unchanged; besides these the
            server sees only ``PATH``, ``HOME``, ``LANG`` and the like (:data:`BASE_ENV`),
            so API keys of the host do not leak into third-party servers.
        cwd: the working directory of a stdio server (relative paths are taken from the
            configuration file's folder).
        url: the endpoint of an HTTP or SSE server.
        headers: HTTP headers sent to an HTTP or SSE server.
        auth_token_env: the environment variable holding a bearer token for an HTTP or SSE
            server (``Authorization: Bearer <value>``); the token itself never sits in a file.
        timeout_seconds: how long one request may take before it is cancelled (on the
            server too); ``None`` takes the client's ``default_timeout_seconds``.
        startup_timeout_seconds: how long starting and initialising may take.
        sandbox: run a stdio server inside this isolation backend's limits (``"process"``);
            ``None`` runs it as a plain child process.
        server_type: a free-form label (SPEC's ``server_type="filesystem"``).
        enabled: ``False`` keeps the entry but does not start it.
    """

    name: str = ""
    transport: Transport = Transport.STDIO
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    env_allow: tuple[str, ...] = ()
    cwd: str | None = file_relative(default=None)
    url: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    auth_token_env: str | None = None
    timeout_seconds: float | None = attrs.field(default=None, validator=_positive)
    startup_timeout_seconds: float = attrs.field(default=30.0, validator=_positive)
    sandbox: str | None = None
    server_type: str | None = None
    enabled: bool = True

    def problems(self) -> list[str]:
        """Cross-field problems, each ``"field: what was expected"``."""
        out = []
        if self.transport is Transport.STDIO:
            if not self.command:
                out.append("command: a stdio server needs a command to run")
            if self.url:
                out.append("url: only http and sse servers take a url "
                           "(set transport = \"http\")")
        else:
            if not self.url or not self.url.startswith(("http://", "https://")):
                out.append(f"url: an {self.transport.value} server needs an http(s) URL, "
                           f"got {self.url!r}")
            if self.command:
                out.append("command: only stdio servers run a command")
            if self.sandbox:
                out.append("sandbox: only stdio servers run in a sandbox")
        return out

    def environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a stdio server starts with."""
        host = os.environ if environ is None else environ
        allowed = {k: host[k] for k in (*BASE_ENV, *self.env_allow) if k in host}
        return {**allowed, **self.env}

    def http_headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers sent to an HTTP/SSE server, with the bearer token if configured.

        Raises:
            ConfigError: ``auth_token_env`` names a variable that is not set.
        """
        headers = dict(self.headers)
        if self.auth_token_env:
            host = os.environ if environ is None else environ
            token = host.get(self.auth_token_env)
            if not token:
                raise ConfigError(f"mcp.servers.{self.name}.auth_token_env: the variable "
                                  f"{self.auth_token_env} is not set")
            headers["Authorization"] = f"Bearer {token}"
        return headers


def _named(servers: Mapping[str, Any]) -> dict[str, MCPServerConfig]:
    out = {}
    for name, server in dict(servers).items():
        if isinstance(server, MCPServerConfig) and server.name != name:
            server = attrs.evolve(server, name=name)
        out[name] = server
    return out


@attrs.frozen
class MCPSettings:
    """``[mcp]``: the servers the MCP client manages, by name (``[mcp.servers.<name>]``).

    Attributes:
        servers: each server's configuration; the key is its name.
    """

    servers: Mapping[str, MCPServerConfig] = attrs.field(factory=dict, converter=_named)

    def __attrs_post_init__(self) -> None:
        problems = [f"servers.{name}.{line}" for name, server in self.servers.items()
                    for line in server.problems()]
        if problems:
            raise ConfigError(problems)


@attrs.frozen(kw_only=True)
class MCPConfig:
    """``[mcp.mcp]``: options of the ``mcp`` client backend.

    Attributes:
        default_timeout_seconds: how long one request may take when its server sets no
            ``timeout_seconds``; the request is then cancelled on the server too.
        name_collision: ``"prefix"``, ``"first"`` or ``"error"`` (see :class:`NameCollision`).
        stop_grace_seconds: how long a stopping stdio server may take to exit after its
            stdin closes, before its whole process group is killed.
    """

    default_timeout_seconds: float = attrs.field(default=30.0, validator=_positive)
    name_collision: NameCollision = attrs.field(default=NameCollision.PREFIX,
                                                converter=NameCollision)
    stop_grace_seconds: float = attrs.field(default=2.0, validator=_positive)


class MCPConfigParser:
    """Reads MCP server configuration from YAML, ``mcpServers`` JSON or TOML files.

    Every form becomes an :class:`MCPSettings`; a malformed entry raises
    :class:`~neuroflow.errors.ConfigError` with one line per problem, naming the server,
    the field and the file.
    """

    def parse_from_file(self, path: str | os.PathLike[str]) -> MCPSettings:
        """Parse ``path`` (``.yaml``/``.yml``, ``.json`` or ``.toml``) into servers."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read MCP configuration: {exc.strerror}") from None
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            data = _load_yaml(text, path)
        elif suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: invalid JSON: {exc}") from None
        elif suffix == ".toml":
            import tomllib

            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        else:
            raise ConfigError(f"{path}: expected a .yaml, .yml, .json or .toml file")
        return self.parse(data, source=str(path), folder=path.resolve().parent)

    def parse(self, data: Any, *, source: str = "", folder: Path | None = None) -> MCPSettings:
        """Parse already-loaded data: ``{"mcpServers": ...}``, ``{"servers": ...}``,
        ``{"mcp": {"servers": ...}}`` or ``{"tool": {"neuroflow": {"mcp": ...}}}``."""
        from neuroflow.config import structure

        where = f" (in {source})" if source else ""
        if not isinstance(data, Mapping):
            raise ConfigError(f"mcp: expected a table of servers, got {data!r}{where}")
        data = dict(data.get("tool", {}).get("neuroflow", data)) if "tool" in data else data
        if "mcpServers" in data:
            servers = data["mcpServers"]
            if not isinstance(servers, Mapping):
                raise ConfigError(f"mcpServers: expected a table of servers, got {servers!r}"
                                  f"{where}")
            raw = {"servers": {name: _from_mcp_servers_json(entry)
                               for name, entry in servers.items()}}
        elif "mcp" in data and isinstance(data["mcp"], Mapping):
            raw = {k: v for k, v in data["mcp"].items() if k == "servers"}
        elif "servers" in data:
            raw = {"servers": data["servers"]}
        else:
            raise ConfigError(f"mcp: expected 'servers', 'mcp.servers' or 'mcpServers', "
                              f"found {', '.join(map(str, data)) or 'nothing'}{where}")
        sources = {"mcp": source} if source else None
        settings = structure(raw, MCPSettings, path="mcp", sources=sources)
        if folder is not None:
            settings = MCPSettings({name: _anchor_cwd(server, folder)
                                    for name, server in settings.servers.items()})
        return settings


def _anchor_cwd(server: MCPServerConfig, folder: Path) -> MCPServerConfig:
    if server.cwd and not os.path.isabs(server.cwd) and not server.cwd.startswith("~"):
        return attrs.evolve(server, cwd=str(folder / server.cwd))
    return server


def _from_mcp_servers_json(entry: Any) -> Any:
    """One ``mcpServers`` entry (Claude Desktop / Cursor / VS Code) as our field names."""
    if not isinstance(entry, Mapping):
        return entry  # structure() names the problem
    entry = dict(entry)
    kind = entry.pop("type", None)
    if kind is not None:
        entry["transport"] = {"streamable-http": "http", "streamableHttp": "http"}.get(kind, kind)
    elif "url" in entry:
        entry["transport"] = "http"
    if "envFile" in entry:
        entry.pop("envFile")  # not supported: the environment is explicit and allow-listed
    if "timeout" in entry:  # milliseconds in some clients' files
        entry["timeout_seconds"] = entry.pop("timeout") / 1000 if isinstance(
            entry["timeout"], (int, float)) else entry.pop("timeout")
    for key in ("disabled",):
        if key in entry:
            entry["enabled"] = not entry.pop(key)
    return entry


def _load_yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"{path}: reading YAML needs PyYAML: pip install 'neuroflow[mcp]' "
                          "(or pyyaml)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
