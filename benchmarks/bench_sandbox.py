"""Process-sandbox start-up against a bare ``subprocess`` spawn of the same command.

Run: ``python benchmarks/bench_sandbox.py [--runs N] [--backend asyncio|trio]``

For each command it prints the median wall time of a bare
``subprocess.run(argv, stdout=PIPE, stderr=PIPE)`` and of ``await
SandboxIsolator(config).execute(...)`` (with the default limits: rlimits, a per-run
pids+memory cgroup, clean environment, capped output, tree kill), measured alternately in
the same process, and their ratio.  Target: <= 1.3x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import anyio

from neuroflow.sandbox import SandboxConfig, SandboxIsolator
from neuroflow.sandbox.cgroups import support
from neuroflow.sandbox.resolve import resolve_command


def _bare(argv: list[str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)

    return run


async def _measure(argv: list[str], runs: int, warmup: int) -> tuple[list[float], list[float]]:
    bare = _bare(argv)
    bare_times: list[float] = []
    sandbox_times: list[float] = []
    async with SandboxIsolator(SandboxConfig()) as isolator:
        for i in range(warmup + runs):
            start = time.perf_counter()
            bare()
            middle = time.perf_counter()
            result = await isolator.execute(argv[0], argv[1:])
            end = time.perf_counter()
            if not result.ok:
                raise SystemExit(f"sandbox run failed: {result}")
            if i >= warmup:
                bare_times.append((middle - start) * 1000)
                sandbox_times.append((end - middle) * 1000)
    return bare_times, sandbox_times


def main() -> None:
    """Print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    options = parser.parse_args()
    python = resolve_command("python3") or sys.executable
    commands = {
        "/bin/true": ["/bin/true"],
        "python3 -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
    }
    info = support()
    print(f"process sandbox start-up, {options.runs} runs each, event loop {options.backend}, "
          f"cgroups: v{info.version} {sorted(info.parents)}" if info.version else
          "cgroups: none")
    print(f"python3 resolves to {python}")
    print(f"{'command':<24}{'bare subprocess':>18}{'sandbox':>12}{'ratio':>8}")
    for label, argv in commands.items():
        runs = options.runs if label == "/bin/true" else max(50, options.runs // 3)
        bare, boxed = anyio.run(_measure, argv, runs, 20, backend=options.backend)
        b, s = statistics.median(bare), statistics.median(boxed)
        print(f"{label:<24}{b:>15.3f} ms{s:>9.3f} ms{s / b:>7.2f}x")
    shim = os.path.join(os.path.expanduser("~"), ".pyenv", "shims", "python3")
    if os.path.exists(shim):
        times = []
        for _ in range(10):
            start = time.perf_counter()
            subprocess.run([shim, "-I", "-S", "-c", "pass"], check=True)
            times.append((time.perf_counter() - start) * 1000)
        print(f"(for reference: the pyenv shim itself takes {statistics.median(times):.1f} ms)")


if __name__ == "__main__":
    main()
