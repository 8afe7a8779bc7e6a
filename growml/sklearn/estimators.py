"""``GrowingMLPClassifier`` and ``GrowingMLPRegressor``: the task-specific parts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin

from growml.runs import Run
from growml.sklearn.base import GrowingMLPBase
from growml.sklearn.inputs import prediction_rows

_PARAMETERS_DOC = """
    Parameters
    ----------
    start : int or tuple of int, default=1
        Hidden widths the network starts from (``model.hidden_widths``): one layer of that
        width for an int, one layer per entry for a tuple. Growth adds neurons from there; with
        ``grow=False`` these are the fixed widths.
    grow : bool, default=True
        Grow the network (``growth.enabled``); False trains the fixed widths ``start``.
    method : {"pool", "tiny", "tiny-noproj", "gradmax", "random"}, default="pool"
        How new neurons are chosen (``growth.method``).
    max_params : int or None, default=None
        Parameter budget of the grown network (``growth.max_params``); None: no limit.
    activation : {"relu", "tanh", "gelu", "selu"}, default="relu"
        Hidden activation (``model.activation``).
    epochs : int, default=200
        Most epochs of training (``train.epochs``).
    lr : float, default=1e-3
        Learning rate (``train.lr``).
    batch_size : int, default=64
        Rows per step (``train.batch_size``).
    weight_decay : float, default=0.0
        L2 weight decay (``train.weight_decay``).
    early_stopping : bool, default=True
        Stop when the validation metric stalls and keep the best weights
        (``train.early_stopping``).
    patience : int, default=20
        Epochs without improvement before early stopping (``train.patience``).
    loss : str, default="auto"
        Training loss (``loss.name``): auto, cross-entropy, bce, mse, soft-f1, soft-fbeta,
        soft-accuracy, soft-auroc.
    prune : {"none", "synflow", "magnitude", "random"}, default="none"
        Pruning criterion (``prune.method``); needs ``compression`` or
        ``set={"prune.target_params": n}``.
    compression : float or None, default=None
        Prunable weights before / after pruning (``prune.compression``); 10 keeps a tenth.
    validation_fraction : float, default=0.2
        Fraction of the rows given to ``fit`` held out for validation (``data.validation_size``):
        early stopping, growth decisions and the binary threshold are chosen on them.
    random_state : int, RandomState instance or None, default=None
        Seed of the split, the initialisation, growth and training (growml's ``seed``). An int
        makes ``fit`` reproducible and equals ``growml fit --set seed=<int>``; None draws a new
        seed from numpy's global random state at every ``fit``.
    device : str, default="auto"
        Where to train and predict (growml's ``train.device``): ``auto`` takes a CUDA GPU
        when the machine has one, else the CPU; ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (fixed
        widths only: MPS has no float64 for growth statistics; predictions run on the CPU).
    run_dir : str, Path or None, default=None
        Where ``fit`` writes the run directory. None: a temporary directory, removed once the
        fitted state is loaded into the estimator (``save`` writes it again). A path: the run
        stays there after ``fit``; a run already at that path is replaced.
    set : dict or None, default=None
        Any other growml setting by its dotted path, as ``growml fit --set`` takes them, e.g.
        ``{"growth.max_new_neurons": 4, "train.optimizer": "adamw"}``. The settings of the
        parameters above are set through those, and the data settings the estimator owns
        (``data.source``, ``data.target``, ``data.task``, ``data.test_size``) not at all.
    verbose : int, default=0
        0: ``fit`` prints nothing. 1 or more: ``fit`` prints its progress to stderr as plain
        lines, one per epoch (training loss, validation metrics, widths), one per growth or
        pruning step, and one when training ends.
"""

_ATTRIBUTES_DOC = """
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit``, when ``X`` had string column names (a DataFrame or a
        pyarrow Table).
    hidden_widths_ : list of int
        Hidden widths of the fitted network, after growth, trimming and pruning.
    n_parameters_ : int
        Weights and biases of the fitted network.
    history_ : list of growml.events.Event
        The run's events (``history.jsonl``), typed: ``EpochEnd``, ``GrowthStep``,
        ``PruneStep``...
    n_iter_ : int
        Epochs trained: growth's training, then the fine-tuning after trimming or pruning.
    loss_curve_ : list of float
        Training loss at the end of every epoch.
    metrics_ : dict
        The run's ``metrics.json``: train and validation metrics, parameters, timings.
    run_ : growml.Run
        The fitted growml run: network, preprocessing, target encoding.
"""


class GrowingMLPClassifier(ClassifierMixin, GrowingMLPBase):
    __doc__ = (
        """A classifier whose hidden layers grow from ``start`` during ``fit``.

    ``fit`` runs ``growml fit`` on ``X`` and ``y``: labels are classes (at least two). The
    validation rows are stratified by class when every class has a row for each part, and drawn
    at random otherwise. Binary classifiers decide at the threshold ``threshold_`` (0.5 unless
    ``set={"threshold.metric": "f1"}`` or a soft-set loss chooses one on the validation rows).
"""
        + _PARAMETERS_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    threshold_ : float or None
        Decision threshold on the positive-class probability (binary tasks; None otherwise).
"""
        + _ATTRIBUTES_DOC
    )

    _task = "classification"

    def _learn(self, run: Run, run_files: dict[str, bytes]) -> None:
        super()._learn(run, run_files)
        self.classes_ = np.asarray(run.classes)
        self.threshold_ = run.threshold

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, rows × classes in ``classes_`` order."""
        rows = prediction_rows(self, X)
        return self.run_.predict_proba(rows).astype(np.float64)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithms of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """Scores whose sign (binary: positive for ``classes_[1]``, shape ``(n,)``) or largest
        entry (multiclass: the logits, rows × classes) gives ``predict``'s decision; the binary
        score is the logit less the threshold's logit, so 0 is the decision boundary."""
        outputs = self._outputs(X)
        if outputs.shape[1] > 1:
            return outputs
        threshold = 0.5 if self.threshold_ is None else self.threshold_
        return outputs[:, 0] - math.log(threshold / (1 - threshold))


class GrowingMLPRegressor(RegressorMixin, GrowingMLPBase):
    __doc__ = (
        """A regressor whose hidden layers grow from ``start`` during ``fit``.

    ``fit`` runs ``growml fit`` on ``X`` and ``y`` (one number per row; the network learns the
    standardised target and ``predict`` returns values in the target's units).
"""
        + _PARAMETERS_DOC
        + """
    Attributes
    ----------
"""
        + _ATTRIBUTES_DOC
    )

    _task = "regression"
