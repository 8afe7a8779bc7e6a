"""A run directory's records, read and checked without torch.

``read_run_files`` reads what a run wrote as text (``model.json``, ``preprocess.json``,
``metrics.json``, ``config.yaml``, ``history.jsonl``) after the checks every use of a run starts
with: a format this growml reads, the files' digests, a description that agrees with the
preprocessing, a weights file that is one. ``load_run`` builds the network on top of it;
``growml report`` shows a run from it alone, so that printing a run never waits for torch to
import (about 1 s of a fresh process, most of a report's time before).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError, safe_open

from growml.config import Activation, move_growth_settings
from growml.data import Preprocessor
from growml.errors import RunError
from growml.events import Event, parse_event
from growml.runs import digests
from growml.runs.description import check_agreement, read_description
from growml.runs.layout import CONFIG, HISTORY, METRICS, MODEL_SPEC, MODEL_WEIGHTS, PREPROCESS
from growml.runs.records import ModelRecord, RunMetrics

# 2: metrics.json and history.jsonl are the typed records of growml.runs.records and
# growml.events. Format 1 (the same files, untyped) loads as format 2.
# 3: digests.json lists the SHA-256 of every file; runs of formats 1 and 2 load unchecked.
FORMAT_VERSION = 3


@dataclass(frozen=True)
class RunFiles:
    """The records of a run directory, checked.

    Attributes:
        path: the run directory.
        model: the contents of ``model.json``; typed, as ``description``.
        description: ``model.json`` as a record (architecture, task, classes, threshold).
        preprocess: the contents of ``preprocess.json`` (``features`` and ``target``).
        preprocessor: its ``features``, rebuilt (the columns and how each was read).
        metrics: the contents of ``metrics.json`` (empty when there is none); typed, as
            ``metrics_record``.
        config: the resolved settings of ``config.yaml`` (empty when there is none).
    """

    path: Path
    model: dict[str, Any]
    description: ModelRecord
    preprocess: dict[str, Any]
    preprocessor: Preprocessor
    metrics: dict[str, Any]
    config: dict[str, Any]

    @property
    def metrics_record(self) -> RunMetrics | None:
        """``metrics`` as a typed record; None when the run has none."""
        return RunMetrics.model_validate(self.metrics) if self.metrics else None

    def history(self) -> list[Event]:
        """The events of ``history.jsonl``, typed (``EpochEnd``, ``GrowthStep``...)."""
        return read_history(self.path)

    def setting(self, path: str) -> Any:
        """The setting at the dotted ``path`` (``train.monitor``) of ``config.yaml``; None when
        the run's settings do not have it."""
        value: Any = self.config
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value


def read_run_files(path: str | Path) -> RunFiles:
    """The records of the run directory ``path``; a missing, edited, damaged or newer-format
    file is refused in one sentence naming it."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory {str(path)!r} does not exist.")
    for name in (MODEL_SPEC, MODEL_WEIGHTS, PREPROCESS):
        if not (path / name).is_file():
            raise RunError(f"{str(path)!r} is not a complete run directory: {name} is missing.")
    written = _written_format(path / MODEL_SPEC)
    if written is not None and written > FORMAT_VERSION:
        raise RunError(
            f"{str(path)!r} was written by a newer growml (run format {written}, and this growml "
            f"reads format {FORMAT_VERSION} and older); upgrade growml to load it."
        )
    digests.check(path)
    digests.require(path, written)
    model = _read_json(path / MODEL_SPEC)
    # The activations growml has, by the names its settings take (growml.nn has them as torch
    # functions).
    description = read_description(model, path / MODEL_SPEC, get_args(Activation))
    preprocess = _read_json(path / PREPROCESS)
    try:
        if not isinstance(preprocess, dict):
            raise TypeError("preprocess.json must hold a mapping")
        preprocessor = Preprocessor.from_dict(preprocess["features"])
        target = preprocess["target"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"run directory {str(path)!r} is damaged: {exc}.") from None
    check_agreement(description, path / MODEL_SPEC, target, preprocessor.feature_names)
    _check_weights_file(path / MODEL_WEIGHTS)
    return RunFiles(
        path=path,
        model=model,
        description=description,
        preprocess=preprocess,
        preprocessor=preprocessor,
        metrics=_read_metrics(path / METRICS),
        config=_read_config(path / CONFIG),
    )


def read_history(path: Path) -> list[Event]:
    """The events of the run directory ``path``'s ``history.jsonl``, typed; none without one."""
    if not (path / HISTORY).exists():
        return []
    events = []
    for number, line in enumerate(read_text(path / HISTORY).splitlines(), 1):
        if not line.strip():
            continue
        try:
            events.append(parse_event(json.loads(line)))
        except (json.JSONDecodeError, ValidationError):
            raise RunError(
                f"line {number} of {str(path / HISTORY)!r} is not a growml event; "
                "the run directory is damaged."
            ) from None
    return events


def read_text(path: Path) -> str:
    """The text of a run's file; an unreadable or binary one is refused in a sentence."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunError(f"{str(path)!r} is not text; the run directory is damaged.") from None
    except OSError as error:
        raise RunError(f"cannot read {str(path)!r}: {error.strerror}.") from None


def _written_format(spec: Path) -> int | None:
    """The run format ``model.json`` declares, read leniently (None when it cannot tell): a
    newer format is refused before anything else, its digests included."""
    try:
        info = json.loads(spec.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    written = info.get("format_version", FORMAT_VERSION) if isinstance(info, dict) else None
    return written if isinstance(written, int) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError:
        raise RunError(f"{str(path)!r} is not valid JSON; the run directory is damaged.") from None


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(read_text(path))
    except yaml.YAMLError:
        raise RunError(f"{str(path)!r} is not valid YAML; the run directory is damaged.") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise RunError(f"{str(path)!r} is not a mapping; the run directory is damaged.")
    if isinstance(config.get("growth"), dict):
        # Runs of format 1 keep the growth methods' settings directly under growth.
        config["growth"] = move_growth_settings(config["growth"])
    return config


def _read_metrics(path: Path) -> dict[str, Any]:
    metrics = _read_json(path) if path.is_file() else {}
    if not isinstance(metrics, dict):
        raise RunError(f"{str(path)!r} is not a mapping; the run directory is damaged.")
    _validate(RunMetrics, metrics, path, "growml metrics")
    return metrics


def _validate(record: type[BaseModel], content: dict[str, Any], path: Path, what: str) -> None:
    """Refuse ``content`` that ``record`` does not validate, naming its first problem."""
    try:
        record.model_validate(content)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise RunError(
            f"{str(path)!r} is not {what} ({where}: {problem['msg'].lower()}); "
            "the run directory is damaged."
        ) from None


def _check_weights_file(path: Path) -> None:
    """Refuse a weights file that is not safetensors (its header is read, not its tensors)."""
    try:
        with safe_open(path, framework="numpy") as weights:
            weights.keys()
    except (SafetensorError, OSError) as error:
        raise RunError(f"run directory {str(path.parent)!r} is damaged: {error}.") from None
