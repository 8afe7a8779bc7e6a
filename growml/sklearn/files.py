"""An estimator's run directory: its files in memory, its own record, and rows to verify an
export on."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from growml.data.preprocess import NumericColumn
from growml.errors import RunError
from growml.runs import Run, load_run

# The estimator's own record in its run directory: how its input looked (column names or an
# array, how many columns), which ``load`` needs and model.json does not hold.
ESTIMATOR_FILE = "estimator.json"
# Left out of the files an estimator carries: an export is not part of the run, and the
# estimator's record is written afresh by ``save``.
_NOT_CARRIED = ("model.onnx", ESTIMATOR_FILE)


def read_run_files(path: Path) -> dict[str, bytes]:
    """Every file of the run directory at ``path`` by its relative path."""
    return {
        str(file.relative_to(path)): file.read_bytes()
        for file in sorted(path.rglob("*"))
        if file.is_file() and file.name not in _NOT_CARRIED
    }


def run_from_files(files: Mapping[str, bytes]) -> Run:
    """The run that ``files`` (``read_run_files``) make up, loaded as from its directory."""
    with tempfile.TemporaryDirectory(prefix="growml-") as scratch:
        for name, content in files.items():
            (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / name).write_bytes(content)
        run = load_run(scratch)
    run.path = None
    return run


def estimator_record(n_features_in: int, feature_names_in: Any) -> dict[str, Any]:
    """The contents of ``estimator.json``."""
    names = None if feature_names_in is None else [str(name) for name in feature_names_in]
    return {"n_features_in": int(n_features_in), "feature_names_in": names}


def read_estimator_record(path: Path) -> dict[str, Any]:
    """``estimator.json`` of the run at ``path``; empty for a run ``growml fit`` wrote."""
    file = path / ESTIMATOR_FILE
    if not file.is_file():
        return {}
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"{str(file)!r} is not valid JSON; the run directory is damaged.") from None
    if not isinstance(record, dict):
        raise RunError(f"{str(file)!r} is not a mapping; the run directory is damaged.")
    return record


def verification_rows(run: Run, n_rows: int = 256, seed: int = 0) -> pa.Table:
    """Rows that exercise every part of the preprocessing: numbers spread around each
    column's training centre (and beyond), every kept category, an unseen one, missing values."""
    rng = np.random.default_rng(seed)
    columns = {}
    for column in run.preprocessor.columns:
        if isinstance(column, NumericColumn):
            if column.boolean:
                values: list[Any] = rng.integers(0, 2, n_rows).astype(bool).tolist()
            else:
                centre, spread = column.scaling.centre, column.scaling.spread
                values = (centre + 3 * spread * rng.standard_normal(n_rows)).tolist()
        else:
            choices = [*column.categories, "<unseen>"]
            values = [choices[i] for i in rng.integers(0, len(choices), n_rows)]
        missing = rng.random(n_rows) < 0.05
        columns[column.name] = pa.array(
            [None if gap else value for value, gap in zip(values, missing, strict=True)]
        )
    return pa.table(columns)
