"""The ``neuroflow_transports`` hookspec: a plugin's transport is listed and built by name."""

from __future__ import annotations

import anyio
import attrs
import pytest

from neuroflow.backends import BackendKind, BackendSpec
from neuroflow.errors import BackendNotFoundError
from neuroflow.hookspecs import hookimpl
from neuroflow.plugins import get_plugin_manager


@attrs.frozen
class LoopbackConfig:
    """Options of the test transport."""

    buffer: int = 8


class LoopbackTransport:
    """Carries messages to itself through an anyio memory stream."""

    def __init__(self, config: LoopbackConfig) -> None:
        self.config = config
        self._send, self._receive = anyio.create_memory_object_stream[dict](config.buffer)

    async def send(self, message: dict) -> None:
        """Queue a message."""
        await self._send.send(message)

    async def receive(self) -> dict:
        """Take the next message."""
        return await self._receive.receive()

    async def aclose(self) -> None:
        """Close both ends."""
        await self._send.aclose()
        await self._receive.aclose()


class TransportPlugin:
    """A plugin object implementing ``neuroflow_transports`` (factory given lazily by name)."""

    @hookimpl
    def neuroflow_transports(self) -> list[BackendSpec]:
        return [
            BackendSpec(
                name="loopback",
                kind="transport",
                factory=f"{__name__}:LoopbackTransport",
                config_class=f"{__name__}:LoopbackConfig",
                description="in-process loopback for tests",
            )
        ]


class BrokenTransportPlugin:
    """A plugin whose hook hands over the wrong kind of backend."""

    @hookimpl
    def neuroflow_transports(self) -> list[BackendSpec]:
        return [BackendSpec(name="confused", kind="tracer", factory=LoopbackTransport)]


def test_registered_transport_is_listed_with_its_plugin() -> None:
    manager = get_plugin_manager()
    manager.register(TransportPlugin(), "test-transport")
    transports = manager.backends("transport")
    spec = transports["loopback"]
    assert spec.kind is BackendKind.TRANSPORT
    assert spec.plugin == "test-transport"
    assert spec.distribution == "(registered at run time)"
    assert spec.description == "in-process loopback for tests"
    info = {i.name: i for i in manager.plugin_infos()}["test-transport"]
    assert info.status == "loaded" and info.provides == {"transport": ["loopback"]}


@pytest.mark.anyio
async def test_registered_transport_is_built_by_create() -> None:
    manager = get_plugin_manager()
    manager.register(TransportPlugin(), "test-transport")
    default = manager.create("transport", "loopback")
    assert isinstance(default, LoopbackTransport) and default.config == LoopbackConfig()
    transport = manager.create(BackendKind.TRANSPORT, "loopback", LoopbackConfig(buffer=2))
    assert transport.config.buffer == 2
    await transport.send({"to": "researcher", "text": "hello"})
    assert await transport.receive() == {"to": "researcher", "text": "hello"}
    await transport.aclose()
    await default.aclose()


def test_a_broken_transport_plugin_is_reported_and_the_others_keep_working() -> None:
    manager = get_plugin_manager()
    manager.register(BrokenTransportPlugin(), "test-broken-transport")
    manager.register(TransportPlugin(), "test-transport")
    assert "loopback" in manager.backends("transport")
    assert "confused" not in manager.backends("transport")
    info = {i.name: i for i in manager.plugin_infos()}["test-broken-transport"]
    assert info.status == "failed"
    assert "neuroflow_transports" in info.error and "'confused' has kind tracer" in info.error


def test_unregistered_transport_names_the_installable_plugin() -> None:
    with pytest.raises(BackendNotFoundError, match=r"pip install 'neuroflow\[a2a\]'"):
        get_plugin_manager().create("transport", "a2a-jsonrpc")
