"""``IsolationBackendSuite``: the conformance tests every sandbox backend must pass.

Subclass it in your plugin's tests.  Either name your backend and let the suite build it
by name, as NeuroFlow does when a user selects it::

    from neuroflow.testing import IsolationBackendSuite

    class TestFirejail(IsolationBackendSuite):
        backend_name = "firejail"
        backend_config = None          # or a config object; None = the backend's defaults

or override the ``make_isolation_backend`` fixture to build it yourself.  It returns a
factory ``make(gate=..., **settings) -> backend``: a new backend whose config has
``settings`` changed (e.g. ``max_output_bytes=4096``), and, when the suite passes
``gate``, that runs every command past that ``ActionGate`` (the tests close what they
make)::

    class TestMine(IsolationBackendSuite):
        @pytest.fixture
        def make_isolation_backend(self):
            def make(gate=None, **settings):
                return MyBackend(MyConfig(**settings), gate=gate)
            return make

The backend most tests use, the ``isolation_backend`` fixture, is ``make()``; you may
override it too (it must yield an open backend).

What the suite checks, each with a program that a backend ignoring the rule cannot get
past: exit codes, signals, stdin/stdout/stderr; the wall-clock timeout (per call and
``wall_timeout``), the CPU-time limit, the memory limit and the output cap each stop a
program that would otherwise finish and say so; ``allowed_commands`` refuses a command
before it runs (a file it would write never appears); the host's environment stays out
(a variable set before the backend was built and one set after); the whole process tree
is gone after a run and after a timeout (a child, and a grandchild that double-forks into
its own session); commands run in ``work_dir``; and the gate is asked before every
command, told how each ended, and stops a command it denies.

The settings the tests use are ``SandboxConfig`` fields: ``wall_timeout``,
``cpu_time_limit``, ``memory_limit``, ``max_output_bytes``, ``allowed_commands`` and
``work_dir``.  A backend whose config cannot take one fails the test that needs it, saying
which; a backend that refuses a setting with ``UnsupportedLimitError`` (it cannot enforce
it on this machine, e.g. no cgroups) skips that test with its message.  Every execution
is bounded, so a backend that ignores a limit fails instead of hanging.

Parts of the suite a backend does not support are declared, with the reason, in
``unsupported`` (keys of :data:`FEATURES`)::

    class TestWasm(IsolationBackendSuite):
        backend_name = "wasm"
        unsupported = {"signals": "WebAssembly has no signals; a trap is reported SIGNALLED",
                       "process_tree": "a module cannot start a process"}

Their tests are not generated for that class (so they are neither passed nor skipped:
CI, where a skip fails the run, stays green), and the pytest plugin lists each as ``not
applicable: <reason>`` in the run's summary.  An unknown feature name or an empty reason
is an error when the class is defined.

The programs the tests run come from the ``suite_programs`` fixture, a
:class:`SuitePrograms`: by default POSIX shell scripts run by ``/bin/sh`` with the usual
tools on the sandbox's ``PATH`` (``sleep``, ``cat``, ``setsid`` when present; the CPU test
reads ``/proc/$$/stat``).  A backend that runs something else (WebAssembly modules, one
interpreter) overrides the fixture with programs of its own that do the same, and maps the
suite's settings to its config's fields in :meth:`IsolationBackendSuite.backend_settings`.

Every test is ``@pytest.mark.anyio``: the ``anyio_backend`` fixture
decides whether it runs under asyncio, trio or both.  Run it with
``pip install 'neuroflow[testing]'`` and ``pytest``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

MiB = 1024 * 1024

#: Longest any single ``execute`` of the suite may take before the test fails.
_RUN_BOUND = 60.0
#: Seconds a killed process tree gets to disappear after ``execute`` returned.
_SETTLE = 1.0

# A CPU spinner that stops by itself, printing "survived", once it has used 2.5 CPU
# seconds (it reads its own utime + stime from /proc): a 1 s CPU limit must end it first.
_CPU_SPIN = r"""
hz=$(getconf CLK_TCK 2>/dev/null) || hz=100
need=$((hz * 5 / 2))
while :; do
  read -r line < /proc/$$/stat || { echo no-proc; exit 3; }
  set -- ${line##*) }
  [ $(( ${12} + ${13} )) -ge "$need" ] && break
done
echo survived
"""

# Doubles a string until it holds 128 MiB (the shell needs about three times that), then
# says so: a 32 MiB memory limit must end it first.
_MEMORY_HOG = r"""
a=0123456789abcdef; i=0
while [ $i -lt 23 ]; do a="$a$a"; i=$((i+1)); done
echo survived ${#a}
"""

# Starts a child (same process group) and a grandchild that double-forks into a session
# of its own; each writes its pid to a file in the working directory and then waits
# forever.  Both carry MARKER in their command line.  The script then runs TAIL.
_TREE = r"""
sh -c ': MARKER child; echo $$ > child.pid; while :; do sleep 1; done' &
if command -v setsid >/dev/null 2>&1; then escape=setsid; else escape=; fi
( $escape sh -c ': MARKER grandchild; echo $$ > grandchild.pid; while :; do sleep 1; done' \
    </dev/null >/dev/null 2>&1 & )
i=0
while [ ! -s child.pid ] || [ ! -s grandchild.pid ]; do
  i=$((i+1)); [ $i -gt 1000 ] && { echo 'children did not start' >&2; exit 3; }
  sleep 0.01
done
echo started
TAIL
"""


#: The parts of the suite a backend may declare it does not support, and what each checks.
#: Everything not listed here applies to every isolation backend.
FEATURES: dict[str, str] = {
    "signals": "a program killed by a signal is reported SIGNALLED with the signal's number",
    "cpu_time_limit": "the cpu_time_limit setting stops a program spinning on the CPU",
    "memory_limit": "the memory_limit setting stops a program that keeps allocating",
    "output_limit": "output past max_output_bytes is cut, reported and ends the program",
    "allowed_commands": "allowed_commands refuses a command outside it before it runs",
    "work_dir": "commands run in work_dir: relative paths read and write there",
    "process_tree": "no child or double-forked grandchild outlives a run or its timeout",
}


def _feature(name: str) -> Callable[[Any], Any]:
    """Mark a suite test as checking ``name`` (a key of :data:`FEATURES`)."""
    if name not in FEATURES:
        raise ValueError(f"unknown suite feature {name!r}")

    def mark(test: Any) -> Any:
        test.suite_feature = name
        return test

    return mark


def _sh(script: str) -> tuple[str, list[str]]:
    return "/bin/sh", ["-c", script]


class SuitePrograms:
    """The programs the suite runs, each as ``(command, args)`` for ``execute``.

    These are POSIX shell scripts; a backend that runs something else subclasses this and
    returns programs of its own that behave as each docstring says.  Only the programs of
    the features a backend supports are asked for.
    """

    def exit_with(self, code: int) -> tuple[str, list[str]]:
        """Exits with status ``code``."""
        return _sh(f"exit {code}")

    def print_both(self, out: str, err: str) -> tuple[str, list[str]]:
        """Writes ``out`` and a newline to stdout, ``err`` and a newline to stderr."""
        return _sh(f"echo {out}; echo {err} >&2")

    def echo(self, words: list[str]) -> tuple[str, list[str]]:
        """Prints its arguments ``words`` joined by one space, and a newline; the words are
        passed as arguments (the test checks they arrive unchanged)."""
        return "/bin/echo", list(words)

    def cat(self) -> tuple[str, list[str]]:
        """Copies stdin to stdout until end-of-file."""
        return "/bin/cat", []

    def sleep_then_print(self, seconds: float, text: str) -> tuple[str, list[str]]:
        """Sleeps ``seconds``, then prints ``text`` and a newline."""
        return _sh(f"sleep {seconds:g}; echo {text}")

    def sleep(self, seconds: float) -> tuple[str, list[str]]:
        """Sleeps ``seconds`` (the command the gate test names)."""
        return "/bin/sleep", [f"{seconds:g}"]

    def kill_self(self, signal_name: str) -> tuple[str, list[str]]:
        """Sends itself signal ``signal_name`` (``"TERM"``, ``"KILL"``), then sleeps."""
        return _sh(f"kill -{signal_name} $$; sleep 5")

    def cpu_spin(self) -> tuple[str, list[str]]:
        """Uses 2.5 CPU seconds, then prints ``survived`` (``no-proc`` if it cannot tell)."""
        return _sh(_CPU_SPIN)

    def memory_hog(self) -> tuple[str, list[str]]:
        """Allocates ~384 MiB, then prints ``survived``."""
        return _sh(_MEMORY_HOG)

    def flood(self, stream: str, lines: int, line: str) -> tuple[str, list[str]]:
        """Writes ``line`` and a newline ``lines`` times to ``stream`` (``"stdout"`` or
        ``"stderr"``), sleeps 2 s, then prints ``survived`` to stdout and to stderr; with
        ``lines`` 0 or less... never asked."""
        target = ">&2" if stream == "stderr" else ""
        loop = f"i=0; while [ $i -lt {lines} ]; do echo {line}; i=$((i+1)); done"
        return _sh(f"{{ {loop}; }} {target}; sleep 2; echo survived; echo survived >&2")

    def print_lines(self, lines: int, line: str) -> tuple[str, list[str]]:
        """Writes ``line`` and a newline ``lines`` times to stdout, then exits 0."""
        return _sh(f"i=0; while [ $i -lt {lines} ]; do echo {line}; i=$((i+1)); done")

    def show_environment(self) -> tuple[str, list[str]]:
        """Prints its whole environment, and a line ``GIVEN=<value of GIVEN>``."""
        return _sh('export -p; echo "GIVEN=$GIVEN"')

    def write_file(self, name: str, text: str) -> tuple[str, list[str]]:
        """Writes ``text`` into file ``name`` of ``work_dir``."""
        return _sh(f"echo {text} > {name}")

    def write_and_read(self, made: str, text: str, read: str) -> tuple[str, list[str]]:
        """Relative paths: writes ``text`` and a newline into ``made``, then prints the file
        ``read`` (both in ``work_dir``)."""
        return _sh(f"echo {text} > {made}; cat {read}")

    def process_tree(self, marker: str, tail: str) -> tuple[str, list[str]]:
        """The process-tree program (``_TREE``) with ``marker`` and ``tail``."""
        return _sh(_TREE.replace("MARKER", marker).replace("TAIL", tail))


class RecordingGate:
    """An ``ActionGate`` that remembers what it was asked and told; ``deny`` refuses all.

    ``authorized`` holds ``(action, context)`` per ``authorize`` call and ``outcomes``
    ``(action, outcome, details)`` per ``record_outcome`` call.
    """

    def __init__(self, *, deny: bool = False) -> None:
        self.deny = deny
        self.authorized: list[tuple[Any, Any]] = []
        self.outcomes: list[tuple[Any, str, dict[str, Any]]] = []

    async def authorize(self, action: Any, context: Any) -> Any:
        """Record the question; allow, or raise ``SecurityError`` when ``deny``."""
        from neuroflow.errors import SecurityError
        from neuroflow.security.model import Verdict

        self.authorized.append((action, context))
        if self.deny:
            raise SecurityError(f"denied by the conformance suite's gate: {action.target}")
        return Verdict.allow("conformance-suite")

    async def record_outcome(
        self, action: Any, context: Any, outcome: str, details: Mapping[str, Any]
    ) -> None:
        """Record how an authorized action ended."""
        self.outcomes.append((action, outcome, dict(details)))


async def run_bounded(backend: Any, command: str, args: list[str] | tuple[str, ...] = (),
                      **kwargs: Any) -> Any:
    """``backend.execute(command, args, **kwargs)``; fail the test if it takes > 60 s."""
    import anyio

    with anyio.move_on_after(_RUN_BOUND):
        return await backend.execute(command, list(args), **kwargs)
    pytest.fail(
        f"execute({command!r}, {list(args)!r}) did not return within {_RUN_BOUND:g} s "
        "(a limit or timeout the test relies on was not enforced)"
    )


def _marked_processes(marker: bytes, pids: list[int]) -> list[int]:
    """Live (not zombie) processes with ``marker`` in their command line.

    ``pids`` are checked first (they are what the program wrote to its pid files), then
    every process in ``/proc`` -- the pids a sandbox with its own pid namespace writes
    are not host pids, and the marker finds its processes all the same.
    """
    candidates = list(pids) + [int(e) for e in os.listdir("/proc") if e.isdigit()]
    found: list[int] = []
    for pid in dict.fromkeys(candidates):
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state not in (b"Z", b"X"):
            found.append(pid)
    return found


def _survivors(marker: bytes, pids: list[int]) -> list[int]:
    """Marked processes still alive ``_SETTLE`` s after the run; SIGKILLs them too."""
    deadline = time.monotonic() + _SETTLE
    alive = _marked_processes(marker, pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = _marked_processes(marker, pids)
    for pid in alive:  # the test fails; do not leave them running
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _pid(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pytest.fail(f"the test program did not write a pid to {path.name} in work_dir")


class IsolationBackendSuite:
    """Conformance tests for an isolation backend (see the module docstring)."""

    #: The backend's registered name, used by the default ``make_isolation_backend``.
    backend_name: ClassVar[str | None] = None
    #: The config object passed to the backend's factory (``None``: its defaults).
    backend_config: ClassVar[Any] = None
    #: Output cap the output test configures (``max_output_bytes``).
    output_cap: ClassVar[int] = 4096
    #: The parts of the suite this backend does not support: a key of :data:`FEATURES`
    #: -> why (shown as "not applicable: <why>").  Their tests are not generated.
    unsupported: ClassVar[Mapping[str, str]] = {}
    #: Filled when a subclass is defined: test name -> "not applicable: <why>".
    suite_not_applicable: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Check ``unsupported`` and leave out the tests of the features it names."""
        super().__init_subclass__(**kwargs)
        declared = cls.unsupported
        if not isinstance(declared, Mapping):
            raise TypeError(f"{cls.__name__}.unsupported: expected a mapping of feature "
                            f"names to reasons, got {type(declared).__name__}")
        for name, reason in declared.items():
            if name not in FEATURES:
                raise TypeError(
                    f"{cls.__name__}.unsupported: unknown feature {name!r} (the suite's "
                    f"features: {', '.join(sorted(FEATURES))})")
            if not isinstance(reason, str) or not reason.strip():
                raise TypeError(f"{cls.__name__}.unsupported[{name!r}]: say why the backend "
                                "does not support it (a non-empty string)")
        left_out: dict[str, str] = {}
        for test_name, test in vars(IsolationBackendSuite).items():
            feature = getattr(test, "suite_feature", None)
            if test_name.startswith("test_") and feature in declared:
                # Not generated for this class: pytest collects no test of this name.
                setattr(cls, test_name, None)
                left_out[test_name] = f"not applicable: {declared[feature]}"
        cls.suite_not_applicable = left_out

    # --- building backends -------------------------------------------------------------

    @pytest.fixture
    def make_isolation_backend(self) -> Callable[..., Any]:
        """A factory ``make(gate=..., **settings) -> backend``; override to build your own.

        The default builds the backend named ``backend_name``, from ``backend_config``
        (or its defaults) with ``settings`` changed; a ``gate`` is passed to the backend's
        factory as a keyword, or, when the factory takes none, the backend is wrapped in
        ``GuardedBackend`` as ``open_sandbox`` does.
        """
        return self._make

    @pytest.fixture
    def suite_programs(self) -> SuitePrograms:
        """The programs the tests run (shell scripts); override for a backend that runs
        something else."""
        return SuitePrograms()

    def backend_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The suite's settings (``SandboxConfig`` names: ``wall_timeout``,
        ``memory_limit``, ``max_output_bytes``, ``work_dir``...) as the backend's config
        fields; override when they are named differently.  Used by the default
        ``make_isolation_backend``."""
        return settings

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

    _NO_GATE: ClassVar[object] = object()

    def _make(self, gate: Any = _NO_GATE, **settings: Any) -> Any:
        settings = self.backend_settings(dict(settings))
        config = self._config_with(**settings) if settings else self.backend_config
        return self._create(config, gate)

    def _create(self, config: Any, gate: Any) -> Any:
        """Build ``backend_name`` from ``config`` with :func:`neuroflow.create_backend`,
        behind ``gate`` (the configured gate when the test gives none) -- exactly as users
        get it, so a backend that leaves the gate to NeuroFlow is wrapped the same way."""
        from neuroflow import create_backend

        if self.backend_name is None:
            pytest.fail(
                f"{type(self).__name__}: set backend_name or override the "
                "make_isolation_backend fixture"
            )
        return create_backend("isolation", self.backend_name, config,
                              gate=None if gate is self._NO_GATE else gate)

    def _config_with(self, **changes: Any) -> Any:
        """The suite's config with ``changes``; fails the test naming what it lacks."""
        import attrs

        config = self.backend_config
        if config is None and self.backend_name is not None:
            from neuroflow.backends import backend_config_class

            config_class = backend_config_class("isolation", self.backend_name)
            config = config_class() if config_class is not None else None
        if config is None or not attrs.has(type(config)):
            pytest.fail(
                f"{type(self).__name__}: this test needs the settings "
                f"{', '.join(sorted(changes))}, but backend {self.backend_name!r} has no "
                "attrs config class to set them on; override the make_isolation_backend "
                "fixture"
            )
        names = {a.name for a in attrs.fields(type(config))}
        missing = sorted(set(changes) - names)
        if missing:
            pytest.fail(
                f"{type(self).__name__}: this test needs the setting(s) {', '.join(missing)}, "
                f"which {type(config).__name__} (the config of backend "
                f"{self.backend_name!r}) does not have"
            )
        return attrs.evolve(config, **changes)

    @contextlib.asynccontextmanager
    async def _backend(
        self, make: Callable[..., Any], *, gate: Any = _NO_GATE, **settings: Any
    ) -> AsyncIterator[Any]:
        """A backend from ``make`` with ``settings`` (and ``gate``), closed after.

        A backend that refuses a setting it cannot enforce here (``UnsupportedLimitError``)
        skips the test with its reason; a factory that takes no ``gate`` fails it.
        """
        from neuroflow.errors import UnsupportedLimitError

        kwargs = dict(settings) if gate is self._NO_GATE else {"gate": gate, **settings}
        try:
            backend = make(**kwargs)
        except UnsupportedLimitError as exc:
            pytest.skip(f"the backend cannot enforce {settings!r} on this machine: {exc}")
        except TypeError as exc:
            if "gate" in kwargs and "gate" in str(exc):
                pytest.fail(f"make_isolation_backend must accept gate=: {exc}")
            raise
        try:
            yield backend
        finally:
            await backend.aclose()

    # --- results, streams, exit codes ----------------------------------------------------

    @pytest.mark.anyio
    async def test_exit_code_propagates(self, isolation_backend: Any,
                                        suite_programs: SuitePrograms) -> None:
        """A command's exit status is the result's ``exit_code``."""
        from neuroflow.sandbox.result import TerminationReason

        result = await run_bounded(isolation_backend, *suite_programs.exit_with(7))
        assert result.exit_code == 7
        assert result.reason is TerminationReason.EXITED
        assert not result.ok
        ok = await run_bounded(isolation_backend, *suite_programs.exit_with(0))
        assert ok.exit_code == 0
        assert ok.ok

    @_feature("signals")
    @pytest.mark.anyio
    async def test_a_signal_is_reported(self, isolation_backend: Any,
                                        suite_programs: SuitePrograms) -> None:
        """A program killed by a signal ends ``SIGNALLED``, ``signal=N``, ``exit_code=-N``."""
        from neuroflow.sandbox.result import TerminationReason

        for sig in (signal.SIGTERM, signal.SIGKILL):
            result = await run_bounded(isolation_backend,
                                       *suite_programs.kill_self(sig.name[3:]))
            assert result.reason is TerminationReason.SIGNALLED, (sig.name, result)
            assert result.signal == sig
            assert result.exit_code == -sig
            assert not result.ok

    @pytest.mark.anyio
    async def test_stdout_and_stderr_are_captured_separately(
        self, isolation_backend: Any, suite_programs: SuitePrograms
    ) -> None:
        """stdout and stderr come back as bytes, each with only its own stream."""
        result = await run_bounded(isolation_backend,
                                   *suite_programs.print_both("out-line", "err-line"))
        assert result.stdout == b"out-line\n"
        assert result.stderr == b"err-line\n"
        assert result.output == result.stdout

    @pytest.mark.anyio
    async def test_arguments_are_passed_verbatim(self, isolation_backend: Any,
                                                 suite_programs: SuitePrograms) -> None:
        """Arguments reach the program unchanged: no shell splitting or globbing."""
        result = await run_bounded(isolation_backend,
                                   *suite_programs.echo(["a  b", "*", "$HOME"]))
        assert result.stdout == b"a  b * $HOME\n"

    @pytest.mark.anyio
    async def test_stdin_is_passed(self, isolation_backend: Any,
                                   suite_programs: SuitePrograms) -> None:
        """``stdin`` bytes are the program's standard input."""
        data = b"line one\nline two\n" * 1000
        result = await run_bounded(isolation_backend, *suite_programs.cat(), stdin=data)
        assert result.exit_code == 0
        assert result.stdout == data

    @pytest.mark.anyio
    async def test_no_stdin_means_empty_input(self, isolation_backend: Any,
                                              suite_programs: SuitePrograms) -> None:
        """Without ``stdin`` the program reads end-of-file at once (it does not hang)."""
        result = await run_bounded(isolation_backend, *suite_programs.cat(), timeout=20)
        assert result.exit_code == 0
        assert result.stdout == b""

    @pytest.mark.anyio
    async def test_result_types(self, isolation_backend: Any,
                                suite_programs: SuitePrograms) -> None:
        """Every result field has the documented type."""
        from neuroflow.sandbox.result import SandboxResult, TerminationReason

        result = await run_bounded(isolation_backend, *suite_programs.echo(["typed"]))
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
    async def test_many_commands_in_a_row(self, isolation_backend: Any,
                                          suite_programs: SuitePrograms) -> None:
        """One backend runs many commands, each with its own result."""
        for i in range(25):
            result = await run_bounded(isolation_backend, *suite_programs.echo([str(i)]))
            assert result.stdout == f"{i}\n".encode()
            assert result.exit_code == 0

    @pytest.mark.anyio
    async def test_aclose_is_idempotent(self, isolation_backend: Any,
                                        suite_programs: SuitePrograms) -> None:
        """``aclose()`` may be called twice, and the backend is an async context manager."""
        backend = isolation_backend
        async with backend as entered:
            result = await run_bounded(entered, *suite_programs.echo(["inside"]))
            assert result.stdout == b"inside\n"
        await backend.aclose()
        await backend.aclose()

    @pytest.mark.anyio
    async def test_missing_program_is_an_error_not_a_hang(self, isolation_backend: Any) -> None:
        """A program that does not exist fails clearly (error or non-zero result)."""
        from neuroflow.errors import NeuroflowError

        missing = "/nonexistent/neuroflow-no-such-program-" + str(os.getpid())
        try:
            result = await run_bounded(isolation_backend, missing, timeout=20)
        except NeuroflowError as exc:
            assert "neuroflow-no-such-program" in str(exc)
        else:
            assert not result.ok

    # --- limits ----------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_timeout_ends_a_sleeping_command(self, isolation_backend: Any,
                                                   suite_programs: SuitePrograms) -> None:
        """A command past the call's ``timeout`` is killed and reported ``TIMED_OUT``."""
        from neuroflow.sandbox.result import TerminationReason

        result = await run_bounded(
            isolation_backend, *suite_programs.sleep_then_print(3, "survived"), timeout=0.5
        )
        assert b"survived" not in result.stdout, "the command outlived its timeout"
        assert result.reason is TerminationReason.TIMED_OUT
        assert not result.ok

    @pytest.mark.anyio
    async def test_wall_timeout_setting_ends_a_sleeping_command(
        self, make_isolation_backend: Callable[..., Any], suite_programs: SuitePrograms
    ) -> None:
        """Without a call ``timeout``, the config's ``wall_timeout`` applies."""
        from neuroflow.sandbox.result import TerminationReason

        async with self._backend(make_isolation_backend, wall_timeout=0.5) as backend:
            result = await run_bounded(backend,
                                       *suite_programs.sleep_then_print(3, "survived"))
        assert b"survived" not in result.stdout, "the command outlived wall_timeout=0.5"
        assert result.reason is TerminationReason.TIMED_OUT

    @_feature("cpu_time_limit")
    @pytest.mark.anyio
    async def test_cpu_time_limit_stops_a_spinning_command(
        self, make_isolation_backend: Callable[..., Any], suite_programs: SuitePrograms
    ) -> None:
        """A program that would use 2.5 CPU seconds is stopped at ``cpu_time_limit=1``."""
        from neuroflow.sandbox.result import TerminationReason

        async with self._backend(make_isolation_backend, cpu_time_limit=1) as backend:
            result = await run_bounded(backend, *suite_programs.cpu_spin(), timeout=50)
        if b"no-proc" in result.stdout:
            pytest.fail("the CPU test reads /proc/$$/stat to measure its own CPU time, "
                        "and the sandbox has no /proc")
        assert b"survived" not in result.stdout, "the program used 2.5 CPU s under a 1 s limit"
        assert result.reason is TerminationReason.CPU_LIMIT, result
        assert result.cpu_time_ms >= 500  # rusage lags the kernel's accounting a little

    @_feature("memory_limit")
    @pytest.mark.anyio
    async def test_memory_limit_stops_a_growing_command(
        self, make_isolation_backend: Callable[..., Any], suite_programs: SuitePrograms
    ) -> None:
        """A program that would use ~384 MiB cannot under ``memory_limit`` = 32 MiB.

        It ends ``MEMORY_LIMIT`` (killed at the limit), or fails or crashes by itself when
        refused the memory (an address-space limit); either way it never finishes.
        """
        from neuroflow.sandbox.result import TerminationReason

        limit = 32 * MiB
        async with self._backend(make_isolation_backend, memory_limit=limit) as backend:
            result = await run_bounded(backend, *suite_programs.memory_hog(), timeout=50)
        assert b"survived" not in result.stdout, "the program used more than memory_limit"
        assert not result.ok
        assert result.reason in (TerminationReason.MEMORY_LIMIT, TerminationReason.EXITED,
                                 TerminationReason.SIGNALLED), result
        if result.peak_memory_bytes is not None:
            assert result.peak_memory_bytes <= limit, result.peak_memory_bytes

    @_feature("output_limit")
    @pytest.mark.anyio
    async def test_output_is_capped(self, make_isolation_backend: Callable[..., Any],
                                    suite_programs: SuitePrograms) -> None:
        """Output past ``max_output_bytes`` is cut, reported and ends the program.

        Each stream is capped on its own; output of exactly the cap is kept whole.
        """
        from neuroflow.sandbox.result import TerminationReason

        cap = self.output_cap
        line = "0123456789abcde"  # with its newline, 16 bytes
        async with self._backend(make_isolation_backend, max_output_bytes=cap) as backend:
            for stream, truncated in (("stdout", "stdout_truncated"),
                                      ("stderr", "stderr_truncated")):
                result = await run_bounded(backend,
                                           *suite_programs.flood(stream, cap // 4, line),
                                           timeout=30)
                assert b"survived" not in result.stdout + result.stderr, (
                    f"the program went on after its {stream} passed the cap")
                assert result.reason is TerminationReason.OUTPUT_LIMIT, (stream, result)
                assert getattr(result, truncated), stream
                assert len(getattr(result, stream)) == cap, stream
            exact = await run_bounded(backend, *suite_programs.print_lines(cap // 16, line))
        assert exact.reason is TerminationReason.EXITED
        assert exact.stdout == f"{line}\n".encode() * (cap // 16)
        assert not exact.stdout_truncated

    # --- what runs, where, with what -----------------------------------------------------

    @_feature("allowed_commands")
    @pytest.mark.anyio
    async def test_allowed_commands_refuses_before_running(
        self, make_isolation_backend: Callable[..., Any], tmp_path: Path
    ) -> None:
        """A command outside ``allowed_commands`` raises ``CommandNotAllowedError``, unrun.

        The refused command would write a file; the same command on a list that has it
        writes that file, so its absence proves it never ran.
        """
        from neuroflow.errors import CommandNotAllowedError

        work = tmp_path / "work"
        touch = ["-c", "echo ran > refused.txt"]
        async with self._backend(make_isolation_backend, allowed_commands=("/bin/echo",),
                                 work_dir=str(work)) as backend:
            allowed = await run_bounded(backend, "/bin/echo", ["allowed"])
            assert allowed.stdout == b"allowed\n"
            for command in ("/bin/sh", "sh"):
                refused = None
                try:
                    await run_bounded(backend, command, touch)
                except CommandNotAllowedError as exc:
                    refused = exc
                assert not (work / "refused.txt").exists(), (
                    f"{command!r} is not in allowed_commands but ran")
                assert refused is not None, (
                    f"{command!r} is not in allowed_commands and was not refused with "
                    "CommandNotAllowedError")
        async with self._backend(make_isolation_backend, allowed_commands=("echo", "/bin/sh"),
                                 work_dir=str(work)) as backend:
            ran = await run_bounded(backend, "/bin/sh", touch)
        assert ran.ok, ran
        assert (work / "refused.txt").read_text() == "ran\n", (
            "a command on allowed_commands did not write its file in work_dir")

    @pytest.mark.anyio
    async def test_environment_is_clean(
        self, make_isolation_backend: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
        suite_programs: SuitePrograms,
    ) -> None:
        """Host variables are not visible inside, whether set before the backend was built
        or after; a variable passed with ``env`` is."""
        monkeypatch.setenv("NEUROFLOW_SUITE_BEFORE", "host-secret-before")
        async with self._backend(make_isolation_backend) as backend:
            monkeypatch.setenv("NEUROFLOW_SUITE_AFTER", "host-secret-after")
            result = await run_bounded(backend, *suite_programs.show_environment(),
                                       env={"GIVEN": "yes"})
        out = result.stdout + result.stderr
        assert result.ok, result
        for leaked in (b"NEUROFLOW_SUITE_AFTER", b"host-secret-after"):
            assert leaked not in out, "a host variable set after the backend was built leaked"
        for leaked in (b"NEUROFLOW_SUITE_BEFORE", b"host-secret-before"):
            assert leaked not in out, "a host variable set before the backend was built leaked"
        assert b"GIVEN=yes" in result.stdout.splitlines(), result.stdout

    @_feature("work_dir")
    @pytest.mark.anyio
    async def test_commands_run_in_the_work_dir(
        self, make_isolation_backend: Callable[..., Any], tmp_path: Path,
        suite_programs: SuitePrograms,
    ) -> None:
        """Relative paths are relative to ``work_dir``: read a file there, write one."""
        work = tmp_path / "work"
        work.mkdir()
        (work / "input.txt").write_text("from the host\n")
        async with self._backend(make_isolation_backend, work_dir=str(work)) as backend:
            result = await run_bounded(
                backend, *suite_programs.write_and_read("output.txt", "made", "input.txt"))
        assert (work / "output.txt").is_file(), "the command did not run in work_dir"
        assert (work / "output.txt").read_text() == "made\n"
        assert result.ok, result
        assert result.stdout == b"from the host\n"

    # --- the whole process tree ----------------------------------------------------------

    async def _tree(self, make: Callable[..., Any], work: Path,
                    attempts: tuple[tuple[float | None, str], ...],
                    programs: SuitePrograms | None = None) -> tuple[Any, list[int]]:
        """Run ``_TREE`` ending in ``tail``; the result and the processes that outlived it.

        ``attempts`` are ``(timeout, tail)`` pairs.  With a timeout the children must have
        started before it struck; on a machine too busy for that, the next (longer)
        attempt is made.
        """
        files = [work / "child.pid", work / "grandchild.pid"]
        for timeout, tail in attempts:
            marker = f"nf-suite-{uuid.uuid4().hex}"
            program = (programs or SuitePrograms()).process_tree(marker, tail)
            async with self._backend(make, work_dir=str(work)) as backend:
                result = await run_bounded(backend, *program, timeout=timeout)
            started = b"started" in result.stdout
            pids = [_pid(f) for f in files] if started else []
            alive = _survivors(marker.encode(), pids)
            if started or alive:
                return result, alive
            for file in files:
                file.unlink(missing_ok=True)
        pytest.fail(f"the test program did not start its children: {result!r}")

    @_feature("process_tree")
    @pytest.mark.anyio
    async def test_no_process_survives_the_run(
        self, make_isolation_backend: Callable[..., Any], tmp_path: Path,
        suite_programs: SuitePrograms,
    ) -> None:
        """When the command exits, its child and a double-forked, setsid'd grandchild die."""
        result, alive = await self._tree(make_isolation_backend, tmp_path / "work",
                                         ((None, "exit 0"),), suite_programs)
        assert result.ok, result
        assert alive == [], f"processes of the run outlived it: {alive}"

    @_feature("process_tree")
    @pytest.mark.anyio
    async def test_no_process_survives_a_timeout(
        self, make_isolation_backend: Callable[..., Any], tmp_path: Path,
        suite_programs: SuitePrograms,
    ) -> None:
        """A timed-out command's child and double-forked grandchild die with it."""
        from neuroflow.sandbox.result import TerminationReason

        result, alive = await self._tree(
            make_isolation_backend, tmp_path / "work",
            ((2.0, "sleep 4; echo survived"), (8.0, "sleep 16; echo survived")),
            suite_programs)
        assert b"survived" not in result.stdout, "the command outlived its timeout"
        assert result.reason is TerminationReason.TIMED_OUT
        assert alive == [], f"processes of the timed-out run outlived it: {alive}"

    # --- the gate ----------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_the_gate_sees_every_command(
        self, make_isolation_backend: Callable[..., Any], suite_programs: SuitePrograms
    ) -> None:
        """Each command is authorized first (as a ``command`` action naming it and its
        arguments) and its outcome recorded: success, failure and timeout alike."""
        gate = RecordingGate()
        runs = [(*suite_programs.echo(["hello", "gate"]), None),
                (*suite_programs.exit_with(3), None), (*suite_programs.sleep(3), 0.5)]
        async with self._backend(make_isolation_backend, gate=gate) as backend:
            results = [await run_bounded(backend, command, args, timeout=timeout)
                       for command, args, timeout in runs]
        asked = [(str(a.kind), a.target, list(a.arguments)) for a, _ in gate.authorized]
        assert asked == [("command", c, list(args)) for c, args, _ in runs], (
            "the gate was not asked about every command, in order, by name and arguments")
        assert [a for a, _, _ in gate.outcomes] == [a for a, _ in gate.authorized], (
            "the gate was not told how every command it authorized ended")
        outcomes = [outcome for _, outcome, _ in gate.outcomes]
        assert outcomes[0] == "success" and results[0].ok
        assert outcomes[1] != "success" and outcomes[2] != "success", outcomes

    @pytest.mark.anyio
    async def test_a_denying_gate_stops_the_command(
        self, make_isolation_backend: Callable[..., Any], tmp_path: Path,
        suite_programs: SuitePrograms,
    ) -> None:
        """A command the gate denies raises ``SecurityError`` and never runs; the same
        command under an allowing gate writes the file the denied one did not."""
        from neuroflow.errors import SecurityError

        work = tmp_path / "work"
        touch = suite_programs.write_file("gated.txt", "ran")
        denying = RecordingGate(deny=True)
        async with self._backend(make_isolation_backend, gate=denying,
                                 work_dir=str(work)) as backend:
            refused = None
            try:
                await run_bounded(backend, *touch)
            except SecurityError as exc:
                refused = exc
        assert not (work / "gated.txt").exists(), "the gate denied the command, but it ran"
        assert len(denying.authorized) == 1, "the gate was not asked"
        assert refused is not None, "the gate denied the command; execute did not raise " \
            "SecurityError"
        allowing = RecordingGate()
        async with self._backend(make_isolation_backend, gate=allowing,
                                 work_dir=str(work)) as backend:
            ran = await run_bounded(backend, *touch)
        assert ran.ok, ran
        assert (work / "gated.txt").read_text() == "ran\n"

    # --- spawn: the optional streaming half ------------------------------------------
    #
    # A backend either offers ``spawn`` (then these tests hold it to the same rules as
    # ``execute``) or lacks it; then ``neuroflow.sandbox.spawn`` must say so with
    # ``UnsupportedOperationError`` -- and nothing may run.

    async def _spawn(self, backend: Any, command: str, args: list[str],
                     **kwargs: Any) -> Any:
        """``neuroflow.sandbox.spawn(...)``, or ``None`` when the backend has no spawn
        (checked to say so clearly)."""
        from neuroflow.errors import UnsupportedOperationError
        from neuroflow.sandbox import spawn

        try:
            return await spawn(backend, command, args, **kwargs)
        except UnsupportedOperationError as exc:
            assert "spawn" in str(exc), f"unclear refusal: {exc}"
            return None

    @staticmethod
    async def _read_until(stream: Any, wanted: bytes, bound: float = _RUN_BOUND) -> bytes:
        import anyio

        seen = b""
        with anyio.move_on_after(bound):
            while wanted not in seen:
                try:
                    seen += await stream.receive()
                except anyio.EndOfStream:
                    break
        return seen

    @pytest.mark.anyio
    async def test_spawn_streams_stdin_and_stdout(self, isolation_backend: Any) -> None:
        """A spawned process answers what it reads, line by line, while it runs; closing
        its stdin ends it, and ``wait()`` reports how (the same result every time)."""
        from neuroflow.sandbox.result import TerminationReason

        process = await self._spawn(isolation_backend, "/bin/sh", [
            "-c", "while read -r line; do echo \"got $line\"; echo \"err $line\" >&2; done"])
        if process is None:
            return
        async with process:
            assert isinstance(process.pid, int) and process.pid > 0
            assert process.returncode is None
            for word in (b"one", b"two"):
                await process.stdin.send(word + b"\n")
                assert await self._read_until(process.stdout, b"got " + word + b"\n") == (
                    b"got " + word + b"\n"), "the process did not answer while running"
            assert (await self._read_until(process.stderr, b"err two\n")).endswith(
                b"err two\n")
            await process.stdin.aclose()
            import anyio

            with anyio.fail_after(_RUN_BOUND):
                result = await process.wait()
            assert result.reason is TerminationReason.EXITED and result.exit_code == 0
            assert process.returncode == 0
            assert await process.wait() == result

    @pytest.mark.anyio
    async def test_spawned_process_tree_dies_with_it(
        self, make_isolation_backend: Callable[..., Any], tmp_path: Path
    ) -> None:
        """``aclose()`` leaves nothing of a spawned process: neither its child nor a
        double-forked, setsid'd grandchild."""
        work = tmp_path / "work"
        marker = f"nf-suite-{uuid.uuid4().hex}"
        script = _TREE.replace("MARKER", marker).replace("TAIL", "while :; do sleep 1; done")
        async with self._backend(make_isolation_backend, work_dir=str(work)) as backend:
            process = await self._spawn(backend, "/bin/sh", ["-c", script])
            if process is None:
                return
            try:
                started = await self._read_until(process.stdout, b"started")
                assert b"started" in started, "the test program did not start its children"
                pids = [_pid(work / "child.pid"), _pid(work / "grandchild.pid")]
                assert _marked_processes(marker.encode(), pids), "no child is running"
            finally:
                await process.aclose()
        alive = _survivors(marker.encode(), pids)
        assert alive == [], f"processes of the spawned tree outlived aclose(): {alive}"

    @pytest.mark.anyio
    async def test_spawn_has_the_limits_of_execute(
        self, make_isolation_backend: Callable[..., Any], tmp_path: Path
    ) -> None:
        """A spawned process runs in ``work_dir``, without the host's environment, and is
        ended by its ``timeout`` (``TIMED_OUT``) and by ``memory_limit``."""
        import anyio

        from neuroflow.sandbox.result import TerminationReason

        work = tmp_path / "work"
        os.environ["NEUROFLOW_SUITE_SPAWN_SECRET"] = "host-secret"
        try:
            async with self._backend(make_isolation_backend, work_dir=str(work)) as backend:
                process = await self._spawn(
                    backend, "/bin/sh",
                    ["-c", 'echo made > spawned.txt; export -p; echo "given=$GIVEN"; '
                           'sleep 5; echo survived'],
                    env={"GIVEN": "yes"}, timeout=1.0)
                if process is None:
                    return
                async with process:
                    out = await self._read_until(process.stdout, b"given=yes\n")
                    with anyio.fail_after(_RUN_BOUND):
                        result = await process.wait()
                    out += await self._read_until(process.stdout, b"survived", bound=1.0)
        finally:
            del os.environ["NEUROFLOW_SUITE_SPAWN_SECRET"]
        assert (work / "spawned.txt").read_text() == "made\n", "it did not run in work_dir"
        assert b"host-secret" not in out, "a host variable leaked into a spawned process"
        assert b"given=yes" in out
        assert result.reason is TerminationReason.TIMED_OUT, result
        assert b"survived" not in out, "the spawned process outlived its timeout"

        limit = 32 * MiB
        async with self._backend(make_isolation_backend, memory_limit=limit) as backend:
            process = await self._spawn(backend, "/bin/sh", ["-c", _MEMORY_HOG])
            async with process:
                out = await self._read_until(process.stdout, b"survived")
                with anyio.fail_after(_RUN_BOUND):
                    result = await process.wait()
        assert b"survived" not in out, "a spawned process used more than memory_limit"
        assert not result.ok

    @pytest.mark.anyio
    async def test_spawn_asks_the_gate_and_reports_the_end(
        self, make_isolation_backend: Callable[..., Any], tmp_path: Path
    ) -> None:
        """The gate is asked before a process is spawned (a ``command`` action) and told
        how it ended; a denied one raises ``SecurityError`` and never runs."""
        import anyio

        from neuroflow.errors import SecurityError

        work = tmp_path / "work"
        touch = ["-c", "echo ran > spawned-gated.txt"]
        denying = RecordingGate(deny=True)
        async with self._backend(make_isolation_backend, gate=denying,
                                 work_dir=str(work)) as backend:
            refused = None
            try:
                process = await self._spawn(backend, "/bin/sh", touch)
            except SecurityError as exc:
                refused = exc
            else:
                if process is None:
                    assert denying.authorized == [], "the gate was asked about a spawn " \
                        "the backend cannot do"
                    return
                await process.aclose()
        assert not (work / "spawned-gated.txt").exists(), "denied, but it ran"
        assert refused is not None, "the gate denied the spawn; it did not raise SecurityError"
        allowing = RecordingGate()
        async with self._backend(make_isolation_backend, gate=allowing,
                                 work_dir=str(work)) as backend:
            process = await self._spawn(backend, "/bin/sh", touch)
            assert [(str(a.kind), a.target) for a, _ in allowing.authorized] == [
                ("command", "/bin/sh")], "the gate was not asked before the spawn"
            async with process:
                with anyio.fail_after(_RUN_BOUND):
                    result = await process.wait()
        assert result.ok, result
        assert (work / "spawned-gated.txt").read_text() == "ran\n"
        assert [(a.target, outcome) for a, outcome, _ in allowing.outcomes] == [
            ("/bin/sh", "success")], "the gate was not told how the spawned process ended"
