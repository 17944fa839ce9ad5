"""``RemoteConfig``: ``[sandbox.remote]`` -- the cluster, the backend each node runs, limits.

Every ``SandboxConfig`` field (limits, ``work_dir``, ``allowed_commands``...) is a field
here too and is enforced on the node by its local backend; ``node_options`` adds options
only that backend knows (``[sandbox.remote.node_options]``, e.g. a namespace setting).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

from neuroflow.config import file_relative
from neuroflow.errors import ConfigError
from neuroflow.sandbox import SandboxConfig

#: The port ``neuroflow cluster up`` gives the head node (Ray's own default, 6379, is
#: Redis's port).
DEFAULT_PORT = 6388


def _check_address(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{attribute.name}: expected 'host:port', got {value!r}")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{attribute.name}: expected 'host:port', got {value!r}")


def _check_name(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not value or value == "remote":
        raise ConfigError(f"{attribute.name}: expected the name of an isolation backend "
                          f"the nodes run ('process', 'namespace', 'wasm'...), got {value!r}")


def _check_positive_int(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name}: expected an integer of at least 1, got {value!r}")


def _check_seconds(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{attribute.name}: expected a number of seconds greater than 0, "
                          f"got {value!r}")


def _check_bool(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{attribute.name}: expected true or false, got {value!r}")


def _check_options(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{attribute.name}: expected a table of options, got {value!r}")


@attrs.frozen(kw_only=True)
class RemoteConfig(SandboxConfig):
    """``[sandbox.remote]``: every ``SandboxConfig`` option, plus where and how to run.

    Attributes:
        address: the cluster's head node, ``"host:port"`` (its GCS address).
        node_backend: the isolation backend each node builds, by name, and runs commands
            in (``"process"``; ``"namespace"`` and ``"wasm"`` where installed on the nodes).
        node_options: options only ``node_backend`` knows, added to the ``SandboxConfig``
            fields this config sets.
        max_in_flight: commands running at once on one node; more wait on the caller.
        auth_token_file: a file holding the cluster's token (default: ``RAY_AUTH_TOKEN``,
            ``RAY_AUTH_TOKEN_PATH`` or Ray's own default file, ``~/.ray/auth_token``).
        require_token_auth: refuse a cluster that does not check tokens.  Turning it off
            lets anyone who reaches the cluster's ports run code on every node.
        connect_timeout: seconds to join the cluster and start the node actors.
        result_grace: seconds past a run's own timeout the caller waits for a node's
            answer before it reports that node lost.
        namespace: the Ray namespace the node actors live in.
    """

    address: str = attrs.field(default=f"127.0.0.1:{DEFAULT_PORT}", validator=_check_address)
    node_backend: str = attrs.field(default="process", validator=_check_name)
    node_options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict,
                                                  validator=_check_options)
    max_in_flight: int = attrs.field(default=8, validator=_check_positive_int)
    auth_token_file: str | None = file_relative(default=None)
    require_token_auth: bool = attrs.field(default=True, validator=_check_bool)
    connect_timeout: float = attrs.field(default=60.0, validator=_check_seconds)
    result_grace: float = attrs.field(default=5.0, validator=_check_seconds)
    namespace: str = attrs.field(default="neuroflow", validator=attrs.validators.instance_of(str))


#: Fields of ``RemoteConfig`` that say how to reach the cluster, not how a node runs.
_REMOTE_ONLY = frozenset(attrs.fields_dict(RemoteConfig)) - frozenset(
    attrs.fields_dict(SandboxConfig))


def node_options(config: RemoteConfig) -> dict[str, Any]:
    """The options the nodes build ``node_backend`` with: the ``SandboxConfig`` fields
    this config sets away from their defaults, then ``node_options`` -- plain data only."""
    from neuroflow.config import get_converter

    converter = get_converter()
    plain = converter.unstructure(config)
    defaults = converter.unstructure(SandboxConfig())
    options = {name: plain[name] for name in attrs.fields_dict(SandboxConfig)
               if name not in _REMOTE_ONLY and plain[name] != defaults[name]}
    options.update(converter.unstructure(dict(config.node_options)))
    return json.loads(json.dumps(options, sort_keys=True))


def config_digest(backend: str, options: Mapping[str, Any]) -> str:
    """SHA-256 of the node backend's name and options in canonical JSON: what a node
    checks before it runs anything for a caller."""
    text = json.dumps({"backend": backend, "options": options}, sort_keys=True,
                      separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()
