"""Hundreds of executions at once from one process: all finish, threads stay bounded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import wat_modules as wat

from neuroflow_sandbox_wasm.result import WasmEndReason
from neuroflow_sandbox_wasm.sandbox import WasmSandbox

pytestmark = pytest.mark.anyio


async def test_hundreds_of_concurrent_executions(make_config: Callable[..., Any]) -> None:
    limit = 4
    results: dict[int, Any] = {}
    peak_threads = threading.active_count()
    baseline = peak_threads

    async def one(i: int, sandbox: WasmSandbox) -> None:
        nonlocal peak_threads
        module = wat.echo_stdin() if i % 3 else wat.SPIN
        results[i] = await sandbox.execute(module, stdin=f"run {i}".encode())
        peak_threads = max(peak_threads, threading.active_count())

    config = make_config(max_concurrent=limit, max_fuel=200_000, timeout_seconds=30)
    async with WasmSandbox(config, gate=False) as sandbox:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for i in range(300):
                    group.start_soon(one, i, sandbox)
        assert (await sandbox.execute(wat.HELLO)).ok
    assert len(results) == 300
    for i, result in results.items():
        if i % 3:
            assert result.stdout == f"run {i}".encode() and result.ok
        else:
            assert result.wasm_reason is WasmEndReason.OUT_OF_FUEL
    # Worker threads (+ one epoch ticker per engine, + slack for other tests' threads).
    assert peak_threads - baseline <= limit + 4


async def test_executions_do_not_see_each_others_output(
        make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(max_concurrent=8), gate=False) as sandbox:
        async def one(i: int) -> None:
            text = f"{i}:" + "x" * (i % 50)
            result = await sandbox.execute(wat.echo_stdin(), stdin=text.encode())
            assert result.stdout == text.encode()

        async with anyio.create_task_group() as group:
            for i in range(200):
                group.start_soon(one, i)
