"""The fence runs one way: tornado_app/patches/ depends on the libraries it reaches into and
on itself, never on the app around it. What a patch needs from the app (the client key, the
refusal words, the session a request carries, how a refusal is told) comes in as arguments.

Read from the source with `ast`, so that an import anywhere in a module (in a function, under
TYPE_CHECKING) counts, and nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tornado_app.patches

PACKAGE = "tornado_app"
FENCE = "tornado_app.patches"
FENCE_DIR = Path(tornado_app.patches.__file__).resolve().parent


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, the source of `module`
    (`from .. import name` is an import of the module tornado_app.name)."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if node.module and target != PACKAGE:
                found.append((node.lineno, target))
            else:  # `from .. import reasons`: each name may be a module of that package
                found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            found.append((node.lineno, node.args[0].value))
    return found


def outside_the_fence(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports in `source` of a tornado_app module that is not in patches/."""
    return [f"line {line}: {name}" for line, name in imported_modules(source, module, is_package)
            if (name == PACKAGE or name.startswith(PACKAGE + "."))
            and name != FENCE and not name.startswith(FENCE + ".")]


def fence_modules() -> dict[str, Path]:
    return {("tornado_app.patches" if path.name == "__init__.py" else f"tornado_app.patches.{path.stem}"): path
            for path in sorted(FENCE_DIR.rglob("*.py"))}


def test_the_check_sees_every_kind_of_import_out_of_the_fence() -> None:
    module = "tornado_app.patches.engineio_server"
    leaks = {
        "from ..admission import client_key": "tornado_app.admission",
        "from .. import reasons": "tornado_app.reasons",
        "from ..redis.urls import SentinelURL": "tornado_app.redis.urls",
        "import tornado_app.cookies": "tornado_app.cookies",
        "from tornado_app.refusals import RefusalReport": "tornado_app.refusals",
        "def f():\n    from ..cookies import read_session_id": "tornado_app.cookies",
        "import importlib\nimportlib.import_module('tornado_app.reasons')": "tornado_app.reasons",
    }
    for source, leaked in leaks.items():
        found = outside_the_fence(source, module)
        assert [line.partition(": ")[2] for line in found] == [leaked], (source, found)
    for source in ("from .frames import server_frame", "from . import frames", "import engineio",
                   "from tornado_app.patches.guard import SESSION_ID", "SESSION_ID = 'tornado_app.session_id'"):
        assert outside_the_fence(source, module) == [], source
    assert outside_the_fence("from . import accept", "tornado_app.patches", is_package=True) == []


def test_patches_import_nothing_from_the_app_outside_patches() -> None:
    modules = fence_modules()
    assert {"tornado_app.patches.engineio_server", "tornado_app.patches.guard", "tornado_app.patches.managers"} <= set(modules)
    leaks = {name: found for name, path in modules.items()
             if (found := outside_the_fence(path.read_text(encoding="utf-8"), name, is_package=path.name == "__init__.py"))}
    assert leaks == {}, f"patches/ must take what it needs from the app as arguments: {leaks}"
