"""Conversation state per session id: in memory, bounded in sessions and in messages."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from neuroflow.errors import AgentError


class SessionStore:
    """Remembers each session's messages (system prompt excluded).

    The least recently used session is forgotten beyond ``max_sessions``; a session
    longer than ``max_messages`` loses its oldest whole turns (a turn starts at a user
    message, so a tool reply is never separated from the call it answers).

    Args:
        max_sessions: how many sessions are kept.
        max_messages: how many messages one session keeps at most.
    """

    def __init__(self, max_sessions: int = 1000, max_messages: int = 200) -> None:
        if max_sessions < 1 or max_messages < 1:
            raise AgentError(
                f"SessionStore: max_sessions and max_messages must be >= 1, got "
                f"{max_sessions} and {max_messages}"
            )
        self.max_sessions = max_sessions
        self.max_messages = max_messages
        self._sessions: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def history(self, session_id: str) -> list[dict[str, Any]]:
        """A copy of the session's messages (empty for a new session)."""
        messages = self._sessions.get(session_id)
        if messages is None:
            return []
        self._sessions.move_to_end(session_id)
        return list(messages)

    def append(self, session_id: str, messages: Sequence[Mapping[str, Any]]) -> None:
        """Add one finished turn's messages to the session."""
        stored = self._sessions.setdefault(session_id, [])
        stored.extend(dict(m) for m in messages)
        self._sessions.move_to_end(session_id)
        if len(stored) > self.max_messages:
            cut = len(stored) - self.max_messages
            starts = [i for i, m in enumerate(stored) if m.get("role") == "user" and i >= cut]
            del stored[: starts[0] if starts else len(stored)]
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    def clear(self, session_id: str | None = None) -> None:
        """Forget one session, or every session."""
        if session_id is None:
            self._sessions.clear()
        else:
            self._sessions.pop(session_id, None)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)
