"""MCP client overhead: a ``call_tool`` round trip through NeuroFlow's ``mcp`` backend
against the raw ``mcp`` ``ClientSession`` on the same kind of server, in the same run.

Also: 200 concurrent calls on one session (ours against raw), the same round trip with the
server spawned inside the ``process`` sandbox (``sandbox = "process"``; kept as root here,
because the test server needs this interpreter, which dedicated uids cannot run when it
lives under a 0700 home), and starting N servers in parallel against one after another.
The server is ``plugins/mcp/tests/tiny_server.py`` (the SDK's server API, ``echo`` tool),
over stdio.  Raw, NeuroFlow and sandboxed runs alternate ``--repeats`` times; each ratio is
the median over the repeats.

    python benchmarks/bench_mcp.py [--rounds N] [--servers N] [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import os
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


async def _ours(rounds: int, concurrent: int, sandbox: str | None = None
                ) -> tuple[list[float], float]:
    from neuroflow import create_backend

    async with create_backend("mcp", gate=False) as client:
        await client.start_server(name="tiny", command=sys.executable, args=[TINY],
                                  sandbox=sandbox)
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


def _sandbox_as_root() -> None:
    """``[sandbox.process]`` for the sandboxed run: keep root (weaker isolation allowed),
    so the test server can run this interpreter."""
    os.environ["NEUROFLOW_SANDBOX__PROCESS__RUN_AS"] = '"root"'
    os.environ["NEUROFLOW_SANDBOX__PROCESS__ALLOW_WEAKER_ISOLATION"] = "true"
    from neuroflow.config import reload_config

    reload_config()


def main() -> None:
    """Run the benchmark and print each figure beside its anchor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 rounds, 2 servers, 1 repeat")
    args = parser.parse_args()
    rounds, servers, repeats = ((200, 2, 1) if args.quick
                                else (args.rounds, args.servers, args.repeats))
    _sandbox_as_root()
    med = statistics.median
    rows: dict[str, list[float]] = {"raw": [], "ours": [], "boxed": [], "raw_burst": [],
                                    "our_burst": [], "boxed_burst": []}
    for _ in range(repeats):  # interleaved: load on the machine hits all three alike
        raw, raw_burst = anyio.run(_raw, rounds, 200)
        ours, our_burst = anyio.run(_ours, rounds, 200)
        boxed, boxed_burst = anyio.run(_ours, rounds, 200, "process")
        for key, value in (("raw", med(raw)), ("ours", med(ours)), ("boxed", med(boxed)),
                           ("raw_burst", raw_burst), ("our_burst", our_burst),
                           ("boxed_burst", boxed_burst)):
            rows[key].append(value)
    parallel, sequential = anyio.run(_startup, servers)

    def ratio(key: str, anchor: str) -> float:
        return med([a / b for a, b in zip(rows[key], rows[anchor], strict=True)])

    print(f"MCP stdio call_tool round trip ({rounds} rounds x {repeats}, echo, same run; "
          "medians)")
    print(f"  anchor: raw mcp ClientSession   {med(rows['raw']) * 1e3:7.3f} ms")
    print(f"  NeuroFlow execute_tool          {med(rows['ours']) * 1e3:7.3f} ms  "
          f"ratio {ratio('ours', 'raw'):.2f}x  (target <= 1.1x)")
    print(f"  ... server in the process sandbox {med(rows['boxed']) * 1e3:5.3f} ms  "
          f"ratio {ratio('boxed', 'raw'):.2f}x")
    print(f"200 concurrent calls on one session: raw {med(rows['raw_burst']) * 1e3:.0f} ms, "
          f"NeuroFlow {med(rows['our_burst']) * 1e3:.0f} ms "
          f"(ratio {ratio('our_burst', 'raw_burst'):.2f}x), sandboxed "
          f"{med(rows['boxed_burst']) * 1e3:.0f} ms "
          f"(ratio {ratio('boxed_burst', 'raw_burst'):.2f}x)")
    print(f"start {servers} servers: in parallel {parallel:.2f} s, one after another "
          f"{sequential:.2f} s, ratio {parallel / sequential:.2f}x")


if __name__ == "__main__":
    main()
