"""Work directories: a folder a command owns, known by its manifest, and the partial
directories a write leaves beside its target while it is under way.

``fit`` writes a run directory (its manifest: ``model.json``), ``compare`` a comparison
directory (``compare.json``) and ``tune`` a tune directory (``tune.json``). Each refuses a path
that holds anything else, so that no user data is ever deleted. What is written whole or not
at all is built in a hidden sibling, ``.<name>.partial-<random>``, and moved into place; a
killed write leaves its partial directory behind, for the next run to resume or remove.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from growml.errors import RunError

_PARTIAL = ".partial-"

# The files that make a folder a growml directory of each kind (a run's are all required; a
# run missing one is still recognised, to be refused with the name of what is missing).
KINDS = {
    "run": ("model.json", "model.safetensors", "preprocess.json"),
    "comparison": ("compare.json",),
    "tune": ("tune.json",),
}


def claim(path: Path, kind: str, manifests: Sequence[str]) -> bool:
    """Check that ``path`` can be a growml ``kind`` directory: absent, empty, or holding one
    of ``manifests``; returns whether it holds one (it is such a directory already)."""
    if not path.exists():
        return False
    found = any((path / name).is_file() for name in manifests)
    if not path.is_dir() or (any(path.iterdir()) and not found):
        raise RunError(
            f"{str(path)!r} exists and is not a growml {kind} directory; choose another --out."
        )
    return found


def directory_kind(path: Path) -> str:
    """Which growml directory ``path`` is: ``run``, ``comparison`` or ``tune`` (``KINDS``);
    anything else is refused in a sentence."""
    if not path.exists():
        raise RunError(
            f"{str(path)!r} does not exist; give a directory growml fit, compare or tune wrote."
        )
    for kind, names in KINDS.items():
        if path.is_dir() and any((path / name).is_file() for name in names):
            return kind
    raise RunError(
        f"{str(path)!r} is not a run, comparison or tune directory (it holds no model.json, "
        "compare.json or tune.json); give a directory growml fit, compare or tune wrote."
    )


def refuse_current(path: Path) -> None:
    """Refuse to replace ``path`` when it is the current directory or one above it."""
    resolved = path.resolve()
    if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents:
        raise RunError(f"{str(path)!r} contains the current directory; choose another --out.")


def read_manifest(manifest: Path, remedy: str) -> dict[str, Any]:
    """The mapping a work directory's JSON manifest holds; a damaged one is refused in a
    sentence that ends with ``remedy``."""
    try:
        content = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        content = None
    if not isinstance(content, dict):
        raise RunError(f"{str(manifest)!r} is damaged; {remedy}.")
    return content


def new_partial(target: Path) -> Path:
    """A new, empty partial directory for ``target``, beside it (its parent must exist)."""
    return Path(tempfile.mkdtemp(prefix=f".{target.name}{_PARTIAL}", dir=target.parent))


def partials(target: Path) -> list[Path]:
    """The partial directories of ``target``: writes under way, or left by killed ones."""
    return list(target.parent.glob(f".{target.name}{_PARTIAL}*"))


def partial_of(path: Path) -> str | None:
    """The name of the directory ``path`` is a partial directory of; None if it is none."""
    match = re.fullmatch(rf"\.(.+){re.escape(_PARTIAL)}[^.]*", path.name)
    return match[1] if match else None


def remove_partials(folder: Path) -> None:
    """Remove the partial directories in ``folder``: what killed writes left there."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if partial_of(entry) is not None:
                shutil.rmtree(entry, ignore_errors=True)
