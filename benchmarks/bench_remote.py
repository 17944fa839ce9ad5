"""The ``remote`` sandbox on a local Ray cluster against the local ``process`` backend.

Run: ``python benchmarks/bench_remote.py [--quick] [--runs N]``

Starts its own cluster on 127.0.0.1 (token authentication on, a free port, a temporary
state folder; stopped at the end) and prints:

* cluster start: the head node, then one more node (``neuroflow cluster up`` does the same);
* for ``/bin/true`` and ``python3 -I -S -c pass``, at 1, 2, 4 and 8 executions in flight:
  executions per second and p50/p99 latency of ``process`` (the anchor, measured in the
  same run, interleaved) and of ``remote`` with one node, then with two, each node running
  ``process``; the ratio remote / local of the throughput;
* the per-call overhead: remote p50 minus local p50 at one in flight;
* the caller's CPU per remote execution (this process's CPU time over the run, Ray's
  driver threads included): one calling process cannot send more than about 1000 / that
  many executions per second, however many nodes there are.

Every node of this cluster shares this machine's two cores with the caller, so two nodes
cannot run more commands at once than one: the figures measure the path's cost, and what
more machines would add is estimated from them in the README.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

from neuroflow import create_backend


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _load(backend: object, argv: list[str], total: int, in_flight: int
                ) -> tuple[float, list[float], float]:
    """Run ``argv`` ``total`` times, ``in_flight`` at once: (executions/s, latencies ms,
    this process's CPU ms per execution)."""
    latencies: list[float] = []
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            start = time.perf_counter()
            result = await backend.execute(argv[0], argv[1:])  # type: ignore[attr-defined]
            latencies.append((time.perf_counter() - start) * 1000)
            if not result.ok:
                raise SystemExit(f"run failed: {result}")

    start, cpu = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as group:
        for _ in range(in_flight):
            group.start_soon(worker)
    return (total / (time.perf_counter() - start), latencies,
            (time.process_time() - cpu) * 1000 / total)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _compare(label: str, local: object, remote: object, commands: dict[str, list[str]],
                   runs: dict[str, int], rounds: int) -> dict[str, float]:
    """Interleaved local/remote runs; prints one row per command and in-flight count."""
    overhead: dict[str, float] = {}
    print(f"\n{label}")
    print(f"{'command':<28}{'in flight':>9}{'local/s':>10}{'p50':>8}{'p99':>8}"
          f"{'remote/s':>10}{'p50':>8}{'p99':>8}{'ratio':>8}{'caller CPU':>12}")
    for name, argv in commands.items():
        for in_flight in (1, 2, 4, 8):
            local_rates, remote_rates, local_lat, remote_lat = [], [], [], []
            caller_cpu: list[float] = []
            for _ in range(rounds):
                rate, lat, _cpu = await _load(local, argv, runs[name], in_flight)
                local_rates.append(rate)
                local_lat += lat
                rate, lat, cpu = await _load(remote, argv, runs[name], in_flight)
                remote_rates.append(rate)
                remote_lat += lat
                caller_cpu.append(cpu)
            lr, rr = statistics.median(local_rates), statistics.median(remote_rates)
            print(f"{name:<28}{in_flight:>9}{lr:>10.0f}{_pct(local_lat, .5):>8.2f}"
                  f"{_pct(local_lat, .99):>8.2f}{rr:>10.0f}{_pct(remote_lat, .5):>8.2f}"
                  f"{_pct(remote_lat, .99):>8.2f}{rr / lr:>7.2f}x"
                  f"{statistics.median(caller_cpu):>9.2f} ms", flush=True)
            if in_flight == 1:
                overhead[name] = _pct(remote_lat, .5) - _pct(local_lat, .5)
    return overhead


async def _bench(options: argparse.Namespace) -> None:
    from neuroflow_sandbox_remote.cluster import up

    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    commands = {"/bin/true": ["/bin/true"],
                "python3 -I -S -c pass": [python, "-I", "-S", "-c", "pass"]}
    runs = {"/bin/true": options.runs, "python3 -I -S -c pass": max(8, options.runs // 4)}
    rounds = 1 if options.quick else 3
    state = Path(tempfile.mkdtemp(prefix="nf-bench-remote-"))
    started = time.perf_counter()
    cluster = up(state, port=_free_port(), timeout=240)
    head_s = time.perf_counter() - started
    try:
        print(f"cluster start: head node {head_s:.1f} s", flush=True)
        options_ = {"address": cluster.address, "auth_token_file": str(cluster.token_file),
                    "max_in_flight": 8}
        async with create_backend("isolation", "process", gate=False) as local, \
                create_backend("isolation", "remote", options_, gate=False) as remote:
            started = time.perf_counter()
            await remote.connect()
            print(f"first connect (join, auth check, node actor, warm runner): "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            for argv in commands.values():  # warm up both
                for _ in range(10):
                    await local.execute(argv[0], argv[1:])
                    await remote.execute(argv[0], argv[1:])
            one = await _compare("one node", local, remote, commands, runs, rounds)
            started = time.perf_counter()
            await anyio.to_thread.run_sync(cluster.add_node)
            print(f"\ncluster start: one more node {time.perf_counter() - started:.1f} s")
            for _ in range(100):
                await remote.connect(refresh=True)
                if len(remote.nodes) >= 2:
                    break
                await anyio.sleep(0.3)
            two = await _compare("two nodes", local, remote, commands, runs, rounds)
        print("\nper-call overhead (remote p50 - local p50, one in flight):")
        for name in commands:
            print(f"  {name:<26} one node {one[name]:+.2f} ms   two nodes {two[name]:+.2f} ms")
    finally:
        cluster.down()
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, one round")
    parser.add_argument("--runs", type=int, default=None,
                        help="executions per cell for /bin/true (a quarter for python3)")
    options = parser.parse_args()
    if options.runs is None:
        options.runs = 80 if options.quick else 400
    anyio.run(_bench, options)


if __name__ == "__main__":
    main()
