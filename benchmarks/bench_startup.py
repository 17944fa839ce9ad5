"""Start-up cost of NeuroFlow against a bare interpreter, measured in the same run.

    python benchmarks/bench_startup.py [--quick] [--runs N] [--importtime]

Each figure is the median wall time of N fresh subprocesses, started in an empty temporary
folder (no configuration file).  The anchor is ``python -I -c pass`` with the same
interpreter.  Target: ``import neuroflow`` plus plugin discovery (every installed plugin
registered, every backend collected) within 100 ms of the anchor.  ``--importtime`` also
prints the slowest imports of the discovery run (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_OVER_BARE_MS = 100.0
DISCOVER = (
    "import neuroflow\n"
    "from neuroflow.plugins import get_plugin_manager\n"
    "infos = get_plugin_manager().plugin_infos()\n"
)


def medians_ms(commands: list[list[str]], runs: int, cwd: Path, env: dict[str, str]) -> list[float]:
    """Median wall time of each command over ``runs`` rounds (after one warm-up round).

    The commands run interleaved, round after round, so a change in machine load
    affects the anchor and the measured commands alike.
    """
    times: list[list[float]] = [[] for _ in commands]
    for round_number in range(runs + 1):
        for index, command in enumerate(commands):
            start = time.perf_counter()
            subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
            if round_number:
                times[index].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) for t in times]


def slowest_imports(cwd: Path, env: dict[str, str], count: int = 12) -> list[tuple[int, str]]:
    """The ``count`` imports with the largest cumulative time in the discovery run (µs)."""
    done = subprocess.run([sys.executable, "-I", "-X", "importtime", "-c", DISCOVER], cwd=cwd,
                          env=env, check=True, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, _self, cumulative, name = (part.strip() for part in line.split("|", 1)[0].split(":")
                                      + line.split("|")[1:])
        rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (7)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 25)")
    parser.add_argument("--importtime", action="store_true", help="show the slowest imports")
    args = parser.parse_args()
    runs = args.runs or (7 if args.quick else 25)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROFLOW_")}
    script = Path(sys.executable).with_name("neuroflow")
    neuroflow_cli = [str(script)] if script.exists() else [sys.executable, "-m", "neuroflow"]

    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        count = subprocess.run(
            [sys.executable, "-I", "-c", DISCOVER + "print(len(infos))"],
            cwd=cwd, env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()
        named = [
            ("anchor", [sys.executable, "-I", "-c", "pass"]),
            ("import neuroflow", [sys.executable, "-I", "-c", "import neuroflow"]),
            (f"import + discover {count} plugins", [sys.executable, "-I", "-c", DISCOVER]),
            ("`neuroflow plugins`", [*neuroflow_cli, "plugins"]),
            ("`neuroflow --help`", [*neuroflow_cli, "--help"]),
        ]
        bare, *rest = medians_ms([command for _, command in named], runs, cwd, env)
        figures = [(name, ms) for (name, _), ms in zip(named[1:], rest, strict=True)]
        print(f"startup ({runs} interleaved runs each, median; {Path(sys.executable)})")
        print(f"  anchor  python -I -c pass            {bare:7.1f} ms")
        for name, ms in figures:
            print(f"  {name:<38} {ms:7.1f} ms   +{ms - bare:6.1f} ms over bare   "
                  f"{ms / bare:5.2f}x")
        over = figures[1][1] - bare
        verdict = "within" if over <= TARGET_OVER_BARE_MS else "OVER"
        print(f"  discovery is {over:.1f} ms over a bare start: {verdict} the "
              f"{TARGET_OVER_BARE_MS:.0f} ms target")
        if args.importtime:
            print("  slowest imports (cumulative):")
            for micros, name in slowest_imports(cwd, env):
                print(f"    {micros / 1000:7.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    if shutil.which(sys.executable) is None:
        raise SystemExit("cannot find the interpreter")
    raise SystemExit(main())
