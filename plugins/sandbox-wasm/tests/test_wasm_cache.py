"""The compiled-module cache: memory and disk hits, keys that include the wasmtime version
and engine settings, corrupt or foreign files ignored, private permissions."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wat_modules as wat

from neuroflow_sandbox_wasm import engine
from neuroflow_sandbox_wasm.sandbox import WasmSandbox

SETTINGS = (("consume_fuel", False), ("epoch_interruption", True), ("max_wasm_stack", None))


def fresh_runtime() -> engine.Runtime:
    """A new engine with an empty memory cache (as in a new process)."""
    return engine.Runtime(SETTINGS)


def load(runtime: engine.Runtime, module: bytes, cache_dir: str) -> str:
    _, source = runtime.load(module, hashlib.sha256(module).hexdigest(), cache_dir=cache_dir,
                             keep=8)
    return source


def cache_files(cache_dir: str) -> list[Path]:
    return sorted(Path(cache_dir).glob("*.cwasm"))


def test_compiled_then_memory_then_disk(cache_dir: str) -> None:
    module = wat.write_text("cached\n")
    first = fresh_runtime()
    assert load(first, module, cache_dir) == "compiled"
    assert load(first, module, cache_dir) == "memory"
    assert load(fresh_runtime(), module, cache_dir) == "disk"
    [path] = cache_files(cache_dir)
    assert path.name.startswith(hashlib.sha256(module).hexdigest())


def test_cache_folder_and_files_are_private(cache_dir: str) -> None:
    load(fresh_runtime(), wat.HELLO, cache_dir)
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700
    [path] = cache_files(cache_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_shared_cache_folder_is_made_private(cache_dir: str) -> None:
    os.makedirs(cache_dir)
    os.chmod(cache_dir, 0o777)
    load(fresh_runtime(), wat.HELLO, cache_dir)
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700


def test_a_file_others_can_write_is_not_trusted(cache_dir: str) -> None:
    module = wat.write_text("perm\n")
    load(fresh_runtime(), module, cache_dir)
    [path] = cache_files(cache_dir)
    os.chmod(path, 0o666)
    assert load(fresh_runtime(), module, cache_dir) == "compiled"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # replaced by a private one


def _rewrite_header(path: Path, **changes: Any) -> None:
    data = path.read_bytes()
    end = data.index(b"\n", len(engine.CACHE_MAGIC))
    meta = json.loads(data[len(engine.CACHE_MAGIC):end])
    meta.update(changes)
    path.write_bytes(engine.CACHE_MAGIC + json.dumps(meta, sort_keys=True).encode() + b"\n"
                     + data[end + 1:])


def test_a_file_from_another_wasmtime_version_is_ignored(cache_dir: str) -> None:
    module = wat.write_text("version\n")
    load(fresh_runtime(), module, cache_dir)
    [path] = cache_files(cache_dir)
    _rewrite_header(path, wasmtime="48.0.0")
    runtime = fresh_runtime()
    assert load(runtime, module, cache_dir) == "compiled"
    assert load(fresh_runtime(), module, cache_dir) == "disk"  # rewritten for this version


def test_the_key_holds_version_and_settings(cache_dir: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    plain = engine.DiskCache(cache_dir, SETTINGS)
    fuel = engine.DiskCache(cache_dir, (("consume_fuel", True), *SETTINGS[1:]))
    monkeypatch.setattr(engine, "_WASMTIME_VERSION", "50.0.0")
    other_version = engine.DiskCache(cache_dir, SETTINGS)
    names = {cache.path_for("ab" * 32) for cache in (plain, fuel, other_version)}
    assert len(names) == 3


@pytest.mark.parametrize("damage", ["garbage", "truncated", "payload", "empty", "header"])
def test_a_corrupt_file_is_ignored(cache_dir: str, damage: str) -> None:
    module = wat.write_text(f"corrupt {damage}\n")
    load(fresh_runtime(), module, cache_dir)
    [path] = cache_files(cache_dir)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "payload":
        path.write_bytes(data[:-100] + bytes(b ^ 0xFF for b in data[-100:]))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        # A header that matches but a payload that is not a serialized module.
        payload = b"not native code"
        _rewrite_header(path, payload_sha256=hashlib.sha256(payload).hexdigest())
        raw = path.read_bytes()
        path.write_bytes(raw[: raw.index(b"\n", len(engine.CACHE_MAGIC)) + 1] + payload)
    os.chmod(path, 0o600)
    runtime = fresh_runtime()
    assert load(runtime, module, cache_dir) == "compiled"
    compiled = runtime.cached(hashlib.sha256(module).hexdigest())
    assert compiled is not None


def test_an_unwritable_cache_folder_only_costs_speed(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert load(fresh_runtime(), wat.HELLO, str(blocker / "cache")) == "compiled"


@pytest.mark.anyio
async def test_sandboxes_share_compiled_modules(make_config: Callable[..., Any]) -> None:
    text = f"shared between sandboxes {uuid.uuid4()}\n"
    module = wat.write_text(text)  # new to this process
    async with WasmSandbox(make_config(), gate=False) as first:
        one = await first.execute(module)
        two = await first.execute(module)
    async with WasmSandbox(make_config(), gate=False) as second:
        three = await second.execute(module)
    assert (one.cache, two.cache, three.cache) == ("compiled", "memory", "memory")
    assert one.stdout == two.stdout == three.stdout == text.encode()


@pytest.mark.anyio
async def test_a_module_file_is_read_again_when_it_changes(
        make_config: Callable[..., Any], tmp_path: Path) -> None:
    path = tmp_path / "m.wasm"
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        path.write_bytes(wat.write_text("first\n"))
        first = await sandbox.execute(str(path))
        path.write_bytes(wat.write_text("second!\n"))
        os.utime(path, ns=(1, 1))
        second = await sandbox.execute(path)
    assert (first.stdout, second.stdout) == (b"first\n", b"second!\n")


@pytest.mark.anyio
async def test_compile_ahead_of_time(make_config: Callable[..., Any]) -> None:
    module = wat.write_text("ahead\n")
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        digest = await sandbox.compile(module)
        result = await sandbox.execute(module)
    assert digest == hashlib.sha256(module).hexdigest() == result.module_sha256
    assert result.cache == "memory"


def _plant(cache_dir: str, victim: bytes, evil: bytes) -> Path:
    """The attack: the compiled code of ``evil`` under ``victim``'s name in the cache, with a
    header that matches (anyone who can write the file can compute it)."""
    runtime = fresh_runtime()
    load(runtime, victim, cache_dir)
    load(runtime, evil, cache_dir)
    disk = runtime.disk_cache(cache_dir)
    victim_path = Path(disk.path_for(hashlib.sha256(victim).hexdigest()))
    evil_path = Path(disk.path_for(hashlib.sha256(evil).hexdigest()))
    victim_path.write_bytes(evil_path.read_bytes())
    _rewrite_header(victim_path, module=hashlib.sha256(victim).hexdigest())
    os.chmod(victim_path, 0o600)
    return victim_path


def _output_of(runtime: engine.Runtime, module: bytes) -> bytes:
    from neuroflow_sandbox_wasm.config import WasmSandboxConfig
    from neuroflow_sandbox_wasm.runner import RunPlan, run_module

    compiled = runtime.cached(hashlib.sha256(module).hexdigest())
    assert compiled is not None
    plan = RunPlan(argv=("m.wasm",), env={}, stdin=None, entry="_start", timeout=10,
                   fuel=None, preopens=())
    result = run_module(runtime, compiled, WasmSandboxConfig(), plan, "test")
    assert result is not None
    return result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="planting a file as another user needs root")
def test_code_planted_by_another_user_is_not_run(cache_dir: str) -> None:
    """A file another (unprivileged) user wrote into the cache folder, with a matching header
    and mode 0600, is never deserialized: it would run the attacker's code."""
    victim, evil = wat.write_text("victim\n"), wat.write_text("evil!!\n")
    planted = _plant(cache_dir, victim, evil)
    # Owned by us, the same file would be trusted: this is what the owner check stops.
    trusting = fresh_runtime()
    assert load(trusting, victim, cache_dir) == "disk"
    assert _output_of(trusting, victim) == b"evil!!\n"
    planted = _plant(cache_dir, victim, evil)
    os.chown(planted, 65534, 65534)
    runtime = fresh_runtime()
    assert load(runtime, victim, cache_dir) == "compiled"
    assert _output_of(runtime, victim) == b"victim\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a folder to another user needs root")
def test_a_cache_folder_of_another_user_is_neither_read_nor_written(cache_dir: str) -> None:
    victim, evil = wat.write_text("victim 2\n"), wat.write_text("evil 2!\n")
    planted = _plant(cache_dir, victim, evil)
    os.chown(cache_dir, 65534, 65534)
    os.chown(planted, 65534, 65534)
    before = {p.name: p.read_bytes() for p in cache_files(cache_dir)}
    runtime = fresh_runtime()
    assert load(runtime, victim, cache_dir) == "compiled"
    assert _output_of(runtime, victim) == b"victim 2\n"
    load(runtime, wat.write_text("new 2\n"), cache_dir)
    assert {p.name: p.read_bytes() for p in cache_files(cache_dir)} == before
    assert os.stat(cache_dir).st_uid == 65534  # not taken over either
