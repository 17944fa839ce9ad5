"""The documentation shows the example backend's files exactly as they are on disk."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "third-party-backend"
MARKED_BLOCK = re.compile(
    r"^<!-- file: (?P<path>\S+) -->\n(?P<fence>```|~~~)[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
MARKER = re.compile(r"<!-- file: (\S+) -->")


def marked_blocks(document: Path) -> list[tuple[str, str]]:
    """``(path, body)`` of every fenced block preceded by a ``<!-- file: ... -->`` line."""
    text = document.read_text()
    blocks = [(m["path"], m["body"]) for m in MARKED_BLOCK.finditer(text)]
    markers = MARKER.findall(text)
    assert len(blocks) == len(markers), (
        f"{document.name}: every '<!-- file: ... -->' line must be directly followed by a "
        f"fenced block (markers: {markers}, blocks: {[p for p, _ in blocks]})"
    )
    return blocks


DOCUMENTS = [ROOT / "docs" / "writing-a-backend.md"]
if (ROOT / "README.md").is_file() and MARKER.search((ROOT / "README.md").read_text()):
    DOCUMENTS.append(ROOT / "README.md")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_marked_block_equals_the_file_on_disk(document: Path) -> None:
    blocks = marked_blocks(document)
    assert blocks, f"{document.name} has no marked file blocks"
    for path, body in blocks:
        on_disk = ROOT / path
        assert on_disk.is_file(), f"{document.name} shows {path}, which does not exist"
        assert body == on_disk.read_text(), (
            f"{document.name}: the block marked {path} differs from the file; "
            "paste the file again"
        )


def test_the_guide_shows_every_file_of_the_example() -> None:
    shown = {path for path, _ in marked_blocks(ROOT / "docs" / "writing-a-backend.md")}
    files = {
        str(p.relative_to(ROOT))
        for p in EXAMPLE.rglob("*")
        if p.is_file() and p.suffix in (".py", ".toml")
        and "__pycache__" not in p.parts and ".egg-info" not in str(p)
    }
    assert files == shown
