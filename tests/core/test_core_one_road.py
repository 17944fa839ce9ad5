"""One road from a name to a backend: every entry point builds backends through
``create_backend``, so the same guards judge a command however the sandbox was opened."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuroflow import BackendSpec, create_backend, hookimpl
from neuroflow.cli import build_cli
from neuroflow.errors import PluginError, SecurityError
from neuroflow.plugins import get_plugin_manager
from neuroflow.sandbox import SandboxIsolator

ROOT = Path(__file__).resolve().parents[2]
DENY_PYTHON = '[security.allowlist]\ndeny = ["python3"]\n'


class ThirdPartyBackend:
    """A backend from another distribution: it knows nothing about gates or audit."""

    ran: list[str] = []

    def __init__(self, config: object = None) -> None:
        self._inner = SandboxIsolator(gate=False)

    async def execute(self, command, args=(), *, stdin=None, env=None, timeout=None):
        ThirdPartyBackend.ran.append(command)
        return await self._inner.execute(command, args, stdin=stdin, env=env, timeout=timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> ThirdPartyBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class ThirdPartyPlugin:
    @hookimpl
    def neuroflow_backends(self) -> list[BackendSpec]:
        return [
            BackendSpec(name="third", kind="isolation", factory=ThirdPartyBackend),
            BackendSpec(name="namespace", kind="isolation", factory=ThirdPartyBackend,
                        config_class="neuroflow.sandbox:SandboxConfig"),
        ]


def _audit_records() -> list[dict]:
    log = Path(".neuroflow/audit.log")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _denials() -> list[tuple[str, str]]:
    return [(r["resource"], r["details"]["component"]) for r in _audit_records()
            if r.get("decision") == "deny"]


@pytest.fixture
def third_party() -> None:
    Path("neuroflow.toml").write_text(DENY_PYTHON)
    ThirdPartyBackend.ran = []
    get_plugin_manager().register(ThirdPartyPlugin(), name="third-party")


@pytest.mark.usefixtures("third_party")
@pytest.mark.parametrize("backend", ["third", "process"])
def test_the_cli_refuses_and_audits_a_denied_command_for_every_backend(backend: str) -> None:
    result = CliRunner().invoke(
        build_cli(), ["sandbox", "run", "--backend", backend, "--", "python3", "-c", "print(1)"])
    assert result.exit_code == 2, result.output
    assert "denied by rule 'allowlist.deny'" in result.stderr
    assert "1\n" not in result.stdout
    assert ThirdPartyBackend.ran == []
    assert _denials() == [("python3", f"sandbox.{backend}")]


@pytest.mark.anyio
@pytest.mark.usefixtures("third_party")
@pytest.mark.parametrize("backend", ["third", "process"])
async def test_open_sandbox_refuses_and_audits_a_denied_command(backend: str) -> None:
    from neuroflow.sandbox import open_sandbox

    async with open_sandbox(backend=backend) as sandbox:
        with pytest.raises(SecurityError, match=r"denied by rule 'allowlist\.deny'"):
            await sandbox.execute("python3", ["-c", "print(1)"])
        assert (await sandbox.execute("/bin/echo", ["ok"])).stdout == b"ok\n"
    assert _denials() == [("python3", f"sandbox.{backend}")]


@pytest.mark.anyio
@pytest.mark.usefixtures("third_party")
async def test_the_spec_facade_refuses_and_audits_a_denied_command() -> None:
    from neuroflow.sandbox import NamespaceIsolator, SandboxConfig

    async with NamespaceIsolator(SandboxConfig(enable_network=False)) as sandbox:
        with pytest.raises(SecurityError):
            await sandbox.execute("python3", ["-c", "print(1)"])
    assert ThirdPartyBackend.ran == []
    assert _denials() == [("python3", "sandbox.namespace")]


@pytest.mark.usefixtures("third_party")
def test_a_backend_that_is_not_a_backend_of_its_kind_is_refused_naming_the_plugin() -> None:
    class Junk:
        @hookimpl
        def neuroflow_backends(self) -> list[BackendSpec]:
            return [BackendSpec(name="junk", kind="isolation", factory=dict)]

    get_plugin_manager().register(Junk(), name="junk-plugin")
    with pytest.raises(PluginError) as info:
        create_backend("isolation", "junk")
    message = str(info.value)
    assert "sandbox backend 'junk' (plugin junk-plugin) built a dict" in message
    assert "not a IsolationBackend" in message and "execute" in message


def test_one_open_sandbox_and_execute_read_the_configuration_files_once() -> None:
    import anyio

    import neuroflow.config as config
    from neuroflow.sandbox import open_sandbox

    Path("neuroflow.toml").write_text(
        '[sandbox.process]\ncpu_time_limit = 5\n[security.allowlist]\nallow = ["echo"]\n')
    before = config.files_read

    async def go() -> bytes:
        async with open_sandbox() as sandbox:
            return (await sandbox.execute("echo", ["x"])).stdout

    assert anyio.run(go) == b"x\n"
    assert config.files_read - before == 1


# --- nothing but create_backend calls a factory ------------------------------------------------


def _source_files() -> list[Path]:
    found = [*ROOT.glob("neuroflow_core/src/neuroflow/**/*.py"),
             *ROOT.glob("plugins/*/src/**/*.py"), *ROOT.glob("examples/*/src/**/*.py")]
    return [p for p in found if p.name != "backends.py" or p.parent.name != "neuroflow"]


def _factories() -> dict[str, str]:
    """``{dotted attribute: module}`` of every factory given by reference."""
    out: dict[str, str] = {}
    for kind_specs in get_plugin_manager()._all_backends().values():
        for spec in kind_specs.values():
            if isinstance(spec.factory, str):
                module, _, attribute = spec.factory.partition(":")
                out[attribute] = module
    return out


def _module_name(path: Path) -> str:
    parts = path.with_suffix("").parts
    start = max(i for i, part in enumerate(parts) if part in ("src",)) + 1
    return ".".join(parts[start:])


def _calls(tree: ast.AST, dotted: str) -> list[int]:
    head, _, tail = dotted.rpartition(".")
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if not head and isinstance(func, ast.Name) and func.id == dotted:
            lines.append(node.lineno)
        elif (head and isinstance(func, ast.Attribute) and func.attr == tail
              and isinstance(func.value, ast.Name) and func.value.id == head.split(".")[-1]):
            lines.append(node.lineno)
    return lines


def test_no_code_but_create_backend_calls_a_backend_factory() -> None:
    factories = _factories()
    assert {"SandboxIsolator", "InMemoryStore", "LexicalEmbedder", "ScriptedProvider"} <= set(
        factories)
    offences = []
    for path in _source_files():
        text = path.read_text()
        tree = ast.parse(text)
        module = _module_name(path)
        if "load_factory(" in text:
            offences.append(f"{path.relative_to(ROOT)} calls load_factory()")
        for dotted, home in factories.items():
            if module == home:
                continue  # a module may use its own class (a config validating its examples)
            offences += [f"{path.relative_to(ROOT)}:{line} calls {dotted}()"
                         for line in _calls(tree, dotted)]
    assert not offences, "build backends with neuroflow.create_backend:\n" + "\n".join(offences)


# --- hooks are called the way pluggy calls them -------------------------------------------------


def test_implementations_taking_a_subset_of_the_arguments_work_for_every_hook() -> None:
    import anyio
    import click

    from neuroflow.doctor import Check
    from neuroflow.security import Action, ActionContext, SecurityManager, Verdict

    seen: list[str] = []

    class Subset:
        @hookimpl
        def neuroflow_backends(self) -> list[BackendSpec]:
            seen.append("backends")
            return []

        @hookimpl
        def neuroflow_guard_check(self, action: Action) -> Verdict | None:
            seen.append(f"guard {action.target}")
            return Verdict.deny("subset.no-rm", "no rm") if action.target == "rm" else None

        @hookimpl
        def neuroflow_audit_event(self) -> None:
            seen.append("audit")

        @hookimpl
        def neuroflow_cli_commands(self) -> None:
            seen.append("cli")

        @hookimpl
        def neuroflow_doctor_checks(self) -> list[Check]:
            return [Check("subset check", True)]

    manager = get_plugin_manager()
    manager.register(Subset(), name="subset")
    manager.plugin_infos()
    assert "backends" in seen
    build_cli(manager)
    assert "cli" in seen
    assert "subset check" in [c.name for c in manager.doctor_checks()]
    assert manager.plugin_infos() and all(
        i.status != "failed" for i in manager.plugin_infos() if i.name == "subset")

    gate = SecurityManager.from_config()
    assert gate.check(Action("command", "ls", "a"), ActionContext()).decision.value == "allow"
    assert gate.check(Action("command", "rm", "a"), ActionContext()).rule == "subset.no-rm"

    async def authorize() -> None:
        await gate.authorize(Action("command", "ls", "a"), ActionContext())

    anyio.run(authorize)
    assert "audit" in seen and "guard ls" in seen
    del click


def test_a_raising_guard_hook_is_named_by_its_plugin() -> None:
    from neuroflow.security import Action, ActionContext, SecurityManager

    class Broken:
        @hookimpl
        def neuroflow_guard_check(self, context: ActionContext) -> None:
            raise RuntimeError("kaput")

    get_plugin_manager().register(Broken(), name="acme-guards")
    verdict = SecurityManager.from_config().check(Action("command", "ls", "a"), ActionContext())
    assert (verdict.decision.value, verdict.rule) == ("deny", "acme-guards.error")
    assert "RuntimeError: kaput" in verdict.reason


def test_a_bad_section_does_not_stop_a_capability_that_does_not_need_it() -> None:
    import anyio

    from neuroflow.errors import ConfigError
    from neuroflow.memory import MemoryManager
    from neuroflow.sandbox import open_sandbox

    Path("neuroflow.toml").write_text('[memory]\nmax_entries = "lots"\n[sandbox.process]\n'
                                      'cpu_time_limit = 5\n')

    async def run() -> bytes:
        async with open_sandbox(gate=False) as sandbox:
            return (await sandbox.execute("echo", ["fine"])).stdout

    assert anyio.run(run) == b"fine\n"
    with pytest.raises(ConfigError, match=r"memory\.max_entries: expected an integer"):
        MemoryManager()
