"""Metrics of a trained network on a split, in the units users read (original target scale)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from growml.data import TargetEncoder
from growml.data.cache import release_pages
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
    if len(x) > EVALUATION_SLICE:
        return _evaluate_in_slices(model, x, y, encoder, threshold, sample_weight)
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


def _evaluate_in_slices(
    model: GrowingMLP,
    x: np.ndarray,
    y: np.ndarray,
    encoder: TargetEncoder,
    threshold: float | None,
    sample_weight: np.ndarray | None,
) -> dict[str, float]:
    """``evaluate`` on more than ``EVALUATION_SLICE`` rows (a streamed file's): the same
    metrics, equal up to the order of floating-point sums, from sums gathered slice by slice,
    so that no per-row array of the outputs, probabilities or scikit-learn's copies of them is
    ever whole (about 100 bytes a row at their peak)."""
    weights = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, float)
    if encoder.task == "regression":
        actual = encoder.decode(y)
        mean = np.average(actual, weights=weights)
        sums = np.zeros(3)  # weighted squared error, absolute error, squared deviation
    else:
        classes = max(encoder.n_outputs, 2)
        confusion = np.zeros((classes, classes))  # true class × decided class, weighted
        log_loss = 0.0
    for start in range(0, len(x), EVALUATION_SLICE):
        rows = slice(start, start + EVALUATION_SLICE)
        output = model(torch.as_tensor(x[rows]))
        release_pages(x)
        weight = weights[rows]
        if encoder.task == "regression":
            error = actual[rows] - encoder.decode(output.squeeze(1).numpy())
            deviation = actual[rows] - mean
            sums += [weight @ error**2, weight @ np.abs(error), weight @ deviation**2]
            continue
        truth = np.asarray(y[rows], dtype=np.int64)
        decided = decide(output, threshold).numpy()
        confusion += np.bincount(
            truth * classes + decided, weights=weight, minlength=classes * classes
        ).reshape(classes, classes)
        proba = probabilities(output.double(), encoder.n_outputs).numpy()
        # scikit-learn's log_loss clips the probabilities to [eps, 1 - eps].
        eps = np.finfo(proba.dtype).eps
        chosen = np.clip(proba[np.arange(len(truth)), truth], eps, 1 - eps)
        log_loss -= weight @ np.log(chosen)
    total = weights.sum()
    if encoder.task == "regression":
        squared, absolute, deviation = sums
        # scikit-learn's r2_score of a constant target: 1 for a perfect fit, else 0.
        constant = 1.0 if squared == 0 else 0.0
        r2 = constant if deviation == 0 else 1.0 - squared / deviation
        return {"rmse": float(np.sqrt(squared / total)), "mae": absolute / total, "r2": r2}
    return _confusion_metrics(confusion, log_loss / total)


def _confusion_metrics(confusion: np.ndarray, log_loss: float) -> dict[str, float]:
    """``classification_metrics`` from a weighted confusion matrix (true class × decided
    class) and the mean log-loss: F1 of a class is 2·TP / (2·TP + FP + FN), 0 where that is
    0/0 (scikit-learn's ``zero_division=0``)."""
    hits = np.diag(confusion)
    denominator = confusion.sum(0) + confusion.sum(1)
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    result = {
        "accuracy": float(hits.sum() / confusion.sum()),
        "macro_f1": float(f1.mean()),
        "log_loss": float(log_loss),
    }
    if len(hits) == 2:
        result["f1"] = float(f1[1])
    return result
