"""An 8 MiB value does not block the event loop (in-memory and tiered stores).

The bound is generous (1 s, against the several seconds a value of this size blocked the
loop for when it was encoded and indexed on it): this checks that the work runs off the
loop, not how fast it is.
"""

from __future__ import annotations

from typing import Any

import pytest

from neuroflow.memory.inmemory import InMemoryStore
from neuroflow.memory.tiered import TieredStore
from neuroflow.testing.memory import Clock, make_manager
from neuroflow.testing.memory_limits import EIGHT_MIB, big_value, longest_pause

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "tiered"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return InMemoryStore()
    return TieredStore(InMemoryStore(), hot_entries=2)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_8_mib_value_does_not_block_the_event_loop(store: Any) -> None:
    manager = make_manager(store, Clock())
    value = big_value()

    async def work() -> Any:
        await manager.store_memory("a", "big", value, tags=["big"])
        await manager.update_memory("a", "big", importance=0.9)  # indexed again
        return await manager.retrieve_memory("a", "big")

    pause, got = await longest_pause(work)
    assert got is not None and got.value == value and got.version == 2
    assert len(value["text"]) == EIGHT_MIB
    assert pause < 1.0, f"the event loop was blocked for {pause:.2f} s"
    await manager.aclose()
