"""Which metric measures a run, for each use: the validation metric training monitors, the
metric a binary threshold maximises, and the test metric a comparison or a study ranks by.

The choices for a loss live together so that they agree: a soft-set loss trains for the
metric it stands for, so its threshold is chosen for that metric, and a soft F-loss's runs are
ranked by F1.
"""

from __future__ import annotations

from growml.config import FitConfig
from growml.errors import ConfigError

MONITORS = {"classification": ("accuracy", "loss", "macro_f1"), "regression": ("loss", "r2")}
RANKED = {"classification": ("accuracy", "macro_f1", "f1"), "regression": ("r2",)}
# A soft-set loss gives no calibrated probabilities: its threshold is always chosen.
_THRESHOLD_FOR_LOSS = {
    "soft-f1": "f1",
    "soft-fbeta": "fbeta",
    "soft-auroc": "f1",
    "soft-accuracy": "accuracy",
}
_F_LOSSES = ("soft-f1", "soft-fbeta")


def check_settings(config: FitConfig, task: str) -> None:
    """Settings that can only be checked once the task is known: ``train.monitor``."""
    allowed = MONITORS[task]
    if config.train.monitor not in allowed:
        raise ConfigError(
            f"train.monitor={config.train.monitor!r} does not apply to {task}; "
            f"choose one of {', '.join(allowed)}."
        )


def threshold_metric(requested: str, loss: str) -> str:
    """The metric a binary run's threshold maximises on the validation split: ``requested``,
    or for ``auto`` the metric a soft-set ``loss`` stands for (``none`` for other losses: the
    threshold stays at 0.5)."""
    if requested != "auto":
        return requested
    return _THRESHOLD_FOR_LOSS.get(loss, "none")


def ranking_metric(requested: str, task: str, binary: bool, loss: str) -> str:
    """The metric a comparison (on the test split) or a study (on the validation split) ranks
    runs by: ``requested``, or for ``auto`` F1 for a binary task trained on a soft F-loss,
    accuracy for other classification, R² for regression."""
    if requested == "auto":
        if task == "regression":
            return "r2"
        return "f1" if binary and loss in _F_LOSSES else "accuracy"
    allowed = RANKED[task] if binary or task == "regression" else ("accuracy", "macro_f1")
    if requested not in allowed:
        raise ConfigError(
            f"--metric {requested} does not apply to this {'binary ' if binary else ''}{task} "
            f"data; choose one of {', '.join(allowed)}."
        )
    return requested
