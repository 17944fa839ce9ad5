"""``MCPHealthMonitor``: pings servers on an interval, reconnects the ones that fail.

The monitor only uses the :class:`~neuroflow.mcp.MCPClient` protocol (``ping``,
``reconnect``, ``get_all_statuses``), so it works with any MCP backend.  A server is
marked unhealthy after ``failure_threshold`` consecutive failed pings; the monitor then
asks the client to reconnect it, waiting ``backoff_seconds`` (doubling up to
``max_backoff_seconds``) between attempts.  Reconnecting never replays a tool call: a call
that was in flight when the server died came back as an error and stays that way.
"""

from __future__ import annotations

import math
import time
from typing import Any

import anyio


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


class _ServerHealth:
    __slots__ = (
        "backoff",
        "failures",
        "healthy",
        "last_error",
        "latencies",
        "next_attempt",
        "pings",
        "reconnects",
    )

    def __init__(self) -> None:
        self.failures = 0
        self.healthy = True
        self.latencies: list[float] = []
        self.pings = 0
        self.reconnects = 0
        self.backoff = 0.0
        self.next_attempt = 0.0
        self.last_error: str | None = None


class MCPHealthMonitor:
    """Watches the servers of an MCP client.

    Args:
        interval: seconds between rounds of pings.
        failure_threshold: consecutive failed pings before a server is unhealthy.
        ping_timeout: seconds a ping may take before it counts as failed.
        backoff_seconds: wait before the first reconnect attempt; doubles each failure.
        max_backoff_seconds: the longest wait between attempts.
        reconnect: ask the client to reconnect unhealthy servers.
        keep_latencies: how many ping round trips per server the percentiles use.
    """

    def __init__(self, *, interval: float = 30.0, failure_threshold: int = 3,
                 ping_timeout: float = 5.0, backoff_seconds: float = 1.0,
                 max_backoff_seconds: float = 60.0, reconnect: bool = True,
                 keep_latencies: int = 1000) -> None:
        for name, value in (("interval", interval), ("ping_timeout", ping_timeout),
                            ("backoff_seconds", backoff_seconds),
                            ("max_backoff_seconds", max_backoff_seconds)):
            if not value > 0:
                raise ValueError(f"{name}: expected a positive number of seconds, got {value!r}")
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold: expected at least 1, got {failure_threshold!r}")
        self.interval = interval
        self.failure_threshold = failure_threshold
        self.ping_timeout = ping_timeout
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.reconnect = reconnect
        self.keep_latencies = keep_latencies
        self._client: Any = None
        self._servers: dict[str, _ServerHealth] = {}
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()
        self._running = False
        self._stop_requested = False
        self._task: Any = None

    async def start_monitoring(self, client: Any, interval: float | None = None) -> None:
        """Check ``client``'s servers once now, then every ``interval`` seconds in the
        background, until :meth:`stop_monitoring`.

        The background task runs in the client's own task group when it offers one
        (``spawn_background``, as the ``mcp`` backend does), else in an asyncio task; in a
        task group of your own, ``tg.start_soon(monitor.run, client)`` does the same.
        """
        if self._running:
            raise RuntimeError("start_monitoring: this monitor is already running")
        if interval is not None:
            if not interval > 0:
                raise ValueError(f"interval: expected a positive number of seconds, "
                                 f"got {interval!r}")
            self.interval = interval
        self._client = client
        await self.check_once()
        self._running = True
        self._stop_requested = False
        self._stopped = anyio.Event()
        spawn = getattr(client, "spawn_background", None)
        if callable(spawn):
            await spawn(lambda: self.run(client, first=False))
            return
        import asyncio

        self._task = asyncio.get_running_loop().create_task(self.run(client, first=False))

    async def run(self, client: Any, *, first: bool = True) -> None:
        """Monitor ``client`` until cancelled or stopped (for a task group of your own)."""
        self._client = client
        self._running = True
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._stop_requested:
                    scope.cancel()
                if first:
                    await self.check_once()
                while True:
                    await anyio.sleep(self.interval)
                    await self.check_once()
        finally:
            self._running = False
            self._scope = None
            self._stopped.set()

    async def stop_monitoring(self) -> None:
        """Stop the background pings (the client and its servers keep running)."""
        self._stop_requested = True
        if self._scope is not None:
            self._scope.cancel()
        task, self._task = self._task, None
        if task is not None:
            import asyncio

            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            self._running = False
        elif self._running:
            await self._stopped.wait()

    async def check_once(self) -> dict[str, bool]:
        """Ping every server once (concurrently); reconnect failing ones when due.

        Returns ``{name: healthy}``.
        """
        client = self._client
        if client is None:
            raise RuntimeError("check_once: call start_monitoring(client) first")
        names = list(client.get_all_statuses())
        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(self._check, client, name)
        for gone in set(self._servers) - set(names):
            del self._servers[gone]
        return {name: self._servers[name].healthy for name in names}

    async def _check(self, client: Any, name: str) -> None:
        health = self._servers.setdefault(name, _ServerHealth())
        health.pings += 1
        try:
            with anyio.fail_after(self.ping_timeout):
                latency = await client.ping(name)
        except Exception as exc:  # noqa: BLE001 - any failure counts, and is reported
            health.failures += 1
            health.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(
                exc).__name__
            if health.failures >= self.failure_threshold:
                health.healthy = False
                await self._maybe_reconnect(client, name, health)
            return
        health.failures = 0
        health.healthy = True
        health.backoff = 0.0
        health.latencies.append(float(latency))
        del health.latencies[:-self.keep_latencies]

    async def _maybe_reconnect(self, client: Any, name: str, health: _ServerHealth) -> None:
        if not self.reconnect:
            return
        now = time.monotonic()
        if now < health.next_attempt:
            return
        health.backoff = min(self.max_backoff_seconds,
                             health.backoff * 2 if health.backoff else self.backoff_seconds)
        health.next_attempt = now + health.backoff
        health.reconnects += 1
        try:
            await client.reconnect(name)
        except Exception as exc:  # noqa: BLE001 - reported in the statistics
            health.last_error = f"reconnect failed: {type(exc).__name__}: {exc}"
            return
        try:
            with anyio.fail_after(self.ping_timeout):
                latency = await client.ping(name)
        except Exception as exc:  # noqa: BLE001
            health.last_error = f"{type(exc).__name__}: {exc}"
            return
        health.failures = 0
        health.healthy = True
        health.latencies.append(float(latency))

    def is_healthy(self, name: str) -> bool:
        """Whether server ``name`` answered its last pings (unknown servers: ``True``)."""
        health = self._servers.get(name)
        return health is None or health.healthy

    def get_statistics(self) -> dict[str, Any]:
        """What the monitor saw.

        Returns ``{"healthy": [names], "unhealthy": [names], "total_servers", "restarts",
        "reconnect_attempts", "calls", "errors", "latency_ms": {"p50", "p95", "p99"},
        "servers": {name: {...}}}``; ``calls``/``errors``/``restarts`` come from the
        client's statuses.
        """
        statuses = self._client.get_all_statuses() if self._client is not None else {}
        servers: dict[str, Any] = {}
        every: list[float] = []
        for name, status in statuses.items():
            health = self._servers.get(name, _ServerHealth())
            every += health.latencies
            servers[name] = {
                "healthy": health.healthy and bool(getattr(status, "connected", True)),
                "connected": getattr(status, "connected", None),
                "consecutive_failures": health.failures,
                "pings": health.pings,
                "reconnect_attempts": health.reconnects,
                "restarts": getattr(status, "restarts", 0),
                "calls": getattr(status, "calls", 0),
                "errors": getattr(status, "errors", 0),
                "last_error": health.last_error or getattr(status, "last_error", None),
                "latency_ms": self._percentiles(health.latencies),
            }
        return {
            "healthy": sorted(n for n, s in servers.items() if s["healthy"]),
            "unhealthy": sorted(n for n, s in servers.items() if not s["healthy"]),
            "total_servers": len(servers),
            "restarts": sum(s["restarts"] for s in servers.values()),
            "reconnect_attempts": sum(s["reconnect_attempts"] for s in servers.values()),
            "calls": sum(s["calls"] for s in servers.values()),
            "errors": sum(s["errors"] for s in servers.values()),
            "latency_ms": self._percentiles(every),
            "servers": servers,
        }

    @staticmethod
    def _percentiles(values: list[float]) -> dict[str, float | None]:
        return {f"p{q}": _percentile(values, q) for q in (50, 95, 99)}
