"""Run every ``benchmarks/bench_*.py`` and print what each reports.

    python benchmarks/run.py [--quick] [NAME ...]

``--quick`` is passed on to each benchmark (fewer repetitions); NAMEs (``startup``,
``sandbox``...) pick benchmarks.  Every figure is printed beside its anchor, measured in
the same run.  Exits non-zero if a benchmark failed to run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def accepts_quick(script: Path) -> bool:
    """Whether the benchmark's ``--help`` lists ``--quick`` (it runs in full otherwise)."""
    shown = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                           text=True, cwd=HERE.parent, check=False)
    if "--quick" in shown.stdout:
        return True
    print(f"run.py: {script.name} has no --quick; running it in full", flush=True)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("names", nargs="*", help="run only these (e.g. startup sandbox)")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    if not scripts:
        print("run.py: no benchmark matched", file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        print(f"=== {script.stem} ===", flush=True)
        start = time.perf_counter()
        extra = ["--quick"] if args.quick and accepts_quick(script) else []
        code = subprocess.call([sys.executable, str(script), *extra], cwd=HERE.parent)
        print(f"--- {script.stem}: exit {code}, {time.perf_counter() - start:.1f} s\n", flush=True)
        if code != 0:
            failed.append(script.stem)
    if failed:
        print(f"run.py: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
