import subprocess
import sys

import pytest


def test_the_core_imports_neither_socketio_nor_redis() -> None:
    code = (
        "import sys, roomcast, roomcast.testing, roomcast.backends;"
        "optional = {'socketio', 'engineio', 'redis', 'pydantic'};"
        "print(sorted({m.split('.')[0] for m in sys.modules} & optional))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_adapter_does_import_socketio() -> None:
    # The check above can fail: importing the adapter does pull socketio in.
    code = "import sys, roomcast.adapters.socketio; print('socketio' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


def test_no_import_circle_in_the_package() -> None:
    """Every import between roomcast's own modules, `TYPE_CHECKING` ones included, goes one
    way: the modules form no cycle."""
    import ast
    from graphlib import CycleError, TopologicalSorter
    from pathlib import Path

    import roomcast

    root = Path(roomcast.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        name = ".".join(("roomcast", *path.relative_to(root).with_suffix("").parts))
        name = name.removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                edges.add(target)
                edges.update(f"{target}.{alias.name}" for alias in node.names)
    for name, edges in graph.items():
        graph[name] = {e for e in edges if e in graph and e != name}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"an import circle: {exc.args[1]}") from None


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("roomcast.adapters.socketio", "socketio", "roomcast[socketio]"),
        ("roomcast.adapters.socketio", "engineio", "roomcast[socketio]"),
        ("roomcast.backends.redis", "redis", "roomcast[redis]"),
    ],
)
def test_a_missing_extra_is_named_with_how_to_install_it(
    module: str, missing: str, extra: str
) -> None:
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        f"try:\n    import {module}\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert f"pip install '{extra}'" in result.stdout, result.stdout
