"""The distributions: they build, pass the index's checks, and install and work on their own.

The sdist and the wheel are built as a release builds them (`python -m build`: the sdist, then
the wheel from the sdist), checked with `twine check --strict` (the README renders as the
project's page), and each is installed into a fresh virtual environment with plain pip, as
`scripts/bootstrap` installs, where a tiny app runs a round trip through `TestClient`.
"""

from __future__ import annotations

import email
import email.message
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

import roomcast

from .needs import missing

ROOT = Path(__file__).resolve().parents[1]
VERSION = roomcast.__version__
SDIST = f"roomcast-{VERSION}.tar.gz"
WHEEL = f"roomcast-{VERSION}-py3-none-any.whl"

# What the sdist holds, at its top level: the include list of pyproject.toml, plus what the
# backend always adds.
SDIST_TOP = {"src", "tests", "README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "PKG-INFO"}

# Run in the fresh environment: the core works with nothing but its base dependencies, and an
# optional subpackage whose extra is not installed says which extra to install.
ROUND_TRIP = """
import importlib, importlib.metadata, importlib.resources, importlib.util, sys
import anyio
import roomcast
from roomcast import App, Request
from roomcast.testing import TestClient

assert roomcast.__file__.startswith(sys.prefix), roomcast.__file__
assert importlib.metadata.version("roomcast") == roomcast.__version__ == {version!r}
assert importlib.resources.files("roomcast").joinpath("py.typed").is_file()

app = App()


@app.route("add")
async def add(req: Request) -> int:
    return sum(req.data)


async def main() -> None:
    async with TestClient(app) as client:
        assert await client.call("add", [1, 2, 3], timeout=5.0) == 6


anyio.run(main)

for module, needs, extra in [
    ("roomcast.adapters.socketio", "socketio", "socketio"),
    ("roomcast.backends.redis", "redis", "redis"),
    ("roomcast.metrics", "prometheus_client", "prometheus"),
]:
    assert importlib.util.find_spec(needs) is None, needs
    try:
        importlib.import_module(module)
    except ImportError as exc:
        assert f"pip install 'roomcast[{{extra}}]'" in str(exc), str(exc)
    else:
        raise AssertionError(f"{{module}} imported without {{needs}}")
print("round trip ok")
"""


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command outside this test run's Python path; fail with its output if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=50
    )
    if result.returncode != 0:
        pytest.fail(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("build", "twine"):
        if importlib.util.find_spec(module) is None:
            missing(f"{module} is not installed: scripts/bootstrap --tests installs it")
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    assert sorted(p.name for p in out.iterdir()) == sorted([SDIST, WHEEL])
    return out


def test_twine_check_strict_passes_on_both(dists: Path) -> None:
    result = run(sys.executable, "-m", "twine", "check", "--strict", dists / SDIST, dists / WHEEL)
    assert result.stdout.count("PASSED") == 2, result.stdout


def wheel_metadata(dists: Path) -> email.message.Message:
    with zipfile.ZipFile(dists / WHEEL) as wheel:
        metadata = wheel.read(f"roomcast-{VERSION}.dist-info/METADATA").decode("utf-8")
    return email.message_from_string(metadata)


def test_the_project_page_is_the_readme_and_the_license_is_mit(dists: Path) -> None:
    meta = wheel_metadata(dists)
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload() == (ROOT / "README.md").read_text()
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert not [c for c in meta.get_all("Classifier", []) if c.startswith("License ::")]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert set(meta.get_all("Provides-Extra", [])) >= {"socketio", "server", "redis", "pydantic"}
    base = [r for r in meta.get_all("Requires-Dist", []) if "extra ==" not in r]
    assert [r.split("<")[0].split(">")[0] for r in base] == ["anyio"], base


def test_both_distributions_carry_the_license_and_nothing_stray(dists: Path) -> None:
    license_text = (ROOT / "LICENSE").read_bytes()
    with zipfile.ZipFile(dists / WHEEL) as wheel:
        names = wheel.namelist()
        assert wheel.read(f"roomcast-{VERSION}.dist-info/licenses/LICENSE") == license_text
    assert {n.split("/")[0] for n in names} == {"roomcast", f"roomcast-{VERSION}.dist-info"}
    assert "roomcast/py.typed" in names

    prefix = f"roomcast-{VERSION}/"
    with tarfile.open(dists / SDIST) as sdist:
        members = {m.name.removeprefix(prefix): m for m in sdist.getmembers() if m.isfile()}
        license_file = sdist.extractfile(members["LICENSE"])
        assert license_file is not None
        assert license_file.read() == license_text
    # .gitignore: hatchling adds the project's own, to tell what the sdist leaves out.
    assert {name.split("/")[0] for name in members} - {".gitignore"} == SDIST_TOP
    assert "src/roomcast/py.typed" in members


def test_the_readme_reads_whole_on_the_index() -> None:
    """The index renders README.md (with readme_renderer, as here) away from the repository:
    every section renders, no link leads into the repository, no repository path is named; and
    its develop section starts with the two fresh-machine commands, as CONTRIBUTING.md does."""
    with warnings.catch_warnings():  # it warns on import when it has no Markdown renderer
        warnings.simplefilter("ignore")
        from readme_renderer import markdown
    if not markdown.variants:
        missing("readme-renderer[md] is not installed: scripts/bootstrap --tests installs it")

    readme = (ROOT / "README.md").read_text()
    html = markdown.render(readme)
    assert html is not None
    sections = re.findall(r"<h2[^>]*>([^<]*)<", html)
    assert sections[0] == "Install"
    assert {"Serve it", "Test it", "Features", "Develop", "License"} <= set(sections)
    assert html.count("<table>") == readme.count("\n|---")
    links = [h for h in re.findall(r'href="([^"]*)"', html) if not h.startswith("#")]
    assert [h for h in links if not h.startswith("https://")] == []
    assert re.findall(r"\b(?:docs|examples|benchmarks|src|tests)/\S*", readme) == []

    develop = readme[readme.index("\n## Develop\n") :]
    assert develop.startswith("\n## Develop\n\n```sh\nscripts/example\nscripts/test\n```\n")
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    lines = [line for line in contributing.splitlines() if line.startswith("scripts/")]
    assert lines[:2] == ["scripts/example", "scripts/test"]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_it_installs_into_a_fresh_environment_and_works(
    dists: Path, tmp_path: Path, kind: str
) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    dist = dists / (WHEEL if kind == "wheel" else SDIST)
    run(python, "-m", "pip", "install", "--quiet", dist)
    script = ROUND_TRIP.format(version=VERSION)
    assert run(python, "-c", script, cwd=tmp_path).stdout.strip() == "round trip ok"
