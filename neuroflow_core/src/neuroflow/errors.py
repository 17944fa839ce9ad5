"""The exception tree users catch.

Every error NeuroFlow raises on purpose derives from :class:`NeuroflowError`, so
``except NeuroflowError`` is enough to handle "NeuroFlow refused or failed", and the
subclasses let a caller be more precise.  Messages are written to be acted on: they
name the field, the file, the plugin or the command to run.
"""

from __future__ import annotations


class NeuroflowError(Exception):
    """Base class of every error NeuroFlow raises deliberately."""


class ConfigError(NeuroflowError, ValueError):
    """A configuration value, file or keyword argument is invalid.

    ``problems`` holds one line per problem, each naming the path (``sandbox.wasm.max_fuel``),
    what was expected and where the value came from.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PluginError(NeuroflowError):
    """A plugin could not be loaded, registered or is missing."""


class PluginLoadError(PluginError):
    """A plugin failed to import or register; the message names it and the cause."""


class MissingPluginError(PluginError):
    """A required plugin or backend is not installed; the message says what to install."""


class BackendNotFoundError(MissingPluginError, ConfigError):
    """A backend name was selected that no installed plugin provides."""

    def __init__(self, message: str) -> None:
        ConfigError.__init__(self, message)


class SandboxError(NeuroflowError):
    """A sandbox could not be set up or refused to run a command."""


class CommandNotAllowedError(SandboxError, PermissionError):
    """The command is not on the sandbox's ``allowed_commands`` list."""


class UnsupportedLimitError(SandboxError):
    """A limit was requested that this machine or backend cannot enforce.

    Raised instead of silently running with weaker isolation; the message says which
    setting allows the weaker mode.
    """


class UnsupportedOperationError(SandboxError):
    """The backend does not offer an optional operation (e.g. ``spawn``); the message
    names the backend and what offers it instead."""


class SecurityError(NeuroflowError, PermissionError):
    """A guard denied an action, or the audit log could not record it (fail closed)."""


class MemoryStoreError(NeuroflowError):
    """A memory store operation failed or was given invalid input."""


class AgentError(NeuroflowError):
    """The agent runtime failed: tool definition, tool loop or LLM provider."""


class MemoryConflictError(MemoryStoreError):
    """A versioned memory update lost a race: the entry's version is not the one expected.

    ``agent_id``, ``key``, ``expected`` and ``actual`` (``0`` when the entry does not
    exist) say which entry and which versions; re-read the entry and retry.
    """

    def __init__(self, agent_id: str, key: str, expected: int, actual: int) -> None:
        self.agent_id, self.key, self.expected, self.actual = agent_id, key, expected, actual
        now = f"version {actual}" if actual else "no such entry"
        super().__init__(
            f"memory {key!r} of agent {agent_id!r}: expected_version={expected}, but the "
            f"store holds {now}; re-read it and retry"
        )


class InvalidMemoryError(MemoryStoreError, ValueError):
    """An argument to a memory operation is invalid; the message names the argument."""
