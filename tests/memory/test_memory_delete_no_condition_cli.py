"""``neuroflow memory delete --filter`` with a filter that matches everything is refused
like no filter at all, and deletes nothing."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from neuroflow.cli import build_cli


def test_match_everything_filters_are_refused_on_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("neuroflow_memory_sqlite", reason="needs neuroflow-memory-sqlite")
    Path("neuroflow.toml").write_text(
        f'[memory]\nbackend = "sqlite"\n\n[memory.sqlite]\nurl = "sqlite:///{tmp_path}/m.db"\n')
    from neuroflow.memory import MemoryManager

    async def fill() -> None:
        async with MemoryManager() as manager:
            await manager.store_memory("a", "k", 1)
            await manager.store_memory("b", "k", 2)

    anyio.run(fill)
    cli = build_cli()
    for flt in ('{"$and": [{}]}', '{"$or": [{}]}', '{"$not": {"$not": {}}}',
                '{"$or": [{"value.x": {"$exists": false}}, {"value.x": {"$exists": true}}]}'):
        result = CliRunner().invoke(cli, ["memory", "delete", "--filter", flt, "--yes"])
        assert result.exit_code == 2 and "everything" in result.output, (flt, result.output)
    result = CliRunner().invoke(cli, ["memory", "stats", "--json"])
    assert '"entries": 2' in result.output
    result = CliRunner().invoke(
        cli, ["memory", "delete", "--filter", '{"$and": [{}]}', "--everything", "--yes"])
    assert result.exit_code == 0 and "deleted 2" in result.output
