"""Which built world is the right one: a content hash over every file the harness reads from it.

The hash covers the models (weights, configs, tokenizers), the prompt and preference data and the
capability items. It leaves out the card (its build timings vary), the lm-eval task YAML (it names
the absolute path of its items) and the ``transformers_version`` that ``save_pretrained`` writes
into a model's JSON files (same weights, same world). The card records the hash; a cached world
whose files no longer give it is rebuilt.

The default world ships inside the package (``harness/world/shipped/``), built once and installed
from there, so every machine evaluates on the same bytes: a build on another CPU kind gives other
floating-point weights (measured: reward-model accuracies 0.882 / 0.856 on one, 0.876 / 0.874 on
another, from the same seed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from harness.core.files import publish_folder
from harness.world import tasks as capability_tasks
from harness.world.config import WorldConfig

SHIPPED_ROOT = Path(__file__).parent / "shipped"
UNHASHED = ("card.json", "card.md")


def _hashed_files(world: Path) -> list[Path]:
    files = [p for p in world.rglob("*") if p.is_file()]
    keep = [
        p
        for p in files
        if p.relative_to(world).as_posix() not in UNHASHED
        and not p.name.startswith(".")  # a temporary file of an atomic write
        and not (p.parent.name == "tasks" and p.suffix == ".yaml")
    ]
    return sorted(keep, key=lambda p: p.relative_to(world).as_posix())


def _content(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".json" and path.parent.name != "data":
        try:
            obj = json.loads(data)
        except ValueError:
            return data
        if isinstance(obj, dict) and "transformers_version" in obj:
            obj.pop("transformers_version")
            return json.dumps(obj, sort_keys=True).encode()
    return data


def content_hash(world: Path) -> str:
    """sha256 over (relative path, sha256 of content) of every hashed file of ``world``."""
    digest = hashlib.sha256()
    for path in _hashed_files(world):
        rel = path.relative_to(world).as_posix()
        digest.update(rel.encode() + b"\0" + hashlib.sha256(_content(path)).digest())
    return digest.hexdigest()


def recorded_hash(world: Path) -> str | None:
    """The hash the world's card records (None without a readable card)."""
    try:
        card = json.loads((world / "card.json").read_text())
    except (OSError, ValueError):
        return None
    value = card.get("content_hash") if isinstance(card, dict) else None
    return value if isinstance(value, str) else None


def verify(world: Path) -> str | None:
    """None when ``world`` holds what its card records; else what is wrong, in words."""
    recorded = recorded_hash(world)
    if recorded is None:
        return "no card with a content hash"
    actual = content_hash(world)
    if actual != recorded:
        return f"its files hash to {actual[:12]}, its card records {recorded[:12]}"
    return None


def shipped(cfg: WorldConfig) -> Path | None:
    """The world the package ships for ``cfg``, if it ships one (the default config's)."""
    path = SHIPPED_ROOT / f"{cfg.name}-{cfg.key()}"
    return path if (path / "card.json").exists() else None


def install(source: Path, target: Path, cfg: WorldConfig) -> Path:
    """Copy the world at ``source`` to ``target`` whole (through a folder of this process's own and
    a rename) and write its task YAML. A ``target`` another process installed meanwhile is kept."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns("*.yaml", "__pycache__"))
    capability_tasks.write_yaml(partial / "tasks")
    publish(partial, target)
    return target


def publish(partial: Path, target: Path) -> None:
    """Rename the finished ``partial`` to ``target``; when another process got there first with a
    good world, keep theirs. The task YAML is rewritten for the final path."""
    if not publish_folder(partial, target) and verify(target) is not None:
        raise OSError(f"{target}: another process left a world here that is not intact")
    capability_tasks.write_yaml(target / "tasks")


def relocate(world: Path) -> None:
    """Rewrite the task YAML when it names another folder's items (the world was moved)."""
    tasks = world / "tasks"
    for task in capability_tasks.TASKS:
        data = json.dumps(str((tasks / f"{task}.jsonl").resolve()))
        yaml = tasks / f"{task}.yaml"
        if not yaml.exists() or data not in yaml.read_text():
            capability_tasks.write_yaml(tasks)
            return
