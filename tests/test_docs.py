"""The README and docs/ name only what exists: every module path, test, make target, flag and
relative link they give is checked against the repository, and the module map in
docs/architecture.md names every module. Docs drift silently otherwise (the README once
listed three "two commands", a module map without names.js and login.js, and 10,000 held
sockets where the Makefile said 2,000). Reads files only: no process, no network."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import launcher
from deploy import cluster
from tornado_app import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
RUNNING = ROOT / "docs" / "running.md"

# A path into the repository, as the docs write it: `tornado_app/sockets.py`,
# `tests/patches/test_internals.py::test_x`, `deploy/nginx.conf`, `web/static/js/`.
REPO_PATH = re.compile(r"(?<![\w./-])((?:tornado_app|deploy|bench|web|tests)/[\w./*-]*)")
# A test function named on its own or after its file: `test_x`, `test_a.py::test_x[memory]`.
TEST_NAME = re.compile(r"(?<![\w/.])(test_\w+)(?:\[|`|\)|,|\s|$)")
TEST_FILE_AND_NAME = re.compile(r"(test_\w+\.py)::(test_\w+)(\*?)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MAKEFILE_TARGET = re.compile(r"^([\w-]+):", re.MULTILINE)
# `make test`, `sudo make system-deps` (in inline code), and `make cluster ...` lines in a code block.
MAKE_IN_CODE = re.compile(r"`(?:sudo )?make ([\w-]+)")
MAKE_IN_BLOCK = re.compile(r"^\s*(?:sudo )?make ([\w-]+)", re.MULTILINE)


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_blocks(text: str) -> str:
    return "\n".join(re.findall(r"^```[^\n]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE))


def outside_code_blocks(text: str) -> str:
    return re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but `-` and `_` dropped, spaces to
    `-`, a repeated one suffixed `-1`, `-2`..."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", outside_code_blocks(text), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def repo_paths(text: str) -> set[str]:
    paths = set()
    for match in REPO_PATH.findall(text):
        path = match.split("::")[0].rstrip(".,:;")
        if "*" not in path and "..." not in path:
            paths.add(path)
    return paths


def defined_tests() -> dict[str, set[str]]:
    """Every test function defined under tests/, by file name (test_x.py -> names)."""
    names: dict[str, set[str]] = {}
    for source in (ROOT / "tests").rglob("test_*.py"):
        names.setdefault(source.name, set()).update(
            re.findall(r"^\s*(?:async )?def (test_\w+)", source.read_text(), re.MULTILINE))
    return names


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_path_the_doc_names_exists(doc: Path) -> None:
    missing = sorted(path for path in repo_paths(doc.read_text()) if not (ROOT / path).exists())
    assert not missing, f"{doc_id(doc)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_test_the_doc_names_exists(doc: Path) -> None:
    text = doc.read_text()
    defined = defined_tests()
    every_name = set().union(*defined.values())
    wrong = [f"{file}::{name}{star}" for file, name, star in TEST_FILE_AND_NAME.findall(text)
             if not any(known == name or (star and known.startswith(name)) for known in defined.get(file, set()))]
    wrong += sorted(name for name in set(TEST_NAME.findall(text))
                    if name not in every_name and f"{name}.py" not in defined)
    assert not wrong, f"{doc_id(doc)} names tests that do not exist: {wrong}"


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_make_target_the_doc_names_exists(doc: Path) -> None:
    text = doc.read_text()
    targets = set(MAKEFILE_TARGET.findall((ROOT / "Makefile").read_text()))
    named = set(MAKE_IN_CODE.findall(text)) | set(MAKE_IN_BLOCK.findall(code_blocks(text)))
    missing = sorted(named - targets)
    assert not missing, f"{doc_id(doc)} names make targets the Makefile does not have: {missing}"


@pytest.mark.parametrize("doc", [*DOCS, ROOT / "CHANGELOG.md"], ids=doc_id)
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for link in LINK.findall(outside_code_blocks(doc.read_text())):
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto:
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        missing_anchor = path.exists() and anchor and path.suffix == ".md" and anchor not in anchors(path.read_text())
        if not path.exists() or missing_anchor:
            broken.append(link)
    assert not broken, f"{doc_id(doc)} has links that lead nowhere: {broken}"


def modules_to_map() -> list[Path]:
    modules = [*(ROOT / "tornado_app").rglob("*.py"), *(ROOT / "web" / "static").rglob("*.js"),
               *(ROOT / "deploy").iterdir(), *(ROOT / "bench").iterdir(), ROOT / "launcher.py"]
    return sorted(path for path in modules
                  if path.is_file() and path.name != "__init__.py" and "__pycache__" not in path.parts
                  and path.name != "socket.io.min.js")


def test_the_module_map_names_every_module() -> None:
    """One module map (docs/architecture.md), complete: a module added without a line there fails."""
    text = ARCHITECTURE.read_text()
    the_map = code_blocks(text)
    unnamed = [str(path.relative_to(ROOT)) for path in modules_to_map()
               if not re.search(rf"(?<![\w.]){re.escape(path.name)}(?![\w])", the_map)]
    assert not unnamed, f"docs/architecture.md's module map does not name: {unnamed}"


def table_after(text: str, header: str) -> str:
    """The markdown table whose header row starts with `header`, up to the first blank line."""
    start = text.index(header)
    end = text.find("\n\n", start)
    return text[start:end if end != -1 else len(text)]


def usage_flags(parser: argparse.ArgumentParser) -> set[str]:
    return set(re.findall(r"--[\w-]+", parser.format_usage()))


@pytest.mark.parametrize(("doc", "header", "parser"), [
    (RUNNING, "| flag | default | meaning |", cli.build_parser),
    (ROOT / "docs" / "scaling.md", "| `deploy/cluster.py` flag |", cluster.build_parser),
], ids=["python -m tornado_app", "deploy/cluster.py"])
def test_a_flags_table_lists_exactly_the_programs_flags(doc: Path, header: str,
                                                         parser: Callable[[], argparse.ArgumentParser]) -> None:
    """A table of flags in the docs, against the program's own parser: none missing, none made up."""
    rows = re.findall(r"^\| (`--[^|]+) \|", table_after(doc.read_text(), header), re.MULTILINE)
    table_flags = {flag for row in rows for flag in re.findall(r"`(--[\w-]+)`", row)}
    parser_flags = usage_flags(parser())
    assert table_flags == parser_flags, (
        f"only in the table: {sorted(table_flags - parser_flags)}; "
        f"only in the parser: {sorted(parser_flags - table_flags)}")


def test_the_launchers_help_in_the_docs_lists_exactly_its_flags() -> None:
    text = RUNNING.read_text()
    block = text[text.index("launcher.py --help\n"):]
    block = block[:block.index("```")]
    assert set(re.findall(r"^  (--[\w-]+)", block, re.MULTILINE)) == usage_flags(launcher.build_parser())


@pytest.mark.process
def test_the_readmes_example_serves_the_page() -> None:
    """The README's example, run as a person would paste it (on a free port): it prints where
    it serves, and the page and /readyz answer."""
    import subprocess
    import sys
    import urllib.request

    from deploy.services import free_port

    example = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert example is not None, "the README has no Python example"
    port = free_port()
    code = example.group(1).replace("8888", str(port))
    assert str(port) in code, "the example no longer binds port 8888"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"open http://127.0.0.1:{port}/"
        for path, body in (("/", "Session Sockets"), ("/readyz", "ready")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                assert response.status == 200 and body in response.read().decode()
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
