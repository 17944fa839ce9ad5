"""Where the console's data comes from: the trace file, the audit log, and the live
capabilities (memory, MCP, A2A) read through NeuroFlow's public API.

File readers are synchronous and meant for worker threads; each keeps its byte offset
(in the store, for the trace file) so a restart reads only what is new.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from neuroflow_console.records import rows_from_lines
from neuroflow_console.store import SpanStore

#: How much of a file one read takes at most (the rest is read on the next poll).
CHUNK_BYTES = 8 << 20


class TraceFileReader:
    """Reads new complete lines of a JSON-lines span file into the store.

    A file that shrank or was replaced (another inode) is read again from its start;
    spans already stored are not stored twice.
    """

    def __init__(self, path: Path, store: SpanStore) -> None:
        self.path = Path(path)
        self.store = store
        self.problems: list[str] = []

    def poll(self) -> list[str]:
        """Read what was appended since the last poll; return the traces that changed."""
        key = str(self.path.resolve())
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                inode, offset = self.store.source_offset(key)
                if inode != st.st_ino or st.st_size < offset:
                    offset = 0
                touched: list[str] = []
                while offset < st.st_size:
                    fh.seek(offset)
                    data = fh.read(min(CHUNK_BYTES, st.st_size - offset))
                    end = data.rfind(b"\n") + 1
                    if end == 0 and len(data) < CHUNK_BYTES:
                        break  # an unfinished last line: wait for the rest
                    if end == 0:  # one line longer than a chunk: skip it, say so
                        skipped = _skip_line(fh, offset)
                        if skipped is None:
                            break  # its end is not written yet
                        self.problems = [*self.problems, f"byte {offset}: a line longer "
                                         f"than {CHUNK_BYTES} bytes was skipped"][-20:]
                        offset = skipped
                        self.store.set_source_offset(key, st.st_ino, offset)
                        continue
                    rows, problems = rows_from_lines(data[:end])
                    self.problems = (self.problems + problems)[-20:]
                    touched += self.store.add_spans(rows)
                    offset += end
                    self.store.set_source_offset(key, st.st_ino, offset)
        except FileNotFoundError:
            return []
        return list(dict.fromkeys(touched))


def _skip_line(fh: Any, offset: int) -> int | None:
    """The offset just after the end of the line starting at ``offset``, or ``None`` if
    it does not end yet."""
    position = offset
    while True:
        fh.seek(position)
        data = fh.read(CHUNK_BYTES)
        if not data:
            return None
        found = data.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(data)


def audit_settings() -> Any:
    """``[security.audit]`` of the active configuration, or ``None``."""
    try:
        from neuroflow import get_config

        settings = get_config().section("security").settings
    except Exception:  # noqa: BLE001 - an unreadable configuration leaves the defaults
        return None
    return None if settings is None else settings.audit


class AuditReader:
    """Reads the audit log into the store and keeps the verdict of ``verify``.

    Args:
        path: the audit log.
        store: where records go.
        settings: ``[security.audit]`` when ``path`` is the configured log (its key file,
            key and witness are used to verify), else ``None`` (the key is found the way
            ``neuroflow audit verify`` finds it).
    """

    def __init__(self, path: Path, store: SpanStore, settings: Any = None) -> None:
        self.path = Path(path)
        self.store = store
        self.settings = settings
        self._inode: int | None = None
        self._offset = 0
        self._seen: tuple[Any, ...] | None = None
        self.verdict: dict[str, Any] = {"state": "unknown", "summary": "not checked yet"}

    def _stamp(self) -> tuple[Any, ...]:
        stamps = []
        for p in (self.path, Path(f"{self.path}.head")):
            try:
                st = p.stat()
                stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def poll(self) -> tuple[int, bool]:
        """Read new records and verify again if the files changed.

        Returns:
            how many records were read, and whether the verdict changed.
        """
        stamp = self._stamp()
        if stamp == self._seen:
            return 0, False
        self._seen = stamp
        read = self._read()
        before = self.verdict
        self.verdict = self.verify()
        return read, self.verdict != before

    def _read(self) -> int:
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                if st.st_ino != self._inode or st.st_size <= self._offset:
                    # replaced, truncated, or edited in place without growing: read it all
                    self._inode, self._offset = st.st_ino, 0
                fh.seek(self._offset)
                data = fh.read(min(st.st_size - self._offset, CHUNK_BYTES))
        except FileNotFoundError:
            return 0
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) == CHUNK_BYTES:
            end = len(data)  # no record is that long: not a record, verify says where
        if self._offset + end < st.st_size:
            self._seen = None  # more to read: the next poll goes on without a change
        records, raw = [], []
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # verify reports it; the tail shows what parses
            if isinstance(record, dict) and isinstance(record.get("seq"), int):
                records.append(record)
                raw.append(line.decode("utf-8", "replace"))
        self._offset += end
        return self.store.add_audit(records, raw)

    def verify(self) -> dict[str, Any]:
        """``verify_audit_log``'s verdict as JSON-ready data: ``state`` is ``intact``,
        ``tampered`` or ``unavailable`` (no log, no key)."""
        from neuroflow.security import verify_audit_log

        if not self.path.exists():
            return {"state": "unavailable", "summary": f"{self.path}: no audit log yet"}
        s = self.settings
        try:
            report = verify_audit_log(
                self.path, (s.key.encode() if s is not None and s.key else None),
                key_file=getattr(s, "key_file", None), witness=getattr(s, "witness", None))
        except Exception as exc:  # noqa: BLE001 - a missing key or unreadable file is shown
            return {"state": "unavailable", "summary": f"cannot verify: {exc}"}
        problem = report.problem
        return {
            "state": "intact" if report.ok else "tampered",
            "summary": report.summary(),
            "records": report.records,
            "problem": None if problem is None else {
                "kind": problem.kind, "record": problem.record, "seq": problem.seq,
                "file": problem.file, "line": problem.line, "message": problem.message},
            "warnings": list(report.warnings),
        }


class MemoryView:
    """Read-only access to the configured memory store (built on first use).

    The manager is built with a sweep interval no run reaches, so looking never deletes
    expired entries (they are not shown either).
    """

    def __init__(self) -> None:
        self._manager: Any = None
        self.backend: str | None = None
        self.error: str | None = None

    async def manager(self) -> Any:
        """The :class:`~neuroflow.memory.MemoryManager`, or ``None`` (see :attr:`error`)."""
        if self._manager is None and self.error is None:
            try:
                import attrs

                from neuroflow import create_backend, get_config
                from neuroflow.memory import MemoryConfig, MemoryManager

                cfg = get_config()
                section = cfg.section("memory")
                settings = attrs.evolve(section.settings or MemoryConfig(),
                                        gc_interval_seconds=1e15)
                self.backend = section.backend
                self._manager = MemoryManager(settings, store=create_backend("memory",
                                                                             config=cfg))
            except Exception as exc:  # noqa: BLE001 - the console still shows the rest
                self.error = f"memory store unavailable: {exc}"
        return self._manager

    async def aclose(self) -> None:
        """Close the store if it was opened."""
        if self._manager is not None:
            await self._manager.aclose()


def configured_mcp_servers() -> tuple[dict[str, Any], str | None]:
    """``[mcp.servers]`` as JSON-ready data, and an error if they cannot be read."""
    try:
        from neuroflow import get_config

        settings = get_config().section("mcp").settings
    except Exception as exc:  # noqa: BLE001
        return {}, f"mcp configuration unavailable: {exc}"
    servers = dict(settings.servers) if settings is not None else {}
    return {name: {"transport": getattr(s.transport, "value", str(s.transport)),
                   "command": s.command, "args": list(s.args), "url": s.url,
                   "enabled": s.enabled} for name, s in servers.items()}, None


def mcp_installed() -> bool:
    """Whether an MCP client backend is installed (``neuroflow[mcp]``)."""
    try:
        from neuroflow import get_plugin_manager

        return bool(get_plugin_manager().backends("mcp"))
    except Exception:  # noqa: BLE001
        return False


async def probe_mcp(servers: dict[str, Any]) -> dict[str, Any]:
    """Start the enabled configured servers, list their tools and statuses, stop them.

    This is what ``neuroflow mcp status`` does; the console does it only when asked.
    """
    from neuroflow import get_config
    from neuroflow.mcp import open_mcp_client

    settings = get_config().section("mcp").settings
    chosen = {n: s for n, s in dict(settings.servers).items() if n in servers
              and s.enabled} if settings is not None else {}
    client = open_mcp_client(actor="console", what="neuroflow console")
    out: dict[str, Any] = {}
    async with client:
        await client.start_from_config(chosen)
        for name, status in client.get_all_statuses().items():
            entry = {"connected": bool(getattr(status, "connected", False)),
                     "error": getattr(status, "error", None), "tools": []}
            if entry["connected"]:
                try:
                    entry["tools"] = [{"name": t.get("name"),
                                       "description": t.get("description", "")}
                                      for t in await client.list_tools(name)]
                except Exception as exc:  # noqa: BLE001
                    entry["error"] = str(exc)
            out[name] = entry
    return out


async def a2a_registry() -> dict[str, Any]:
    """The agents of the configured A2A registry (``[registry]``), or why there are none."""
    from neuroflow.a2a import AgentRegistryService
    from neuroflow.config import get_config

    try:
        backend = get_config().section("registry").backend
        async with AgentRegistryService() as registry:
            agents = await registry.list_agents()
    except Exception as exc:  # noqa: BLE001 - a registry that cannot be read is shown, not raised
        return {"installed": True, "agents": [], "detail": f"registry unavailable: {exc}"}
    detail = ""
    if backend == "memory":
        detail = ("[registry] backend = \"memory\" lives inside each process: set backend = "
                  "\"sql\" (pip install 'neuroflow[a2a]') to see the agents other processes "
                  "register")
    return {"installed": True, "backend": backend, "detail": detail,
            "agents": [_plain(a) for a in agents]}


def _plain(value: Any) -> Any:
    import attrs

    if attrs.has(type(value)):
        return attrs.asdict(value)
    to_dict = getattr(value, "to_dict", None) or getattr(value, "model_dump", None)
    if to_dict is not None:
        return to_dict()
    return value if isinstance(value, dict) else {"name": str(value)}


__all__ = ["AuditReader", "MemoryView", "TraceFileReader", "a2a_registry",
           "audit_settings", "configured_mcp_servers", "mcp_installed", "probe_mcp"]
