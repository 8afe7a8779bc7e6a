"""The decision threshold of a binary classifier, chosen on validation data.

For calibrated probabilities the F1-optimal threshold is F*/2 (Lipton et al. 2014), rarely ½:
sweep τ on the validation split, keep the best, store it with the model.
"""

from __future__ import annotations

import numpy as np

# Candidate thresholds: 0.01 … 0.99.
GRID = np.round(np.arange(1, 100) / 100, 2)


def threshold_curve(
    probability: np.ndarray, labels: np.ndarray, metric: str, beta: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(τ grid, metric at each τ)`` for positive-class ``probability`` against 0/1 labels."""
    from sklearn.metrics import accuracy_score, fbeta_score

    values = []
    for tau in GRID:
        predicted = (probability >= tau).astype(np.int64)
        if metric == "accuracy":
            values.append(accuracy_score(labels, predicted))
        else:
            weight = beta if metric == "fbeta" else 1.0
            values.append(fbeta_score(labels, predicted, beta=weight, zero_division=0))
    return GRID, np.asarray(values)


def choose_threshold(
    probability: np.ndarray,
    labels: np.ndarray,
    metric: str,
    beta: float = 1.0,
    bounds: tuple[float, float] = (0.01, 0.99),
) -> tuple[float, np.ndarray, np.ndarray]:
    """The τ within ``bounds`` that maximises ``metric`` (the middle of a tied plateau), with
    the curve it was chosen from."""
    grid, values = threshold_curve(probability, labels, metric, beta)
    allowed = (grid >= bounds[0] - 1e-9) & (grid <= bounds[1] + 1e-9)
    best = values[allowed].max()
    ties = grid[allowed][values[allowed] == best]
    return float(ties[len(ties) // 2]), grid, values
