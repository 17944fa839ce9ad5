"""Process-sandbox start-up against a bare ``subprocess`` spawn of the same command.

Run: ``python benchmarks/bench_sandbox.py [--runs N] [--rounds R] [--backend asyncio|trio]``

For each command it times a bare ``subprocess.run(argv, capture_output=True)`` and
``await SandboxIsolator(SandboxConfig(), gate=False).execute(...)`` (default limits:
rlimits, a per-run pids + memory cgroup, clean environment, capped output, whole-tree
kill, a session of its own; as root, the privilege drop: a dedicated uid per run (held
by the process between its runs, cleaned up after each), the work directory handed to it
and back, an IPC namespace and a session keyring of its own, the uid's keyrings cleared,
``no_new_privs``, and the clean-up of what the uid left in /tmp, /var/tmp, /dev/shm and
/run/lock), alternately in the same process and thread, in R rounds of N pairs.  Where
the sandbox uses a scheduling group (see ``neuroflow doctor``), the bare spawns start from
the same thread, in that group.  It prints the median over all pairs, the
minimum of each side, and the quietest round (the round with the lowest bare median:
other load on the machine inflates the sandbox's several wake-ups more than one spawn),
each with the ratio sandbox / bare and its target (<= 1.5x for ``/bin/true``, <= 1.15x
for ``python3 -I -S -c pass``).  Both sides run the same ``python3``: as root, the one a
dropped uid may execute.  One more row runs ``/bin/true`` behind the default gate (the
configured guards and an audit record before and after each command) -- the start-up
rows measure the sandbox alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import anyio

from neuroflow.sandbox import SandboxConfig, SandboxIsolator, runas
from neuroflow.sandbox.cgroups import support
from neuroflow.sandbox.resolve import resolve_command


async def _measure(argv: list[str], runs: int, rounds: int, config: SandboxConfig,
                   gate: bool = False) -> list[tuple[list[float], list[float]]]:
    out = []
    async with SandboxIsolator(config, gate=None if gate else False) as isolator:
        for _ in range(20):  # warm up: caches, the cgroup pool
            await isolator.execute(argv[0], argv[1:])
        for _ in range(rounds):
            bare: list[float] = []
            boxed: list[float] = []
            for _ in range(runs):
                start = time.perf_counter()
                subprocess.run(argv, capture_output=True, check=True)
                middle = time.perf_counter()
                result = await isolator.execute(argv[0], argv[1:])
                end = time.perf_counter()
                if not result.ok:
                    raise SystemExit(f"sandbox run failed: {result}")
                bare.append((middle - start) * 1000)
                boxed.append((end - middle) * 1000)
            out.append((bare, boxed))
    return out


def _row(label: str, rounds: list[tuple[list[float], list[float]]], target: float | None
         ) -> str:
    bare = [t for r in rounds for t in r[0]]
    boxed = [t for r in rounds for t in r[1]]
    b, s = statistics.median(bare), statistics.median(boxed)
    quiet = min(rounds, key=lambda r: statistics.median(r[0]))
    qb, qs = statistics.median(quiet[0]), statistics.median(quiet[1])
    mb, ms = min(bare), min(boxed)
    goal = f"<= {target:.2f}x" if target else "-"
    return (f"{label:<26}{b:>9.3f} ms{s:>9.3f} ms{s / b:>7.2f}x   "
            f"{mb:>7.3f} ms{ms:>7.3f} ms{ms / mb:>6.2f}x   "
            f"{qb:>9.3f} ms{qs:>9.3f} ms{qs / qb:>7.2f}x   {goal:>9}")


def main() -> None:
    """Print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="pairs per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    options = parser.parse_args()
    config = SandboxConfig()
    plan = runas.plan(config.run_as, config.dedicated_uid_base, config.dedicated_uid_count)
    who = (plan.identity.uid, plan.identity.gid) if plan.identity is not None else None
    python = resolve_command("python3", who=who) or sys.executable
    info = support()
    cgroups = f"v{info.version} {', '.join(sorted(info.parents))}" if info.version else "none"
    if info.version:
        cgroups += f", scheduling group {'on' if info.sched else 'off'}"
    print(f"process sandbox start-up; {options.rounds} rounds x {options.runs} pairs; "
          f"event loop {options.backend}; cgroups: {cgroups}; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"python3 resolves to {python}; privilege drop: "
          + (f"on ({plan.mode} uid)" if plan.drops else f"off ({plan.reason})"))
    print(f"{'':<26}{'--- all pairs (median) ---':^36}   {'--- minimum ---':^28}   "
          f"{'--- quietest round ---':^36}")
    print(f"{'command':<26}{'bare':>12}{'sandbox':>12}{'ratio':>8}   "
          f"{'bare':>10}{'sandbox':>10}{'ratio':>7}   "
          f"{'bare':>12}{'sandbox':>12}{'ratio':>8}   {'target':>9}")
    cases = [
        ("/bin/true", ["/bin/true"], options.runs, config, 1.5, False),
        ("python3 -I -S -c pass", [python, "-I", "-S", "-c", "pass"],
         max(20, options.runs // 4), config, 1.15, False),
        ("/bin/true, default gate", ["/bin/true"], options.runs, config, None, True),
        ("/bin/true exact_rlimits", ["/bin/true"], options.runs,
         SandboxConfig(exact_rlimits=True), None, False),
    ]
    if plan.drops:
        cases.append(("/bin/true run_as=root", ["/bin/true"], options.runs,
                      SandboxConfig(run_as="root", allow_weaker_isolation=True), None, False))
    for label, argv, runs, case_config, target, gate in cases:
        rounds = anyio.run(_measure, argv, runs, options.rounds, case_config, gate,
                           backend=options.backend)
        print(_row(label, rounds, target), flush=True)
    shim = os.path.join(os.path.expanduser("~"), ".pyenv", "shims", "python3")
    if os.path.exists(shim):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([shim, "-I", "-S", "-c", "pass"], check=True)
            times.append((time.perf_counter() - start) * 1000)
        print(f"(for reference: spawning the pyenv shim instead takes "
              f"{statistics.median(times):.1f} ms)")


if __name__ == "__main__":
    main()
