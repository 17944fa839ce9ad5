"""MCP client overhead: a ``call_tool`` round trip through NeuroFlow's ``mcp`` backend
against the raw ``mcp`` ``ClientSession`` on the same kind of server, in the same run.

Also: 200 concurrent calls on one session (ours against raw), and starting N servers in
parallel against one after another.  The server is ``plugins/mcp/tests/tiny_server.py``
(the SDK's server API, ``echo`` tool), over stdio.

    python benchmarks/bench_mcp.py [--rounds N] [--servers N] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import anyio

TINY = str(Path(__file__).resolve().parents[1] / "plugins" / "mcp" / "tests" / "tiny_server.py")


async def _raw(rounds: int, concurrent: int) -> tuple[list[float], float]:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=[TINY])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        for _ in range(20):
            await session.call_tool("echo", {"text": "x"})
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            await session.call_tool("echo", {"text": "x"})
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrent):
                tg.start_soon(session.call_tool, "echo", {"text": "x"})
        return times, time.perf_counter() - start


async def _ours(rounds: int, concurrent: int) -> tuple[list[float], float]:
    from neuroflow import create_backend

    async with create_backend("mcp", gate=False) as client:
        await client.start_server(name="tiny", command=sys.executable, args=[TINY])
        for _ in range(20):
            await client.execute_tool("tiny", "echo", {"text": "x"})
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            await client.execute_tool("tiny", "echo", {"text": "x"})
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrent):
                tg.start_soon(client.execute_tool, "tiny", "echo", {"text": "x"})
        return times, time.perf_counter() - start


async def _startup(servers: int) -> tuple[float, float]:
    from neuroflow import create_backend

    config = {"servers": {f"s{i}": {"command": sys.executable, "args": [TINY]}
                          for i in range(servers)}}
    async with create_backend("mcp", gate=False) as client:
        start = time.perf_counter()
        await client.start_from_config(config)
        parallel = time.perf_counter() - start
        await client.stop_all()
        start = time.perf_counter()
        for name, fields in config["servers"].items():
            await client.start_server(name=name, **fields)
        sequential = time.perf_counter() - start
    return parallel, sequential


def main() -> None:
    """Run the benchmark and print each figure beside its anchor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="200 rounds, 2 servers")
    args = parser.parse_args()
    rounds, servers = (200, 2) if args.quick else (args.rounds, args.servers)
    raw, raw_burst = anyio.run(_raw, rounds, 200)
    ours, our_burst = anyio.run(_ours, rounds, 200)
    parallel, sequential = anyio.run(_startup, servers)
    raw_med, our_med = statistics.median(raw), statistics.median(ours)
    print(f"MCP stdio call_tool round trip ({rounds} rounds, echo, same run)")
    print(f"  anchor: raw mcp ClientSession   median {raw_med * 1e3:7.3f} ms  "
          f"min {min(raw) * 1e3:7.3f} ms")
    print(f"  NeuroFlow execute_tool          median {our_med * 1e3:7.3f} ms  "
          f"min {min(ours) * 1e3:7.3f} ms")
    print(f"  ratio (median): {our_med / raw_med:.2f}x  (target <= 1.1x)")
    print(f"200 concurrent calls on one session: raw {raw_burst * 1e3:.0f} ms, "
          f"NeuroFlow {our_burst * 1e3:.0f} ms, ratio {our_burst / raw_burst:.2f}x")
    print(f"start {servers} servers: in parallel {parallel:.2f} s, one after another "
          f"{sequential:.2f} s, ratio {parallel / sequential:.2f}x")


if __name__ == "__main__":
    main()
