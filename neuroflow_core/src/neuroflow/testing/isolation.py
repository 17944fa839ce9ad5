"""``IsolationBackendSuite``: the conformance tests every sandbox backend must pass.

Subclass it in your plugin's tests.  Either name your backend and let the suite build it
through the plugin manager::

    from neuroflow.testing import IsolationBackendSuite

    class TestFirejail(IsolationBackendSuite):
        backend_name = "firejail"
        backend_config = None          # or a config object; None = the backend's defaults

or override the ``make_isolation_backend`` fixture to build it yourself: it returns a
factory ``make(**settings) -> backend`` (a new backend whose config has ``settings``
changed, e.g. ``max_output_bytes=4096``; the tests close what they make)::

    class TestMine(IsolationBackendSuite):
        @pytest.fixture
        def make_isolation_backend(self):
            return lambda **settings: MyBackend(MyConfig(**settings))

The backend most tests use, the ``isolation_backend`` fixture, comes from that factory;
you may override it too (it must yield an open backend).  Every test runs: a backend
whose config cannot take a setting a test needs fails that test, saying which.

The tests only run ``/bin/sh``, ``/bin/echo``, ``/bin/sleep`` and ``/bin/cat``, so any
POSIX backend can pass.  Every test is ``@pytest.mark.anyio``: the project's
``anyio_backend`` fixture decides whether it runs under asyncio, trio or both.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest


class IsolationBackendSuite:
    """Conformance tests for an isolation backend (see the module docstring)."""

    #: The backend's registered name, used by the default ``make_isolation_backend``.
    backend_name: ClassVar[str | None] = None
    #: The config object passed to the backend's factory (``None``: its defaults).
    backend_config: ClassVar[Any] = None
    #: Output cap the output test configures, when the backend's config has
    #: ``max_output_bytes``.
    output_cap: ClassVar[int] = 4096

    @pytest.fixture
    def make_isolation_backend(self) -> Callable[..., Any]:
        """A factory ``make(**settings) -> backend``; override to build backends yourself.

        The default builds the backend named ``backend_name`` through the plugin
        manager, from ``backend_config`` (or its defaults) with ``settings`` changed.
        """
        return self._make

    @pytest.fixture
    async def isolation_backend(
        self, make_isolation_backend: Callable[..., Any]
    ) -> AsyncIterator[Any]:
        """The backend under test, made by ``make_isolation_backend()``, closed after."""
        backend = make_isolation_backend()
        try:
            yield backend
        finally:
            await backend.aclose()

    def _make(self, **settings: Any) -> Any:
        if not settings:
            return self._create(self.backend_config)
        config = self._config_with(**settings)
        if config is None:
            pytest.fail(
                f"{type(self).__name__}: cannot give backend {self.backend_name!r} the "
                f"settings {settings!r} (its config is not an attrs class with those "
                "fields); override the make_isolation_backend fixture"
            )
        return self._create(config)

    def _create(self, config: Any) -> Any:
        from neuroflow import create_backend

        if self.backend_name is None:
            pytest.fail(
                f"{type(self).__name__}: set backend_name or override the "
                "make_isolation_backend fixture"
            )
        return create_backend("isolation", self.backend_name, config)

    def _config_with(self, **changes: Any) -> Any:
        """The suite's config with ``changes``, or ``None`` if the backend takes none."""
        import attrs

        config = self.backend_config
        if config is None and self.backend_name is not None:
            from neuroflow.backends import backend_config_class

            config_class = backend_config_class("isolation", self.backend_name)
            config = config_class() if config_class is not None else None
        if config is None or not attrs.has(type(config)):
            return None
        names = {a.name for a in attrs.fields(type(config))}
        if not set(changes) <= names:
            return None
        return attrs.evolve(config, **changes)

    # --- the tests ---------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_exit_code_propagates(self, isolation_backend: Any) -> None:
        """A command's exit status is the result's ``exit_code``."""
        result = await isolation_backend.execute("/bin/sh", ["-c", "exit 7"])
        assert result.exit_code == 7
        assert not result.ok
        ok = await isolation_backend.execute("/bin/sh", ["-c", "exit 0"])
        assert ok.exit_code == 0
        assert ok.ok

    @pytest.mark.anyio
    async def test_stdout_and_stderr_are_captured_separately(
        self, isolation_backend: Any
    ) -> None:
        """stdout and stderr come back as bytes, each with only its own stream."""
        result = await isolation_backend.execute(
            "/bin/sh", ["-c", "echo out-line; echo err-line >&2"]
        )
        assert result.stdout == b"out-line\n"
        assert result.stderr == b"err-line\n"
        assert result.output == result.stdout

    @pytest.mark.anyio
    async def test_arguments_are_passed_verbatim(self, isolation_backend: Any) -> None:
        """Arguments reach the program unchanged: no shell splitting or globbing."""
        result = await isolation_backend.execute("/bin/echo", ["a  b", "*", "$HOME"])
        assert result.stdout == b"a  b * $HOME\n"

    @pytest.mark.anyio
    async def test_stdin_is_passed(self, isolation_backend: Any) -> None:
        """``stdin`` bytes are the program's standard input."""
        data = b"line one\nline two\n" * 1000
        result = await isolation_backend.execute("/bin/cat", stdin=data)
        assert result.exit_code == 0
        assert result.stdout == data

    @pytest.mark.anyio
    async def test_no_stdin_means_empty_input(self, isolation_backend: Any) -> None:
        """Without ``stdin`` the program reads end-of-file at once (it does not hang)."""
        result = await isolation_backend.execute("/bin/cat", timeout=20)
        assert result.exit_code == 0
        assert result.stdout == b""

    @pytest.mark.anyio
    async def test_environment_is_clean(
        self, isolation_backend: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A host variable is not visible inside; a variable passed with ``env`` is."""
        monkeypatch.setenv("NEUROFLOW_SUITE_SECRET", "host-secret-value")
        result = await isolation_backend.execute(
            "/bin/sh",
            ["-c", 'echo "secret=${NEUROFLOW_SUITE_SECRET:-unset} given=$GIVEN"'],
            env={"GIVEN": "yes"},
        )
        assert result.stdout == b"secret=unset given=yes\n"
        assert b"host-secret-value" not in result.stdout + result.stderr

    @pytest.mark.anyio
    async def test_timeout_ends_a_sleeping_command(self, isolation_backend: Any) -> None:
        """A command past its wall-clock timeout is killed and reported ``TIMED_OUT``."""
        from neuroflow.sandbox.result import TerminationReason

        result = await isolation_backend.execute("/bin/sleep", ["30"], timeout=0.5)
        assert result.reason is TerminationReason.TIMED_OUT
        assert not result.ok
        assert result.wall_time_ms < 30_000

    @pytest.mark.anyio
    async def test_result_types(self, isolation_backend: Any) -> None:
        """Every result field has the documented type."""
        from neuroflow.sandbox.result import SandboxResult, TerminationReason

        result = await isolation_backend.execute("/bin/echo", ["typed"])
        assert isinstance(result, SandboxResult)
        assert isinstance(result.exit_code, int)
        assert isinstance(result.stdout, bytes)
        assert isinstance(result.stderr, bytes)
        assert isinstance(result.wall_time_ms, float)
        assert result.wall_time_ms >= 0
        assert isinstance(result.cpu_time_ms, float)
        assert result.cpu_time_ms >= 0
        assert result.peak_memory_bytes is None or isinstance(result.peak_memory_bytes, int)
        assert isinstance(result.reason, TerminationReason)
        assert result.reason is TerminationReason.EXITED
        assert result.signal is None
        assert isinstance(result.stdout_truncated, bool)
        assert isinstance(result.stderr_truncated, bool)

    @pytest.mark.anyio
    async def test_output_is_capped(self, make_isolation_backend: Callable[..., Any]) -> None:
        """Output past ``max_output_bytes`` is cut and reported ``OUTPUT_LIMIT``."""
        from neuroflow.sandbox.result import TerminationReason

        backend = make_isolation_backend(max_output_bytes=self.output_cap)
        try:
            result = await backend.execute(
                "/bin/sh", ["-c", "while :; do echo 0123456789abcdef; done"], timeout=30
            )
        finally:
            await backend.aclose()
        assert result.reason is TerminationReason.OUTPUT_LIMIT
        assert result.stdout_truncated
        assert len(result.stdout) == self.output_cap

    @pytest.mark.anyio
    async def test_many_commands_in_a_row(self, isolation_backend: Any) -> None:
        """One backend runs many commands, each with its own result."""
        for i in range(25):
            result = await isolation_backend.execute("/bin/echo", [str(i)])
            assert result.stdout == f"{i}\n".encode()
            assert result.exit_code == 0

    @pytest.mark.anyio
    async def test_aclose_is_idempotent(self, isolation_backend: Any) -> None:
        """``aclose()`` may be called twice, and the backend is an async context manager."""
        backend = isolation_backend
        async with backend as entered:
            result = await entered.execute("/bin/echo", ["inside"])
            assert result.stdout == b"inside\n"
        await backend.aclose()
        await backend.aclose()

    @pytest.mark.anyio
    async def test_missing_program_is_an_error_not_a_hang(self, isolation_backend: Any) -> None:
        """A program that does not exist fails clearly (error or non-zero result)."""
        from neuroflow.errors import NeuroflowError

        missing = "/nonexistent/neuroflow-no-such-program-" + str(os.getpid())
        try:
            result = await isolation_backend.execute(missing, timeout=20)
        except NeuroflowError as exc:
            assert "neuroflow-no-such-program" in str(exc)
        else:
            assert not result.ok
