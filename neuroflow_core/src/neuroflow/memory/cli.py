"""``neuroflow memory list|show|search|delete|stats|export|import``: look into the
configured store, and move memories between stores as JSON lines.

The store is the one the effective configuration selects (``[memory] backend = "sqlite"``,
``[memory.sqlite] url = "..."``); ``--backend`` picks another installed one.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

T = TypeVar("T")

_backend_option = click.option(
    "--backend", default=None, metavar="NAME",
    help="Memory store to use instead of the configured one (e.g. sqlite, postgres).")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


#: The Python API's argument names, as this command line spells them.
_CLI_NAMES = {
    "agent_id": "AGENT_ID", "key": "KEY", "query": "QUERY", "tags": "--tag",
    "filter": "--filter", "min_importance": "--min-importance", "limit": "--limit",
    "offset": "--offset",
}
_ARGUMENT_ERROR = re.compile(r"(?P<name>[a-z_]+)(?:\[[^\]]*\])?: (?P<what>.*)", re.DOTALL)


def _run(backend: str | None, action: Callable[[Any], Awaitable[T]]) -> T:
    import anyio

    from neuroflow.errors import InvalidMemoryError
    from neuroflow.memory.manager import MemoryManager

    async def main() -> T:
        manager = MemoryManager(store=backend)
        try:
            return await action(manager)
        finally:
            await manager.aclose()

    try:
        return anyio.run(main)
    except InvalidMemoryError as exc:
        # The API names its keyword arguments; say it with this command's flags.
        found = _ARGUMENT_ERROR.fullmatch(str(exc))
        if found is None or found["name"] not in _CLI_NAMES:
            raise
        raise click.BadParameter(found["what"],
                                 param_hint=_CLI_NAMES[found["name"]]) from None


def _filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--filter") from None


def _print_entries(entries: list[Any], as_json: bool, show_score: bool = False) -> None:
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], ensure_ascii=False, indent=2))
        return
    for e in entries:
        score = f"{e.score:.4f}  " if show_score and e.score is not None else ""
        tags = f"  [{', '.join(e.tags)}]" if e.tags else ""
        value = json.dumps(e.value, ensure_ascii=False)
        if len(value) > 80:
            value = value[:77] + "..."
        click.echo(f"{score}{e.agent_id}  {e.key}  v{e.version}  imp={e.importance:g}"
                   f"{tags}  {value}")
        if e.explain:
            terms = ", ".join(f"{k}={v:.3f}" for k, v in e.explain.items())
            click.echo(f"    {terms}")


_PAGE = 1000
#: Fields of an exported entry that the importing store sets itself.
_SET_BY_STORE = ("created_at", "updated_at", "version")


def _exported(entry: Any) -> dict[str, Any]:
    """One line of ``export``: what ``import`` needs, plus the entry's times and version."""
    return {"agent_id": entry.agent_id, "key": entry.key, "value": entry.value,
            "tags": list(entry.tags), "importance": entry.importance,
            "expires_at": entry.expires_at, "created_at": entry.created_at,
            "updated_at": entry.updated_at, "version": entry.version}


def memory_group() -> click.Group:
    """Build the ``memory`` command group."""

    @click.group("memory")
    def memory() -> None:
        """Inspect and manage agent memories in the configured store."""

    @memory.command("list")
    @click.argument("agent_id", required=False)
    @click.option("--tag", "tags", multiple=True, help="Only entries with this tag (repeatable).")
    @click.option("--filter", "flt", help='JSON filter, e.g. \'{"value.lang": "zh"}\'.')
    @click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
    @click.option("--offset", default=0, type=click.IntRange(min=0))
    @_backend_option
    @_json_option
    def list_(agent_id: str | None, tags: tuple[str, ...], flt: str | None, limit: int,
              offset: int, backend: str | None, as_json: bool) -> None:
        """List memories (of AGENT_ID, or of every agent), by agent and key."""
        entries = _run(backend, lambda m: m.list_memories(
            agent_id, tags=tags or None, filter=_filter(flt), limit=limit, offset=offset))
        _print_entries(entries, as_json)

    @memory.command("show")
    @click.argument("agent_id")
    @click.argument("key")
    @click.option("--history", "with_history", is_flag=True, help="Also print every change.")
    @_backend_option
    @_json_option
    def show(agent_id: str, key: str, with_history: bool, backend: str | None,
             as_json: bool) -> None:
        """Show one memory (exit status 1 if it does not exist)."""
        async def action(m: Any) -> tuple[Any, list[Any]]:
            entry = await m.retrieve_memory(agent_id, key)
            return entry, (await m.history(agent_id, key) if with_history else [])

        entry, history = _run(backend, action)
        if as_json:
            out: dict[str, Any] = {"entry": entry.to_dict() if entry else None}
            if with_history:
                out["history"] = [h.to_dict() for h in history]
            click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        else:
            if entry is not None:
                click.echo(json.dumps(entry.to_dict(), ensure_ascii=False, indent=2))
            for h in history:
                click.echo(f"{h.at:.3f}  {h.op:<6}  v{h.version}  "
                           f"{json.dumps(h.value, ensure_ascii=False)}")
        if entry is None:
            click.echo(f"no memory {key!r} for agent {agent_id!r}", err=True)
            sys.exit(1)

    @memory.command("search")
    @click.argument("agent_id")
    @click.argument("query", required=False)
    @click.option("--tag", "tags", multiple=True, help="Tag to match (repeatable).")
    @click.option("--all-tags", is_flag=True, help="Require every --tag (default: any).")
    @click.option("--min-importance", type=float, default=None)
    @click.option("--filter", "flt", help="JSON filter over the entry.")
    @click.option("--limit", default=10, show_default=True, type=click.IntRange(min=1))
    @click.option("--explain", is_flag=True, help="Show each term of the score.")
    @_backend_option
    @_json_option
    def search(agent_id: str, query: str | None, tags: tuple[str, ...], all_tags: bool,
               min_importance: float | None, flt: str | None, limit: int, explain: bool,
               backend: str | None, as_json: bool) -> None:
        """Search AGENT_ID's memories, ranked (by QUERY relevance, importance, recency)."""
        entries = _run(backend, lambda m: m.search_memories(
            agent_id, query, tags=tags or None, tag_mode="all" if all_tags else "any",
            min_importance=min_importance, filter=_filter(flt), limit=limit, explain=explain))
        _print_entries(entries, as_json, show_score=True)

    @memory.command("delete")
    @click.argument("agent_id", required=False)
    @click.argument("key", required=False)
    @click.option("--tag", "tags", multiple=True, help="Delete entries with this tag.")
    @click.option("--filter", "flt", help="Delete entries matching this JSON filter.")
    @click.option("--everything", is_flag=True, help="With no AGENT_ID: delete every memory.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation of a bulk delete.")
    @_backend_option
    def delete(agent_id: str | None, key: str | None, tags: tuple[str, ...], flt: str | None,
               everything: bool, yes: bool, backend: str | None) -> None:
        """Delete one memory (AGENT_ID KEY) or many (AGENT_ID and/or --tag/--filter)."""
        if key is not None:
            if tags or flt:
                raise click.UsageError("give KEY or --tag/--filter, not both")
            found = _run(backend, lambda m: m.delete_memory(agent_id, key))
            click.echo("deleted 1" if found else f"no memory {key!r} for agent {agent_id!r}")
            if not found:
                sys.exit(1)
            return
        condition = _filter(flt)
        if agent_id is None and not tags and not condition and not everything:
            # delete_memories() refuses this too, in its own (keyword) words
            raise click.UsageError("give AGENT_ID, --tag or --filter, or --everything to "
                                   "delete every memory of every agent")
        if not yes:
            click.confirm("Delete every matching memory?", abort=True)
        n = _run(backend, lambda m: m.delete_memories(
            agent_id, tags=tags or None, filter=condition, everything=everything))
        click.echo(f"deleted {n}")

    @memory.command("stats")
    @_backend_option
    @_json_option
    def stats(backend: str | None, as_json: bool) -> None:
        """Count memories per agent in the configured store."""
        out = _run(backend, lambda m: m.stats())
        if as_json:
            click.echo(json.dumps(out, ensure_ascii=False, indent=2))
            return
        click.echo(f"entries: {out['entries']}  (expired, not yet swept: {out['expired']})")
        for agent, n in out["agents"].items():
            click.echo(f"  {agent}: {n}")

    @memory.command("export")
    @click.argument("file", type=click.File("w", encoding="utf-8"), default="-")
    @click.option("--agent", "agent_id", default=None, help="Only this agent's memories.")
    @_backend_option
    def export(file: Any, agent_id: str | None, backend: str | None) -> None:
        """Write live memories to FILE (default: stdout), one JSON object a line."""
        async def action(m: Any) -> int:
            n = 0
            while True:
                page = await m.list_memories(agent_id, limit=_PAGE, offset=n)
                for e in page:
                    file.write(json.dumps(_exported(e), ensure_ascii=False) + "\n")
                n += len(page)
                if len(page) < _PAGE:
                    return n

        n = _run(backend, action)
        click.echo(f"exported {n}", err=True)

    @memory.command("import")
    @click.argument("file", type=click.File("r", encoding="utf-8"), default="-")
    @click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1),
                  help="Entries embedded and written together.")
    @_backend_option
    def import_(file: Any, batch_size: int, backend: str | None) -> None:
        """Store the memories in FILE (JSON lines, as `export` writes them).

        Each line needs agent_id, key and value; tags, importance and expires_at are
        kept; created_at, updated_at and version are set anew by the store.
        """
        from neuroflow.errors import InvalidMemoryError

        items = []
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"line {number}: not JSON: {exc}",
                                         param_hint="FILE") from None
            if not isinstance(item, dict):
                raise click.BadParameter(f"line {number}: expected a JSON object",
                                         param_hint="FILE")
            for name in _SET_BY_STORE:
                item.pop(name, None)
            items.append((number, item))
        async def load(manager: Any) -> list[Any]:
            # A store that can (PostgreSQL with pgvector) indexes the vectors once, at the end.
            bulk = getattr(manager.store, "bulk_load", None)
            if bulk is None:
                return await manager.store_many([i for _, i in items], batch_size=batch_size)
            async with bulk():
                return await manager.store_many([i for _, i in items], batch_size=batch_size)

        try:
            stored = _run(backend, load)
        except InvalidMemoryError as exc:
            found = re.match(r"items\[(\d+)\]\.(.*)", str(exc), re.DOTALL)
            if found is None:
                raise
            line_no = items[int(found[1])][0]
            raise click.BadParameter(f"line {line_no}: {found[2]}", param_hint="FILE") \
                from None
        click.echo(f"imported {len(stored)}")

    return memory
