"""The gRPC binding is an extra: without grpcio it says what to install, and only it does."""

from __future__ import annotations

import sys

import pytest

from neuroflow import create_backend
from neuroflow.errors import MissingPluginError

pytestmark = pytest.mark.anyio


async def test_the_grpc_transport_without_grpcio_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)  # as if grpcio were not installed
    async with create_backend("transport", "grpc", gate=False) as transport:
        with pytest.raises(MissingPluginError, match=r"pip install 'neuroflow\[a2a-grpc\]'"):
            await transport.send("grpc://127.0.0.1:1", "hello", timeout=5)


async def test_the_json_rpc_transport_does_not_need_grpcio(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from neuroflow.a2a import AgentUnavailableError

    monkeypatch.setitem(sys.modules, "grpc", None)
    async with create_backend("transport", "jsonrpc", gate=False) as transport:
        # nothing listens there: the call fails on the network, not on a missing grpcio
        with pytest.raises(AgentUnavailableError):
            await transport.send("http://127.0.0.1:1", "hello", timeout=5)
