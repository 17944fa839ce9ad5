"""Options of the A2A transports (``[a2a.<binding>]``) and registry backends
(``[registry.<backend>]``), checked by the one converter like every other section."""

from __future__ import annotations

from typing import Any

import attrs

from neuroflow.errors import ConfigError


def _positive(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{attribute.name}: expected a number > 0, got {value!r}")


def _retries(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ConfigError(f"{attribute.name}: expected an integer from 0 to 10, got {value!r}")


def _optional_text(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name}: expected a non-empty string, got {value!r}")


@attrs.frozen(kw_only=True)
class TransportConfig:
    """``[a2a.<binding>]``: how NeuroFlow calls other agents.

    Attributes:
        timeout_seconds: the longest one call may take when the collaboration budget
            does not say less.
        connect_retries: how many times a call that could not *connect* is tried again
            (nothing reached the peer, so retrying is safe); a call that reached the peer
            is never retried.
        bearer_token: sent as ``Authorization: Bearer ...`` on every call.
        api_key: sent as ``X-API-Key`` on every call.
    """

    timeout_seconds: float = attrs.field(default=30.0, validator=_positive)
    connect_retries: int = attrs.field(default=1, validator=_retries)
    bearer_token: str | None = attrs.field(default=None, validator=_optional_text,
                                           repr=False)
    api_key: str | None = attrs.field(default=None, validator=_optional_text, repr=False)


@attrs.frozen(kw_only=True)
class MemoryRegistryConfig:
    """``[registry.memory]``: the in-process agent registry.

    Attributes:
        default_ttl_seconds: how long a registration without its own ``ttl_seconds``
            stays alive without a heartbeat; ``None`` keeps it until it is unregistered.
    """

    default_ttl_seconds: float | None = attrs.field(default=None, validator=_positive)
