"""``neuroflow a2a serve|card|call``: publish an agent, read a card, ask an agent."""

from __future__ import annotations

import importlib
import json
import os
import runpy
from typing import Any

import click

from neuroflow.errors import ConfigError


def load_agent(reference: str) -> Any:
    """The agent ``module:attr`` or ``file.py:attr`` names (a callable is called first, so
    a factory function works too)."""
    target, _, attribute = reference.rpartition(":")
    if not target or not attribute:
        raise ConfigError(f"AGENT: expected module:attribute or file.py:attribute, "
                          f"got {reference!r}")
    try:
        if target.endswith(".py"):
            namespace = runpy.run_path(target)
        else:
            namespace = vars(importlib.import_module(target))
    except (ImportError, OSError) as exc:
        raise ConfigError(f"AGENT: cannot load {target!r}: {exc}") from None
    if attribute not in namespace:
        raise ConfigError(f"AGENT: {target!r} has no attribute {attribute!r}")
    value = namespace[attribute]
    if callable(value) and not hasattr(value, "handle") and not hasattr(
            value, "execute_with_collaboration"):
        value = value()
    return value


@click.group("a2a")
def a2a_group() -> None:
    """Agent-to-agent (A2A 1.0): serve an agent, read an agent card, ask an agent."""


@a2a_group.command("serve")
@click.argument("agent")
@click.option("--transport", default=None,
              help="jsonrpc (JSON-RPC + HTTP+JSON, the default), http-json or grpc.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=int)
@click.option("--grpc-port", type=int, default=None, help="Serve gRPC on this port too.")
@click.option("--id", "agent_id", default=None, help="The agent's id (default: its name).")
@click.option("--capability", "capabilities", multiple=True,
              help="A capability the card lists (repeat for several).")
@click.option("--token-env", default="NEUROFLOW_A2A_TOKEN", show_default=True,
              help="Variable holding the bearer token (or API key) callers must send.")
@click.option("--open", "open_", is_flag=True, help="Serve without authentication.")
@click.option("--register", is_flag=True,
              help="Register in the configured [registry] and send heartbeats.")
@click.option("--ttl", type=float, default=30.0, show_default=True,
              help="With --register: seconds without a heartbeat before it drops out.")
def serve(agent: str, transport: str | None, host: str, port: int, grpc_port: int | None,
          agent_id: str | None, capabilities: tuple[str, ...], token_env: str,
          open_: bool, register: bool, ttl: float) -> None:
    """Publish AGENT (module:attr or file.py:attr: an AINativeAgent, an orchestrator, or
    a function returning one) as an A2A server until interrupted.

    With --register it is registered (by its card) in the configured registry -- a shared
    ``sql`` one, for other processes to find it -- with a heartbeat every third of --ttl,
    so it drops out of discovery soon after it dies."""
    if ttl <= 0:
        raise ConfigError(f"--ttl: expected a number of seconds > 0, got {ttl!r}")
    import anyio

    from neuroflow.a2a.facade import serve_agent

    token = os.environ.get(token_env) or None
    if token is None and not open_:
        raise ConfigError(f"serve: set a token in {token_env} (callers send it as "
                          f"'Authorization: Bearer <token>' or 'X-API-Key'), or pass "
                          f"--open to serve without one")
    target = load_agent(agent)

    async def run() -> None:
        options: dict[str, Any] = {"bearer_token": token, "api_key": token}
        if grpc_port is not None:
            options["grpc_port"] = grpc_port
        handle = await serve_agent(target, transport=transport, host=host, port=port,
                                   agent_id=agent_id, capabilities=capabilities, **options)
        async with handle:
            if not register:
                click.echo(f"serving {handle.url} (card: {handle.card_url})", err=True)
                await anyio.sleep_forever()
            from neuroflow.a2a.registry import AgentRegistryService

            async with AgentRegistryService() as registry:
                entry = await registry.register_card(handle.url, agent_id=agent_id,
                                                     capabilities=capabilities,
                                                     ttl_seconds=ttl)
                click.echo(f"serving {handle.url} (card: {handle.card_url}), registered "
                           f"as {entry.id}", err=True)
                try:
                    while True:
                        await anyio.sleep(ttl / 3)
                        await registry.heartbeat(entry.id)
                finally:
                    with anyio.CancelScope(shield=True):
                        await registry.unregister(entry.id)

    try:
        anyio.run(run)
    except KeyboardInterrupt:
        pass


@a2a_group.command("card")
@click.argument("url")
@click.option("--transport", default=None, help="The transport that fetches it.")
def card(url: str, transport: str | None) -> None:
    """Fetch, validate and print the agent card at URL."""
    import anyio

    from neuroflow.a2a.registry import AgentRegistryService

    async def run() -> Any:
        async with AgentRegistryService(backend="memory", transport=transport) as registry:
            registration = await registry.register_card(url)
            return registration.metadata.get("card")

    click.echo(json.dumps(anyio.run(run), indent=2, sort_keys=True))


@a2a_group.command("call")
@click.argument("url")
@click.argument("message")
@click.option("--transport", default=None, help="jsonrpc, http-json or grpc.")
@click.option("--timeout", default=30.0, show_default=True, type=float)
def call(url: str, message: str, transport: str | None, timeout: float) -> None:
    """Send MESSAGE to the agent at URL and print its answer (a delegation by actor
    ``cli``: guarded and audited)."""
    import anyio

    from neuroflow.a2a.transports import TransportPool, transport_for

    async def run() -> Any:
        pool = TransportPool(actor="cli", default=transport)
        try:
            sender = pool.get(transport_for(url, transport))
            return await sender.send(url, message, timeout=timeout)
        finally:
            await pool.aclose()

    reply = anyio.run(run)
    click.echo(reply.text)
    if reply.state != "completed":
        raise SystemExit(1)
