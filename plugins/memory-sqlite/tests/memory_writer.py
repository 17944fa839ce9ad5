"""A child process for the cross-process tests: writes memories, printing each acknowledged key.

Usage: python memory_writer.py URL PREFIX MODE WORKER COUNT
MODE ``keys``: store COUNT distinct keys; ``counter``: increment one shared counter COUNT times
with versioned updates; ``forever``: store keys until killed; ``notes``: store COUNT keys
whose text holds one word of their own (``u<WORKER>x<i>``), and after every fifth one delete
the one stored two before it (printing ``-KEY`` after the delete); before each write it
waits for a line on stdin, so the reader checks each write before the next.
"""

from __future__ import annotations

import sys

import anyio

from neuroflow.errors import MemoryConflictError
from neuroflow.memory import MemoryConfig, MemoryManager
from neuroflow_memory_sqlite.store import SqliteStoreConfig, SqlStore


async def main(url: str, prefix: str, mode: str, worker: str, count: int) -> None:
    store = SqlStore(SqliteStoreConfig(url=url, table_prefix=prefix))
    manager = MemoryManager(MemoryConfig(max_entries=None), store=store, embedder="lexical")
    async with manager:
        i = 0
        while mode == "forever" or i < count:
            if mode == "counter":
                while True:
                    current = await manager.retrieve_memory("shared", "counter")
                    try:
                        if current is None:
                            await manager.store_memory("shared", "counter", 1,
                                                       expected_version=0)
                        else:
                            await manager.update_memory("shared", "counter",
                                                        value=current.value + 1,
                                                        expected_version=current.version)
                        break
                    except MemoryConflictError:
                        continue
            elif mode == "notes":
                sys.stdin.readline()
                key = f"{worker}-{i}"
                await manager.store_memory(f"agent-{worker}", key,
                                           {"text": f"note number {i} u{worker}x{i}"},
                                           tags=["note"])
                print(key, flush=True)
                if i % 5 == 4:
                    sys.stdin.readline()
                    gone = f"{worker}-{i - 2}"
                    await manager.delete_memory(f"agent-{worker}", gone)
                    print(f"-{gone}", flush=True)
            else:
                key = f"{worker}-{i}"
                await manager.store_memory(f"agent-{worker}", key, {"i": i, "pad": "x" * 200},
                                           tags=["w", worker])
                print(key, flush=True)
            i += 1


if __name__ == "__main__":
    url, prefix, mode, worker, count = sys.argv[1:6]
    anyio.run(main, url, prefix, mode, worker, int(count))
