"""Traffic profiles (seeds/profiles/*.toml): who sends to whom, how much, what, when,
and how recipients answer. ``_common.toml`` holds the defaults every profile refines."""

from __future__ import annotations

import csv
import fnmatch
import tomllib
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from edoc import errors, resources
from edoc.hub.directory import SEEDS
from edoc.orgid import OrgId

PROFILES = resources.seed("profiles")


@dataclass(frozen=True)
class Flow:
    senders: tuple[str, ...]  # root codes
    recipients: tuple[str, ...]
    documents: int
    per_sender: bool


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    source: str
    year: int
    months: tuple[int, int]
    roots: tuple[str, ...]
    focus: str | None
    agencies_per_root: int
    flows: tuple[Flow, ...]
    mix: dict[str, Any]
    calendar: dict[str, Any]
    answers: dict[str, Any]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


def _seed_roots() -> dict[str, str]:
    with SEEDS.open(encoding="utf-8") as handle:
        return {OrgId.parse(row["org_id"]).root_code: row["kind"] for row in csv.DictReader(handle)}


def _expand(word: str, roots: tuple[str, ...], other_than: tuple[str, ...]) -> tuple[str, ...]:
    kinds = _seed_roots()
    if word == "*":
        return tuple(r for r in roots if r not in other_than)
    if word in ("provinces", "ministries"):
        kind = word.removesuffix("s").replace("ministrie", "ministry")
        return tuple(r for r in roots if kinds.get(r) == kind)
    if word not in roots:
        raise errors.InvalidField(f"flow names {word}, which is not among the profile's roots")
    return (word,)


def _flow(item: dict[str, Any], roots: tuple[str, ...]) -> Flow:
    fixed = tuple(w for w in (item["from"], item["to"]) if w in roots)
    senders = _expand(item["from"], roots, fixed)
    recipients = _expand(item["to"], roots, fixed)
    return Flow(senders, recipients, int(item["documents"]), bool(item.get("per_sender")))


def _profile_names() -> list[str]:
    """The profiles shipped in seeds/profiles (``_common.toml`` is not one)."""
    return [
        entry.name.removesuffix(".toml")
        for entry in PROFILES.iterdir()
        if fnmatch.fnmatchcase(entry.name, "[!_]*.toml")
    ]


def load(name_or_path: str) -> Profile:
    path: Path | Traversable = Path(name_or_path)
    if not Path(name_or_path).suffix:
        path = PROFILES / f"{name_or_path}.toml"
    try:
        data = _merge(
            tomllib.loads((PROFILES / "_common.toml").read_text(encoding="utf-8")),
            tomllib.loads(path.read_text(encoding="utf-8")),
        )
    except FileNotFoundError:
        known = ", ".join(sorted(_profile_names()))
        raise errors.FileMissing(f"no profile {name_or_path!r}; known: {known}") from None
    except tomllib.TOMLDecodeError as exc:
        raise errors.InvalidField(f"{path}: {exc}") from None
    roots = tuple(_seed_roots()) if data["provinces"] == "all" else tuple(data["provinces"])
    return Profile(
        name=data["name"],
        title=data["title"],
        source=data["source"],
        year=int(data["year"]),
        months=(int(data.get("months", [1, 12])[0]), int(data.get("months", [1, 12])[1])),
        roots=roots,
        focus=data.get("focus"),
        agencies_per_root=int(data.get("agencies_per_province", 4)),
        flows=tuple(_flow(item, roots) for item in data["flow"]),
        mix=data["mix"],
        calendar=data["calendar"],
        answers=data["answers"],
    )
