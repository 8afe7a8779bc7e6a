"""Metrics of a trained network on a split, in the units users read (original target scale)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from growml.data import TargetEncoder
from growml.nn.mlp import GrowingMLP

# Larger monitored values are better for these; smaller for the rest (loss).
HIGHER_IS_BETTER = frozenset({"accuracy", "macro_f1", "r2"})


def probabilities(output: Tensor, n_outputs: int) -> Tensor:
    """Class probabilities (n, K) from logits: sigmoid for one logit, softmax otherwise."""
    if n_outputs == 1:
        positive = torch.sigmoid(output)
        return torch.cat([1 - positive, positive], 1)
    return torch.softmax(output, 1)


def decide(output: Tensor, threshold: float | None = None) -> Tensor:
    """Class indices from network outputs: the positive class when its probability is at least
    ``threshold`` (0.5 by default) for one logit, the largest logit otherwise. Training,
    metrics and prediction all decide through this one rule."""
    if output.shape[1] == 1:
        return (torch.sigmoid(output[:, 0]) >= (0.5 if threshold is None else threshold)).long()
    return output.argmax(1)


# Rows evaluated at once beyond which the network's outputs are computed in slices, so that
# the activations of millions of rows (a streamed file's) are never all held at once.
EVALUATION_SLICE = 1 << 20


def outputs(model: GrowingMLP, x: np.ndarray) -> torch.Tensor:
    """The network's outputs on rows ``x``: at once, or slice by slice beyond
    ``EVALUATION_SLICE`` rows."""
    if len(x) <= EVALUATION_SLICE:
        return model(torch.as_tensor(x))
    slices = [
        model(torch.as_tensor(x[start : start + EVALUATION_SLICE]))
        for start in range(0, len(x), EVALUATION_SLICE)
    ]
    return torch.cat(slices)


@torch.inference_mode()
def evaluate(
    model: GrowingMLP,
    x: np.ndarray,
    y: np.ndarray,
    encoder: TargetEncoder,
    threshold: float | None = None,
    sample_weight: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, macro-F1, log-loss (and F1 of the positive class when binary, at
    ``threshold``) for classification; RMSE, MAE and R² in the target's units for regression;
    each row counted by its ``sample_weight`` when given."""
    output = outputs(model, x)
    if encoder.task == "regression":
        predicted = encoder.decode(output.squeeze(1).numpy())
        return regression_metrics(encoder.decode(y), predicted, sample_weight)
    proba = probabilities(output.double(), encoder.n_outputs).numpy()
    return classification_metrics(y, decide(output, threshold).numpy(), proba, sample_weight)


def classification_metrics(
    y: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> dict[str, float]:
    """The metrics of class indices ``predicted`` (and probabilities ``proba``, rows × classes)
    against the true indices ``y``, each row counted by its ``sample_weight`` when given: the
    figures every classifier in growml is reported by."""
    # scikit-learn is imported here, not at module level: sklearn.metrics imports rich, which
    # `import growml` must not pull in.
    from sklearn import metrics as skm

    labels = list(range(proba.shape[1]))
    weights = {"sample_weight": sample_weight}
    result = {
        "accuracy": float(skm.accuracy_score(y, predicted, **weights)),
        "macro_f1": float(
            skm.f1_score(y, predicted, average="macro", labels=labels, zero_division=0, **weights)
        ),
        "log_loss": float(skm.log_loss(y, proba, labels=labels, **weights)),
    }
    if len(labels) == 2:
        result["f1"] = float(skm.f1_score(y, predicted, pos_label=1, zero_division=0, **weights))
    return result


def regression_metrics(
    actual: np.ndarray, predicted: np.ndarray, sample_weight: np.ndarray | None = None
) -> dict[str, float]:
    """RMSE, MAE and R² of ``predicted`` against ``actual`` (both in the target's units), each
    row counted by its ``sample_weight`` when given."""
    from sklearn import metrics as skm

    weights = {"sample_weight": sample_weight}
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(actual, predicted, **weights))),
        "mae": float(skm.mean_absolute_error(actual, predicted, **weights)),
        "r2": float(skm.r2_score(actual, predicted, **weights)),
    }
