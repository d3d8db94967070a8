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


def test_every_install_line_that_serves_brings_the_fast_path() -> None:
    """`uvicorn` alone brings no websockets library, so an install line that adds it to
    roomcast's `socketio` extra serves websockets slowly or not at all: lines that serve use
    the `server` extra (python-socketio, uvicorn and websockets)."""
    pages = [*DOCS.glob("*.md"), DOCS.parent / "README.md"]
    lines = [
        (page.name, line)
        for page in pages
        for line in page.read_text().splitlines()
        if "pip install" in line
    ]
    assert any("roomcast[server" in line for _, line in lines)
    serving = [(name, line) for name, line in lines if "uvicorn" in line.split("pip install")[1]]
    assert serving == []
