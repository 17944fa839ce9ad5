"""What a module sees and what comes back: output, stdin, arguments, environment, exit
codes, files in and out, and errors that name the argument."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import wat_modules as wat

from neuroflow.errors import ConfigError, SandboxError
from neuroflow.sandbox import IsolationBackend, SandboxResult, TerminationReason
from neuroflow_sandbox_wasm.config import Preopen, WasmSandboxConfig
from neuroflow_sandbox_wasm.result import WasmEndReason, WasmResult
from neuroflow_sandbox_wasm.sandbox import WasmSandbox

pytestmark = pytest.mark.anyio


async def test_hello_world_reaches_stdout(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        result = await sandbox.execute(wat.HELLO)
    assert isinstance(result, WasmResult) and isinstance(result, SandboxResult)
    assert result.output == result.stdout == b"hello from wasm\n"
    assert result.stderr == b""
    assert result.exit_code == 0 and result.ok
    assert result.wasm_reason is WasmEndReason.EXITED
    assert result.reason is TerminationReason.EXITED
    assert result.execution_time_ms == result.wall_time_ms > 0
    assert result.peak_memory_bytes == 65536  # one page
    assert result.fuel_consumed is None  # fuel metering is off without max_fuel
    assert len(result.module_sha256) == 64


async def test_stderr_is_kept_apart(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        result = await sandbox.execute(wat.write_text("to stderr", fd=2))
    assert (result.stdout, result.stderr) == (b"", b"to stderr")


async def test_stdin_is_read(make_config: Callable[..., Any]) -> None:
    data = bytes(range(256)) * 100
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        result = await sandbox.execute(wat.echo_stdin(), stdin=data)
        empty = await sandbox.execute(wat.echo_stdin())
        text = await sandbox.execute(wat.echo_stdin(), stdin="héllo")
    assert result.stdout == data
    assert empty.stdout == b"" and empty.ok
    assert text.stdout == "héllo".encode()


async def test_arguments_come_after_the_configured_ones(make_config: Callable[..., Any],
                                                        tmp_path: Path) -> None:
    async with WasmSandbox(make_config(args=["--fixed"]), gate=False) as sandbox:
        from_bytes = await sandbox.execute(wat.PRINT_ARGS, ["a", "b c", ""])
        path = tmp_path / "args.wasm"
        path.write_bytes(wat.PRINT_ARGS)
        from_path = await sandbox.execute(str(path), ["x"])
    assert from_bytes.stdout == b"module.wasm\0--fixed\0a\0b c\0\0"
    assert from_path.stdout == b"args.wasm\0--fixed\0x\0"


async def test_each_run_sees_its_own_arguments(make_config: Callable[..., Any]) -> None:
    # Runs with the same arguments share what is built from them: many distinct lists,
    # repeated and interleaved, some inline and some in worker threads at once, must each
    # see exactly their own (non-ASCII too).
    from neuroflow_sandbox_wasm.runner import _ARGV_KEEP

    lists = [[f"w{i}", "é" * (i % 3), str(i * 7)] for i in range(_ARGV_KEEP * 2 + 5)]
    async with WasmSandbox(make_config(max_fuel=100_000), gate=False) as sandbox:
        for round_ in range(2):
            for args in lists if round_ == 0 else reversed(lists):
                result = await sandbox.execute(wat.PRINT_ARGS, args)
                assert result.stdout == b"\0".join(
                    a.encode() for a in ["module.wasm", *args]) + b"\0"
        results: dict[int, Any] = {}

        async def one(i: int) -> None:
            results[i] = await sandbox.execute(wat.PRINT_ARGS, lists[i % 7], fuel=10**7)

        async with anyio.create_task_group() as tg:
            for i in range(21):
                tg.start_soon(one, i)
    for i, result in results.items():
        assert result.stdout == b"\0".join(
            a.encode() for a in ["module.wasm", *lists[i % 7]]) + b"\0"


async def test_one_call_s_settings_do_not_reach_the_next(
        make_config: Callable[..., Any]) -> None:
    # Calls with default settings share one plan: what another call gave must not stick.
    async with WasmSandbox(make_config(env={"A": "1"}, max_fuel=100_000),
                           gate=False) as sandbox:
        bare = await sandbox.execute(wat.PRINT_ENV)
        given = await sandbox.execute(wat.PRINT_ENV, env={"B": "two"})
        again = await sandbox.execute(wat.PRINT_ENV)
        with_args = await sandbox.execute(wat.PRINT_ARGS, ["x"])
        without = await sandbox.execute(wat.PRINT_ARGS)
        little = await sandbox.execute(wat.SPIN, fuel=1000)
        default = await sandbox.execute(wat.SPIN)
        short = await sandbox.execute(wat.SPIN, timeout=0.05, fuel=10**12)
    assert (bare.stdout, given.stdout, again.stdout) == (b"A=1\0", b"A=1\0B=two\0",
                                                         b"A=1\0")
    assert (with_args.stdout, without.stdout) == (b"module.wasm\0x\0", b"module.wasm\0")
    assert little.wasm_reason is WasmEndReason.OUT_OF_FUEL
    assert little.fuel_consumed is not None and little.fuel_consumed <= 1000
    assert default.wasm_reason is WasmEndReason.OUT_OF_FUEL
    assert default.fuel_consumed is not None and default.fuel_consumed > 90_000
    assert short.wasm_reason is WasmEndReason.TIMED_OUT


async def test_environment_holds_only_what_was_given(make_config: Callable[..., Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_SECRET", "do-not-leak")
    async with WasmSandbox(make_config(env={"A": "1"}), gate=False) as sandbox:
        result = await sandbox.execute(wat.PRINT_ENV, env={"B": "two"})
        bare = await sandbox.execute(wat.PRINT_ENV)
    assert sorted(result.stdout.split(b"\0")[:-1]) == [b"A=1", b"B=two"]
    assert bare.stdout == b"A=1\0"
    assert b"HOST_SECRET" not in result.stdout


@pytest.mark.parametrize("code", [0, 1, 3, 125])
async def test_exit_code_from_proc_exit(make_config: Callable[..., Any], code: int) -> None:
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        result = await sandbox.execute(wat.exit_with(code))
    assert result.exit_code == code
    assert result.wasm_reason is WasmEndReason.EXITED
    assert result.ok is (code == 0)


async def test_named_export(make_config: Callable[..., Any]) -> None:
    import wasmtime

    module = wasmtime.wat2wasm("""(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (call $exit (i32.const 1)))
      (func (export "other") (call $exit (i32.const 9)))
      (func (export "needs") (param i32) (call $exit (local.get 0)))
      (func (export "gives") (result i32) (i32.const 7)))""")
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        assert (await sandbox.execute(module, entry="other")).exit_code == 9
        missing = await sandbox.execute(module, entry="nope")
        not_a_function = await sandbox.execute(module, entry="memory")
        non_ascii = await sandbox.execute(module, entry="é")
        # Twice each: the entry's type is looked up once per module, then remembered.
        needs = [await sandbox.execute(module, entry="needs") for _ in range(2)]
        gives = [await sandbox.execute(module, entry="gives") for _ in range(2)]
        again = await sandbox.execute(module, entry="other")
    assert missing.wasm_reason is WasmEndReason.ERROR
    assert "nope" in (missing.trap or "")
    assert not_a_function.wasm_reason is WasmEndReason.ERROR
    assert "'memory'" in (not_a_function.trap or "")
    assert non_ascii.wasm_reason is WasmEndReason.ERROR
    for result in needs:
        assert result.wasm_reason is WasmEndReason.ERROR
        assert "parameters" in (result.trap or "")
    for result in gives:
        assert (result.wasm_reason, result.exit_code) == (WasmEndReason.EXITED, 0)
    assert again.exit_code == 9


async def test_files_in_and_out(make_config: Callable[..., Any]) -> None:
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        read = await sandbox.execute(wat.open_file("in/data.txt"),
                                     files={"in/data.txt": b"given content"})
        wrote = await sandbox.execute(wat.open_file("out.txt", write=True), files={})
    assert read.stdout == b"given content" and read.ok
    assert read.files == {os.path.join("in", "data.txt"): b"given content"}
    assert wrote.ok and wrote.files == {"out.txt": b"written"}


async def test_links_the_module_makes_are_not_followed_when_files_come_back(
        make_config: Callable[..., Any], tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    depth = "../" * 12
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        result = await sandbox.execute(
            wat.make_symlink(depth + str(secret).lstrip("/"), "leak"), files={})
    assert "leak" not in (result.files or {})
    assert all(b"host secret" not in body for body in (result.files or {}).values())


async def test_is_an_isolation_backend(make_config: Callable[..., Any]) -> None:
    sandbox = WasmSandbox(make_config(), gate=False)
    assert isinstance(sandbox, IsolationBackend)
    await sandbox.aclose()
    await sandbox.aclose()
    with pytest.raises(SandboxError, match="closed"):
        await sandbox.execute(wat.HELLO)


@pytest.mark.parametrize(("call", "message"), [
    (lambda sb: sb.execute(wat.HELLO, "not-a-list"), "args"),
    (lambda sb: sb.execute(wat.HELLO, [1]), "args"),
    (lambda sb: sb.execute(wat.HELLO, stdin=123), "stdin"),
    (lambda sb: sb.execute(wat.HELLO, env={"A=B": "x"}), "env"),
    (lambda sb: sb.execute(wat.HELLO, timeout=0), "timeout"),
    (lambda sb: sb.execute(wat.HELLO, fuel=10), "fuel"),
    (lambda sb: sb.execute(wat.HELLO, files={"../up": b""}), "files"),
    (lambda sb: sb.execute(wat.HELLO, files={"/abs": b""}), "files"),
    (lambda sb: sb.execute(b""), "module"),
    (lambda sb: sb.execute(b"\0asm\x01\0\0\0garbage"), "module: not a valid"),
    (lambda sb: sb.execute("/no/such/module.wasm"), "module: cannot read"),
    (lambda sb: sb.execute(12), "module"),
    (lambda sb: sb.execute(wat.importing("env", "host_fn")), "env.host_fn"),
])
async def test_bad_arguments_are_named(make_config: Callable[..., Any], call: Any,
                                       message: str) -> None:
    async with WasmSandbox(make_config(), gate=False) as sandbox:
        with pytest.raises(SandboxError, match=message.replace(".", r"\.")):
            await call(sandbox)
        assert (await sandbox.execute(wat.HELLO)).ok  # still serving


@pytest.mark.parametrize(("fields", "message"), [
    ({"max_fuel": "lots"}, "max_fuel: expected an integer amount of fuel or None, got 'lots'"),
    ({"max_memory_bytes": 0}, "max_memory_bytes: expected an integer number of bytes "
                              "greater than 0"),
    ({"timeout_seconds": -1}, "timeout_seconds"),
    ({"max_output_bytes": 1.5}, "max_output_bytes"),
    ({"max_instances": True}, "max_instances"),
    ({"preopens": "/tmp"}, "preopens: expected a list"),
    ({"preopens": [("/tmp",)]}, r"preopens\[0\]: expected a Preopen"),
    ({"preopens": [{"host_path": "/tmp"}]}, r"preopens\[0\]: expected keys"),
    ({"preopens": [("/tmp", "/a", "yes")]}, r"preopens\[0\]\.read_only: expected true"),
    ({"preopens": [("/tmp", "/a"), ("/var", "/a")]}, r"preopens\[1\]\.guest_path"),
    ({"env": {"A": 1}}, "env.A: expected a string"),
    ({"args": "x"}, "args: expected a list"),
    ({"entry": ""}, "entry: expected an export name"),
    ({"max_concurrent": None}, "max_concurrent"),
    ({"disk_cache": "no"}, "disk_cache: expected true or false"),
])
def test_config_errors_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WasmSandboxConfig(**fields)


@pytest.mark.parametrize(("fields", "message"), [
    ({"max_memory_bytes": None}, "max_memory_bytes: expected a number of bytes, got None "
                                 r"\(security_level='standard' requires it\)"),
    ({"timeout_seconds": None}, "timeout_seconds: expected a number of seconds when max_fuel"),
    ({"security_level": "strict"}, "max_fuel: expected an amount of fuel, got None"),
    ({"security_level": "strict", "max_fuel": 10, "timeout_seconds": None},
     "timeout_seconds: expected a number of seconds, got None"),
    ({"security_level": "strict", "max_fuel": 10, "preopens": [("/tmp", "/t", False)]},
     r"preopens\[0\]\.read_only: expected true, got false"),
    ({"security_level": "paranoid"}, "security_level: expected one of permissive, standard, "
                                     "strict, got 'paranoid'"),
])
def test_security_levels_require_limits(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WasmSandboxConfig(**fields)


def test_security_levels_that_hold() -> None:
    assert WasmSandboxConfig().security_level == "standard"
    assert WasmSandboxConfig(timeout_seconds=None, max_fuel=10).max_fuel == 10
    assert WasmSandboxConfig(security_level="strict", max_fuel=10,
                             preopens=[("/tmp", "/t")]).preopens[0].read_only
    loose = WasmSandboxConfig(security_level="permissive", max_memory_bytes=None,
                              timeout_seconds=None)
    assert loose.max_memory_bytes is None and loose.timeout_seconds is None


def test_config_forms_of_a_preopen(tmp_path: Path) -> None:
    config = WasmSandboxConfig(preopens=[
        (tmp_path, "/a"), (str(tmp_path), "/b", False),
        {"host_path": str(tmp_path), "guest_path": "/c"},
        Preopen(host_path=str(tmp_path), guest_path="/d")])
    assert [(p.guest_path, p.read_only) for p in config.preopens] == [
        ("/a", True), ("/b", False), ("/c", True), ("/d", True)]
    assert all(p.host_path == str(tmp_path) for p in config.preopens)


def test_missing_preopened_directory_is_named(tmp_path: Path) -> None:
    config = WasmSandboxConfig(preopens=[(tmp_path, "/a"), (tmp_path / "nope", "/b")])
    with pytest.raises(ConfigError, match=r"preopens\[1\]\.host_path: expected an existing"):
        WasmSandbox(config, gate=False)


def test_config_from_a_table(cache_dir: str, tmp_path: Path) -> None:
    sandbox = WasmSandbox({"max_fuel": 5000, "timeout_seconds": 2, "cache_dir": cache_dir,
                           "preopens": [{"host_path": str(tmp_path), "guest_path": "/d",
                                         "read_only": False}]}, gate=False)
    assert sandbox.config.max_fuel == 5000
    assert sandbox.config.preopens[0].read_only is False
    with pytest.raises(ConfigError, match="max_fuel"):
        WasmSandbox({"max_fuel": "lots"}, gate=False)


def test_config_uses_the_core_s_shared_validators() -> None:
    """The WASM config repeats none of the sandbox config's validators: it uses the core's
    public ones (``neuroflow.sandbox.validators``)."""
    import ast
    import inspect

    import attrs

    from neuroflow.sandbox import validators
    from neuroflow_sandbox_wasm import config as wasm_config

    fields = attrs.fields_dict(WasmSandboxConfig)
    assert fields["env"].converter is validators.env_table
    assert fields["env"].validator is validators.check_env
    assert fields["security_level"].converter is validators.security_level
    assert fields["disk_cache"].validator is validators.check_bool
    assert fields["cache_dir"].validator is validators.check_optional_dir
    assert fields["cache_dir"].converter is validators.path_str
    shared = {name for name, _ in inspect.getmembers(validators, inspect.isfunction)
              if not name.startswith("_")}
    defined = {node.name for node in ast.walk(ast.parse(inspect.getsource(wasm_config)))
               if isinstance(node, ast.FunctionDef)}
    twins = {name for name in defined if name.lstrip("_") in shared
             or name in {"_number", "_to_env", "_to_level", "_path_str", "_check_cache_dir",
                         "_to_args"}}
    assert not twins, f"the WASM config defines its own copies of {sorted(twins)}"
