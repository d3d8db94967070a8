"""The docs say what the code does, where the two could drift apart."""

from pathlib import Path

import roomcast
import roomcast._exceptions

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_exception_tree_in_the_docs_is_the_codes() -> None:
    doc = roomcast._exceptions.__doc__ or ""
    tree = doc[doc.index("RoomcastError") : doc.index("\n\n", doc.index("RoomcastError"))]
    lines = [line.strip() for line in tree.splitlines()]
    page = (DOCS / "errors.md").read_text()
    drawn = page[page.index("```text\n") + 8 : page.index("```", page.index("```text\n") + 8)]
    assert [line.strip() for line in drawn.strip().splitlines()] == lines


def test_every_public_name_is_in_the_api_reference() -> None:
    page = (DOCS / "api.md").read_text()
    for name in roomcast.__all__:
        if name != "__version__":
            assert f"`{name}" in page, name
