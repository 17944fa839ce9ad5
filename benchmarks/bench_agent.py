"""Agent runtime overhead: one ``handle`` round trip (scripted provider, one tool call).

Anchor: a direct call of the same tool function in the same run.  A round trip is two
scripted model replies (tool call, then final answer), argument checking, the tool call
and the bookkeeping, so the ratio is what the runtime costs around a trivial tool.

    python benchmarks/bench_agent.py [--rounds N] [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anyio

from neuroflow.agent import AINativeAgent, ScriptedProvider


async def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


def _best_of(samples: list[float]) -> tuple[float, float]:
    return min(samples), statistics.median(samples)


async def _direct(rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await lookup(key="k")
        times.append(time.perf_counter() - start)
    return times


async def _round_trips(rounds: int) -> list[float]:
    provider = ScriptedProvider(steps=[
        {"tool": "lookup", "arguments": {"key": "k"}},
        "Found: {last_tool_result}",
    ])
    agent = AINativeAgent("bench", provider=provider)
    agent.tool(lookup)
    result: dict[str, Any] = await agent.handle("warm up")
    assert result["response"] == "Found: value of k", result
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        await agent.handle("look up k", session_id=f"s{i}")
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Run the benchmark and print µs figures and the ratio to the anchor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    args = parser.parse_args()
    import logging

    logging.getLogger("neuroflow.agent").setLevel(logging.ERROR)  # the scripted-model warning

    direct = anyio.run(_direct, args.rounds, backend=args.backend)
    trips = anyio.run(_round_trips, args.rounds, backend=args.backend)
    d_min, d_med = _best_of(direct)
    t_min, t_med = _best_of(trips)
    print(f"agent handle round trip ({args.backend}, {args.rounds} rounds, scripted provider, "
          "1 tool call)")
    print(f"  anchor: direct tool call        min {d_min * 1e6:9.2f} µs  "
          f"median {d_med * 1e6:9.2f} µs")
    print(f"  agent.handle round trip         min {t_min * 1e6:9.2f} µs  "
          f"median {t_med * 1e6:9.2f} µs")
    print(f"  ratio (median round trip / median direct call): {t_med / d_med:,.0f}x")
    print(f"  runtime overhead per round trip (median): {(t_med - d_med) * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
