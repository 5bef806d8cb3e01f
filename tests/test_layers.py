"""The README's picture of the code's layers is the rule: every module of edoc is in it,
and a module imports only from its own layer or those below."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "edoc"
_MODULE = re.compile(r"([a-z_]+)(?:\.py|/)")
_ASIDE = re.compile(r"\(.*?\)")  # what a row says in brackets is inside a module named before


def _picture() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    architecture = readme[readme.index("## Architecture") :]
    return architecture.split("```")[1]


def layers() -> dict[str, int]:
    """Each module or subpackage named in the picture, by its layer (0 = top)."""
    placed: dict[str, int] = {}
    layer = 0
    for row in _picture().splitlines():
        if "▼" in row:  # each arrow opens the next layer down
            layer += 1
        for name in _MODULE.findall(_ASIDE.sub("", row)):
            placed.setdefault(name, layer)
    return placed


def _edoc_imports(path: Path) -> set[str]:
    """The top-level edoc modules or subpackages ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "edoc":
                found.update(parts[1:2] or [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("edoc."))
    return found


def _top(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_every_module_is_in_the_picture() -> None:
    placed = layers()
    modules = {_top(path) for path in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert sorted(modules - placed.keys()) == []
    assert sorted(placed.keys() - modules) == []  # nor a module that is gone


def test_modules_import_only_from_their_layer_or_below() -> None:
    placed = layers()
    upward = sorted(
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in PACKAGE.rglob("*.py")
        if _top(path) in placed
        for imported in _edoc_imports(path)
        if placed.get(imported, len(placed)) < placed[_top(path)]
    )
    assert upward == []
