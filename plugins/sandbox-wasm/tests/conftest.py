"""Fixtures for the WASM sandbox tests: a private compiled-module cache per test."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def cache_dir(tmp_path: Path) -> str:
    """A compiled-module cache folder of this test only (not created yet)."""
    return str(tmp_path / "wasm-cache")


@pytest.fixture
def make_config(cache_dir: str) -> Callable[..., Any]:
    """``make_config(**fields)``: a WasmSandboxConfig using this test's cache folder."""
    from neuroflow_sandbox_wasm.config import WasmSandboxConfig

    def make(**fields: Any) -> WasmSandboxConfig:
        fields.setdefault("cache_dir", cache_dir)
        return WasmSandboxConfig(**fields)

    return make
