"""Work directories: a folder a command owns, known by its manifest, and the partial
directories a write leaves beside its target while it is under way.

``fit`` writes a run directory (its manifest: ``model.json``), ``compare`` a comparison
directory (``compare.json``) and ``tune`` a tune directory (``tune.json``). Each refuses a path
that holds anything else, so that no user data is ever deleted. What is written whole or not
at all is built in a hidden sibling, ``.<name>.partial-<random>``, and moved into place; a
killed write leaves its partial directory behind, for the next run to resume or remove.

A process writing a partial directory holds a lock on it (``hold``) until it is done; the lock
ends with the process however it ends (``kill -9`` included), so a partial directory nobody
holds is what a stopped write left (``in_use``), and one that is held belongs to a write still
under way in another process, which must not lose it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from growml.errors import RunError
from growml.runs.layout import MODEL_SPEC, MODEL_WEIGHTS, PREPROCESS

_PARTIAL = ".partial-"
# A partial directory younger than this may be one whose writer has not yet taken its lock.
_UNLOCKED_SECONDS = 2.0

# The files that make a folder a growml directory of each kind (a run's are all required; a
# run missing one is still recognised, to be refused with the name of what is missing).
KINDS = {
    "run": (MODEL_SPEC, MODEL_WEIGHTS, PREPROCESS),
    "comparison": ("compare.json",),
    "tune": ("tune.json",),
    "experiment": ("experiment.json",),
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


def check_destination(out: Path, overwrite: bool) -> None:
    """Check that a run can be written at ``out``: new, empty, or a run to replace with
    ``overwrite``; never a folder of other files, nor the current directory or one above it."""
    if claim(out, "run", [MODEL_SPEC]) and not overwrite:
        raise RunError(
            f"run directory {str(out)!r} already exists; pass --overwrite or choose another --out."
        )
    if out.exists():
        refuse_current(out)


def directory_kind(path: Path) -> str:
    """Which growml directory ``path`` is: ``run``, ``comparison``, ``tune`` or
    ``experiment`` (``KINDS``); anything else is refused in a sentence."""
    if not path.exists():
        raise RunError(
            f"{str(path)!r} does not exist; give a directory growml fit, compare, tune or "
            "diagnose --experiment wrote."
        )
    for kind, names in KINDS.items():
        if path.is_dir() and any((path / name).is_file() for name in names):
            return kind
    raise RunError(
        f"{str(path)!r} is not a run, comparison, tune or experiment directory (it holds no "
        "model.json, compare.json, tune.json or experiment.json); give a directory growml fit, "
        "compare, tune or diagnose --experiment wrote."
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
    """Remove the partial directories in ``folder`` that no process is writing: what killed
    writes left there."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if partial_of(entry) is not None and not in_use(entry):
                shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file or directory ``path`` while the block runs; other
    processes taking it wait their turn."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def share(path: Path) -> int:
    """Lock the directory ``path`` for as long as the returned descriptor is open, shared with
    the other processes using it (``alone`` tells whether there are any); waits while one
    holds it alone."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def alone(descriptor: int) -> bool:
    """Whether no other process shares the lock ``share`` returned; if none does, this one
    now holds it alone (no other can take it until the descriptor is closed)."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def hold(partial: Path) -> int:
    """Lock the partial directory a write goes on in, for as long as the returned descriptor
    is open; RunError when another process holds it already."""
    descriptor = os.open(partial, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise RunError(
            f"{str(partial)!r} is being written by another growml process; wait for it to end."
        ) from None
    return descriptor


def in_use(partial: Path) -> bool:
    """Whether a write may still be going on in ``partial``: too new to tell, or held."""
    try:
        young = time.time() - partial.stat().st_mtime < _UNLOCKED_SECONDS
    except FileNotFoundError:
        return False
    return young or held(partial)


def held(partial: Path) -> bool:
    """Whether another process holds the lock of ``partial`` (is writing in it)."""
    try:
        descriptor = os.open(partial, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False
