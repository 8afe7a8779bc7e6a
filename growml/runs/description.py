"""``model.json`` read back typed and checked against the files it describes.

Every run, of every format, is checked this way, digests or not: values no run can have (a
threshold of 2, an activation growml does not know) and descriptions that disagree with
``preprocess.json`` (classes in another order, another task, other columns) are refused in one
sentence that names the file, rather than turned into predictions. Needs no torch.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from growml.errors import RunError
from growml.runs.records import ModelRecord

_REMEDY = "restore the file, or fit the run again"


def read_description(
    info: Any, path: Path, activations: Collection[str] | None = None
) -> ModelRecord:
    """``info`` (the JSON of ``path``, a ``model.json``) as a ``ModelRecord``, or a
    ``RunError`` naming the first value no run can have; ``activations``: the names growml
    has (None: not checked)."""
    if not isinstance(info, dict):
        raise RunError(f"{str(path)!r} is not a mapping; the run directory is damaged.")
    try:
        record = ModelRecord.model_validate(info)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise RunError(
            f"{str(path)!r} does not describe a growml model ({where}: "
            f"{problem['msg'].lower()}); {_REMEDY}."
        ) from None
    if activations is not None and record.activation not in activations:
        raise RunError(
            f"{str(path)!r} names the activation {record.activation!r}, which growml does not "
            f"have (it has {', '.join(sorted(activations))}); {_REMEDY}."
        )
    return record


def check_agreement(
    record: ModelRecord, path: Path, target: dict[str, Any], feature_names: list[str]
) -> None:
    """Refuse a ``model.json`` (``record``, at ``path``) whose task, classes or columns differ
    from those of ``preprocess.json`` (its ``target`` section and ``feature_names``)."""
    disagreement = _disagreement(record, target, feature_names)
    if disagreement:
        raise RunError(
            f"{str(path)!r} disagrees with preprocess.json beside it ({disagreement}), so one "
            f"of them was changed after the run wrote them; {_REMEDY}."
        )


def _disagreement(
    record: ModelRecord, target: dict[str, Any], feature_names: list[str]
) -> str | None:
    if record.task != target.get("task"):
        return f"task {record.task!r} against {target.get('task')!r}"
    if record.task == "classification" and record.classes != list(target.get("classes", [])):
        return f"classes {record.classes} against {list(target.get('classes', []))}"
    if record.feature_names is not None and record.feature_names != feature_names:
        return f"columns {record.feature_names} against {feature_names}"
    return None
