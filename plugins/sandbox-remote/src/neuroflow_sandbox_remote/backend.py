"""``RemoteSandbox``: the ``remote`` isolation backend, the caller's side.

The caller's gate has judged a command (``create_backend`` wraps this backend in the
core's ``GuardedBackend``: guards and audit run here, and a denied command is never
sent).  ``execute`` packs only data -- command, arguments, stdin, environment, timeout,
the configuration digest and the caller's trace context -- and sends it to the least busy
living node's actor; at most ``max_in_flight`` runs go to one node at once.  A node that
dies (or stops answering past the run's timeout plus ``result_grace``) fails that run with
:class:`RemoteNodeError` and gets no more work; cancelling ``execute`` cancels the run on
its node.

Joining the cluster (``ray.init``) is process-wide and happens on the first ``execute``,
in a worker thread, after :func:`~neuroflow_sandbox_remote.auth.check_cluster` has made
sure the cluster enforces Ray's token authentication.  One actor per node serves every
``RemoteSandbox`` of this process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import anyio
import attrs

from neuroflow.errors import ConfigError, SandboxError
from neuroflow.sandbox import SandboxResult
from neuroflow_sandbox_remote import auth, wire
from neuroflow_sandbox_remote.config import RemoteConfig, config_digest, node_options

log = logging.getLogger(__name__)


class RemoteNodeError(SandboxError):
    """A node died, or stopped answering, while it ran a command."""


@attrs.define(eq=False)
class Node:
    """One node of the cluster and its actor (shared by this process's backends)."""

    node_id: str
    address: str
    actor: Any
    alive: bool = True
    in_flight: int = 0
    why_dead: str = ""

    @property
    def label(self) -> str:
        """``"127.0.0.1 (node 1a2b3c4d)"``."""
        return f"{self.address} (node {self.node_id[:8]})"


class _Cluster:
    """This process's connection: the address joined and the actor on each node."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.address: str | None = None
        self.nodes: dict[str, Node] = {}

    def join(self, config: RemoteConfig) -> None:
        """Check the cluster's authentication, then ``ray.init`` (once per process)."""
        import ray

        # Every backend checks the cluster it names, joined or not: a wrong token or a
        # cluster without authentication is refused the same way each time.
        auth.check_cluster(config.address, config.auth_token_file, config.require_token_auth)
        if self.address is not None and ray.is_initialized():
            if self.address != config.address:
                raise ConfigError(
                    f"address: this process already joined the Ray cluster at "
                    f"{self.address}; one process joins one cluster, got {config.address!r}")
            return
        if config.require_token_auth:
            _use_token_auth(config.auth_token_file)
        if not ray.is_initialized():
            with keep_fault_handlers():
                ray.init(address=config.address, namespace=config.namespace,
                         log_to_driver=False, logging_level=logging.WARNING,
                         include_dashboard=False)
        self.address = config.address
        self.nodes = {}

    def refresh(self) -> list[Node]:
        """Start an actor on every living node that has none; the living nodes."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from neuroflow_sandbox_remote.node import NodeAgent

        agent = ray.remote(NodeAgent)
        for info in ray.nodes():
            node_id = info["NodeID"]
            known = self.nodes.get(node_id)
            if not info.get("Alive"):
                if known is not None and known.alive:
                    known.alive, known.why_dead = False, "the cluster reports it dead"
                continue
            if known is not None:
                continue
            actor = agent.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                num_cpus=0, max_restarts=0, max_task_retries=0, max_concurrency=1000,
            ).remote()
            self.nodes[node_id] = Node(node_id, info.get("NodeManagerAddress", "?"), actor)
        return [node for node in self.nodes.values() if node.alive]

    def reset(self) -> None:
        """Forget the connection (after ``ray.shutdown()``)."""
        self.address = None
        self.nodes = {}


CLUSTER = _Cluster()


#: The signals whose handlers turn hardware faults into errors in other libraries of the
#: calling process (wasmtime's traps: SIGILL, SIGSEGV, SIGBUS, SIGFPE).
_FAULT_SIGNALS = (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE)


@contextlib.contextmanager
def keep_fault_handlers() -> Iterator[None]:
    """Restore the process's fault-signal handlers after the block.

    Joining a cluster (``ray.init``) installs Ray's crash reporter on SIGILL, SIGSEGV,
    SIGBUS and SIGFPE without chaining to the handlers already there; a wasmtime trap in
    the same process (the ``wasm`` sandbox) then kills the process instead of raising.
    The handlers are saved and put back with ``sigaction`` (Python's ``signal`` module
    cannot see native handlers)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    saved = {}
    for sig in _FAULT_SIGNALS:
        buffer = ctypes.create_string_buffer(512)  # larger than any struct sigaction
        if libc.sigaction(int(sig), None, buffer) == 0:
            saved[sig] = buffer
    try:
        yield
    finally:
        for sig, buffer in saved.items():
            libc.sigaction(int(sig), buffer, None)


def _use_token_auth(token_file: str | None) -> None:
    """Make this process speak Ray's token authentication (read from the environment:
    ``RAY_AUTH_MODE=token``, the token from ``token_file`` when given)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    if token_file:
        os.environ["RAY_AUTH_TOKEN_PATH"] = token_file
    # Ray caches its configuration and token when first imported: reload both.
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _is_node_failure(exc: BaseException) -> bool:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    return isinstance(exc, (RayActorError, ActorDiedError, ActorUnavailableError))


class RemoteSandbox:
    """Runs commands on a Ray cluster's nodes, each in its warm local backend."""

    def __init__(self, config: RemoteConfig | None = None) -> None:
        self.config = config or RemoteConfig()
        self._options = node_options(self.config)
        self.digest = config_digest(self.config.node_backend, self._options)
        self._nodes: list[Node] = []
        self._connected = False
        self._closed = False
        self._connecting: anyio.Lock | None = None
        self._freed: anyio.Event | None = None

    # --- joining ---------------------------------------------------------------------

    def _connect_sync(self) -> list[Node]:
        import ray

        with CLUSTER.lock:
            CLUSTER.join(self.config)
            held = {node.node_id for node in self._nodes}
            candidates = [node for node in CLUSTER.refresh() if node.node_id not in held]
        refs = {node.node_id: node.actor.acquire.remote(
            self.config.node_backend, self._options, self.digest) for node in candidates}
        ready: list[Node] = []
        problems: list[str] = []
        for node in candidates:
            try:
                ray.get(refs[node.node_id], timeout=self.config.connect_timeout)
                ready.append(node)
            except Exception as exc:  # noqa: BLE001 - reported per node; others may still serve
                if _is_node_failure(exc) or isinstance(exc, ray.exceptions.GetTimeoutError):
                    node.alive, node.why_dead = False, f"{type(exc).__name__}"
                problems.append(f"{node.label}: {_cause(exc)}")
        if not ready and not self._nodes:
            raise SandboxError(
                f"sandbox.remote: no node of the cluster at {self.config.address} could start "
                f"the {self.config.node_backend!r} backend: " + "; ".join(problems or ["no nodes"]))
        for problem in problems:
            log.warning("sandbox.remote: %s", problem)
        return ready

    async def connect(self, *, refresh: bool = False) -> None:
        """Join the cluster and start this configuration's runner on every node
        (``execute`` does it on first use); ``refresh``: also on nodes that joined the
        cluster since."""
        if self._closed:
            raise SandboxError("this remote sandbox is closed")
        if self._connecting is None:
            self._connecting = anyio.Lock()
        async with self._connecting:
            if refresh or not self._connected:
                added = await anyio.to_thread.run_sync(self._connect_sync)
                self._nodes = [*self._nodes, *added]
                self._connected = True

    @property
    def nodes(self) -> list[Node]:
        """The nodes this backend sends work to (living or not)."""
        return list(self._nodes)

    # --- running ---------------------------------------------------------------------

    async def _take(self) -> Node:
        while True:
            living = [node for node in self._nodes if node.alive]
            if not living:
                raise RemoteNodeError(
                    "sandbox.remote: no living node is left: "
                    + "; ".join(f"{node.label} {node.why_dead}" for node in self._nodes))
            node = min(living, key=lambda n: n.in_flight)
            if node.in_flight < self.config.max_in_flight:
                node.in_flight += 1
                return node
            if self._freed is None:
                self._freed = anyio.Event()
            with anyio.move_on_after(0.05):  # other backends free slots of shared nodes
                await self._freed.wait()

    def _give_back(self, node: Node) -> None:
        node.in_flight -= 1
        if self._freed is not None:
            self._freed.set()
            self._freed = None

    async def execute(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> SandboxResult:
        """Run ``command`` on the least busy living node; how it ended there.

        Raises:
            RemoteNodeError: the node died or stopped answering during the run.
            CommandNotAllowedError, UnsupportedLimitError...: the node's backend refused.
        """
        from neuroflow.observability import inject

        if not self._connected:
            await self.connect()
        if isinstance(timeout, bool) or (timeout is not None and (
                not isinstance(timeout, (int, float)) or timeout <= 0)):
            raise ConfigError(f"timeout: expected a number of seconds greater than 0, "
                              f"got {timeout!r}")
        limit = timeout if timeout is not None else self.config.wall_timeout
        wait = None if limit is None else limit + self.config.result_grace
        payload = wire.request(self.digest, command, args, stdin, env, timeout, inject())
        node = await self._take()
        try:
            raw = await self._send(node, payload, wait)
        finally:
            self._give_back(node)
        reply = wire.unpack(raw)
        if "result" in reply:
            return wire.result_from(reply["result"])
        if "error" in reply:
            raise wire.error_from(reply["error"], f"sandbox.remote on {node.label}")
        raise RemoteNodeError(f"sandbox.remote: the run on {node.label} was cancelled there")

    async def _send(self, node: Node, payload: bytes, wait: float | None) -> bytes:
        import ray

        ref = node.actor.run.remote(self.digest, payload)
        try:
            if _on_asyncio():
                import asyncio

                with anyio.fail_after(wait):
                    return await asyncio.wrap_future(ref.future())
            return await anyio.to_thread.run_sync(
                lambda: ray.get(ref, timeout=wait), abandon_on_cancel=True)
        except (TimeoutError, ray.exceptions.GetTimeoutError):
            ray.cancel(ref)
            await self._check_alive(node)
            raise RemoteNodeError(
                f"sandbox.remote: {node.label} gave no answer within {wait:g} s (the run's "
                f"timeout plus result_grace); "
                + ("it is gone" if not node.alive else "it still answers pings")) from None
        except anyio.get_cancelled_exc_class():
            ray.cancel(ref)  # the actor cancels the run, which kills its process tree
            raise
        except Exception as exc:  # noqa: BLE001 - a Ray error wrapping the node's own
            if _is_node_failure(exc):
                node.alive, node.why_dead = False, f"died: {type(exc).__name__}"
                raise RemoteNodeError(
                    f"sandbox.remote: {node.label} died during the run "
                    f"({type(exc).__name__}); the other nodes keep serving") from None
            raise SandboxError(f"sandbox.remote on {node.label}: {_cause(exc)}") from None

    async def _check_alive(self, node: Node) -> None:
        import ray

        def ping() -> None:
            ray.get(node.actor.info.remote(), timeout=2.0)

        try:
            await anyio.to_thread.run_sync(ping, abandon_on_cancel=True)
        except Exception as exc:  # noqa: BLE001 - any failure to answer a ping means gone
            node.alive, node.why_dead = False, f"no answer: {type(exc).__name__}"

    # --- closing ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop this configuration's runners on the nodes; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        nodes, self._nodes = [node for node in self._nodes if node.alive], []
        if not nodes:
            return
        import ray

        def release() -> None:
            refs = [node.actor.release.remote(self.digest) for node in nodes]
            try:
                ray.wait(refs, num_returns=len(refs), timeout=20)
            except Exception as exc:  # noqa: BLE001 - a node going away while closing
                log.warning("sandbox.remote: closing: %s", _cause(exc))

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(release)

    async def __aenter__(self) -> Self:
        """Return the backend itself."""
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        """Close the backend."""
        await self.aclose()

    def __repr__(self) -> str:
        return (f"RemoteSandbox(address={self.config.address!r}, "
                f"node_backend={self.config.node_backend!r}, digest={self.digest[:12]})")


def _on_asyncio() -> bool:
    """Whether this task runs on asyncio (Ray's futures plug into its loop directly)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _cause(exc: BaseException) -> str:
    """The innermost message of a Ray error (a node's own exception)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"
