"""Agent-to-agent: one A2A hop through NeuroFlow against raw a2a-sdk, and discovery among
10,000 registered agents, in the same run.

One hop (JSON-RPC, blocking ``SendMessage`` on loopback; the servers share one other
process, ``a2a_servers.py``):

* anchor: a raw a2a-sdk client calling a plain a2a-sdk agent
  (``plugins/a2a/tests/plain_server.py``: one task, one artifact);
* ours, transport: NeuroFlow's ``jsonrpc`` transport calling that same plain agent;
* ours, one hop: NeuroFlow's transport calling NeuroFlow's server whose handler echoes,
  like the anchor's (the budget checked, the reply carrying its trace) -- like for like;
* ours, with an agent: the same, the server running an ``AINativeAgent`` (scripted model,
  spans, session), and that through the guarded transport (gate and audit, default
  configuration);

rounds interleave in blocks so a busy machine slows each side alike.

Discovery: ``discover_by_capability`` among 10,000 agents (3 capabilities each out of 200,
so ~150 match) in memory, on SQLite and on the system PostgreSQL, against an anchor on the
same data: a Python scan of the 10,000 registrations (memory) and the bare indexed SQL query
for the same answer through the same driver, rows left as tuples (SQL).

    python benchmarks/bench_a2a.py [--rounds N] [--agents N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "plugins" / "a2a" / "tests"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def start(script: str, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, str(TESTS / script), *args],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env, cwd=TESTS)
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def stop(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    process.wait(10)


def ms(samples: list[float]) -> tuple[float, float]:
    return min(samples) * 1000.0, statistics.median(samples) * 1000.0


async def _raw_client(url: str) -> Any:
    import httpx
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory

    http = httpx.AsyncClient()
    card = await A2ACardResolver(http, url).get_agent_card()
    return ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)


async def _raw_call(client: Any) -> None:
    from a2a.types import Message, Part, Role, SendMessageRequest

    message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text="x")])
    async for _ in client.send_message(SendMessageRequest(message=message)):
        pass


async def one_hop(rounds: int, block: int) -> None:
    from neuroflow import create_backend

    servers, urls = start(str(HERE / "a2a_servers.py"))
    try:
        raw = await _raw_client(urls["plain"])
        transport = create_backend("transport", "jsonrpc", gate=False)
        guarded = create_backend("transport", "jsonrpc")  # default gate: judged, audited
        sides: dict[str, Any] = {
            "raw a2a-sdk -> plain agent (anchor)": lambda: _raw_call(raw),
            "NeuroFlow transport -> plain agent": lambda: transport.send(
                urls["plain"] + "/", "x", timeout=30),
            "NeuroFlow -> NeuroFlow server, echo": lambda: transport.send(
                urls["bare"], "x", timeout=30),
            "NeuroFlow -> NeuroFlow AINativeAgent": lambda: transport.send(
                urls["agent"], "x", timeout=30),
            "NeuroFlow guarded -> AINativeAgent": lambda: guarded.send(
                urls["agent"], "x", timeout=30, agent_id="agent"),
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        for call in sides.values():  # warm up every path
            for _ in range(20):
                await call()
        done = 0
        while done < rounds:
            for name, call in sides.items():
                for _ in range(block):
                    started = time.perf_counter()
                    await call()
                    times[name].append(time.perf_counter() - started)
            done += block
        await transport.aclose()
        await guarded.aclose()
        await raw.close()
    finally:
        stop(servers)
    anchor = statistics.median(times["raw a2a-sdk -> plain agent (anchor)"])
    print(f"one A2A hop, JSON-RPC blocking SendMessage, loopback, {rounds} calls each "
          f"(interleaved in blocks of {block}):")
    for name, samples in times.items():
        best, median = ms(samples)
        print(f"  {name:40s} best {best:6.2f} ms  median {median:6.2f} ms  "
              f"x{statistics.median(samples) / anchor:4.2f}")


def registrations(count: int, seed: int = 7) -> list[Any]:
    from neuroflow.a2a import AgentRegistration

    rng = random.Random(seed)
    words = [f"cap{i}" for i in range(200)]
    return [AgentRegistration(id=f"agent-{i:05d}", endpoint=f"http://10.0.{i // 250}."
                              f"{i % 250}:8080", capabilities=rng.sample(words, 3),
                              tags=[f"team{i % 20}"]) for i in range(count)]


async def _time(query: Any, terms: list[str]) -> list[float]:
    times = []
    for term in terms:
        started = time.perf_counter()
        found = await query(term)
        times.append(time.perf_counter() - started)
        assert found, term
    return times


async def discovery(count: int, queries: int) -> None:
    from neuroflow.a2a import AgentRegistryService

    regs = registrations(count)
    rng = random.Random(3)
    terms = [f"cap{rng.randrange(200)}" for _ in range(queries)]
    print(f"discover_by_capability among {count} agents ({queries} queries, ~"
          f"{count * 3 // 200} matches each):")

    memory = AgentRegistryService(backend="memory")
    await memory.start()
    for reg in regs:
        await memory.register(reg)

    async def scan(term: str) -> list[Any]:
        now = time.time()
        return sorted((r for r in regs if term in r.terms() and r.alive(now, None)),
                      key=lambda r: r.id)

    anchor = await _time(scan, terms)
    ours = await _time(memory.discover_by_capability, terms)
    print(f"  {'memory: Python scan of the list (anchor)':44s} median "
          f"{ms(anchor)[1]:7.3f} ms")
    print(f"  {'memory: AgentRegistryService':44s} median {ms(ours)[1]:7.3f} ms  "
          f"x{statistics.median(ours) / statistics.median(anchor):5.3f}")
    await memory.stop()

    with tempfile.TemporaryDirectory() as folder:
        prefix = f"b{uuid.uuid4().hex[:8]}_"
        for label, url in (("sqlite", f"sqlite:///{folder}/agents.db"), ("postgres", PG_URL)):
            service = AgentRegistryService(backend="sql", options={"url": url,
                                                                   "table_prefix": prefix})
            try:
                await service.start()
            except Exception as exc:  # noqa: BLE001 - report a missing server, go on
                print(f"  {label}: not measured ({type(exc).__name__}: {exc})")
                continue
            started = time.perf_counter()
            for i in range(0, count, 1000):
                await service.backend.put_many(regs[i:i + 1000])
            loaded = time.perf_counter() - started
            engine = await service.backend._db()
            import sqlalchemy as sa

            # the same answer: live agents (no ttl, or a recent heartbeat) with the term
            bare = sa.text(f"SELECT a.data, a.last_seen FROM {prefix}agents a JOIN "
                           f"{prefix}agent_terms t ON t.agent_id = a.id WHERE t.term = :term "
                           f"AND (a.ttl IS NULL OR a.last_seen + a.ttl >= :now) "
                           f"ORDER BY a.id")

            async def raw_sql(term: str, engine: Any = engine, bare: Any = bare) -> list[Any]:
                async with engine.connect() as connection:
                    return (await connection.execute(bare, {"term": term,
                                                            "now": time.time()})).all()

            await _time(raw_sql, terms[:20])
            await _time(service.discover_by_capability, terms[:20])
            anchor_sql, ours_sql = [], []
            for i in range(0, len(terms), 20):  # interleaved blocks
                anchor_sql += await _time(raw_sql, terms[i:i + 20])
                ours_sql += await _time(service.discover_by_capability, terms[i:i + 20])
            print(f"  {label + ': bare indexed SQL query (anchor)':44s} median "
                  f"{ms(anchor_sql)[1]:7.3f} ms   (loading {count}: {loaded:.1f} s)")
            print(f"  {label + ': AgentRegistryService':44s} median "
                  f"{ms(ours_sql)[1]:7.3f} ms  "
                  f"x{statistics.median(ours_sql) / statistics.median(anchor_sql):5.3f}")
            async with engine.begin() as connection:
                for table in ("agent_terms", "agents"):
                    await connection.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}{table}"))
            await service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--agents", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 100 if args.quick else args.rounds
    anyio.run(one_hop, rounds, 20)
    anyio.run(discovery, args.agents, 100 if args.quick else 400)


if __name__ == "__main__":
    main()
