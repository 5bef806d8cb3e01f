"""The wheel carries the dashboards' templates and static files: pyproject.toml's
package-data covers every one of them (tests/test_packaging.py checks the modules)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_template_and_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["edoc.dashboard"]
    folder = ROOT / "edoc" / "dashboard"
    files = [
        path.relative_to(folder).as_posix()
        for sub in ("templates", "static")
        for path in (folder / sub).rglob("*")
        if path.is_file()
    ]
    assert {"templates/hub.html", "static/chart.umd.min.js", "static/dashboard.js"} <= set(files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)] == []
