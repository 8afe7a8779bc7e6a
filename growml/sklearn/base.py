"""What both estimators share: settings, ``fit`` through ``growml.fit``, prediction, and the
run directory as the fitted state."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from growml import atomic
from growml.config import FitConfig
from growml.data import table_from_columns
from growml.errors import ExportError, GrowmlWarning, RunError
from growml.events import EpochEnd
from growml.fitting import fit as fit_run
from growml.runs import Run, load_run
from growml.runs.run import inference_outputs
from growml.runs.rundir import RunWriter
from growml.sklearn import files
from growml.sklearn.inputs import prediction_rows, training_columns
from growml.sklearn.progress import Progress
from growml.sklearn.settings import fit_config, parameters_of
from growml.sklearn.weights import weighted_rows
from growml.train.device import prediction_device

_TARGET = "target"


class GrowingMLPBase(BaseEstimator):
    """Settings, fitting, prediction and persistence; subclasses name their task."""

    _task: ClassVar[str]

    def __init__(
        self,
        start: int | Sequence[int] = 1,
        *,
        grow: bool = True,
        method: str = "pool",
        max_params: int | None = None,
        activation: str = "relu",
        epochs: int = 200,
        lr: float = 1e-3,
        batch_size: int = 64,
        weight_decay: float = 0.0,
        early_stopping: bool = True,
        patience: int = 20,
        loss: str = "auto",
        prune: str = "none",
        compression: float | None = None,
        validation_fraction: float = 0.2,
        random_state: int | np.random.RandomState | None = None,
        device: str = "auto",
        run_dir: str | Path | None = None,
        set: Mapping[str, Any] | None = None,  # noqa: A002 - the name of growml fit --set
        verbose: int = 0,
    ) -> None:
        self.start = start
        self.grow = grow
        self.method = method
        self.max_params = max_params
        self.activation = activation
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.patience = patience
        self.loss = loss
        self.prune = prune
        self.compression = compression
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.run_dir = run_dir
        self.set = set
        self.verbose = verbose

    # Fitting ---------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> GrowingMLPBase:
        """Grow and train the network on ``X`` and ``y``; returns the estimator.

        Parameters
        ----------
        X : array-like, pandas DataFrame or pyarrow Table of shape (n_samples, n_features)
            The training rows: numeric, categorical and text columns, missing values allowed.
        y : array-like of shape (n_samples,)
            One target per row.
        sample_weight : array-like of shape (n_samples,), default=None
            One non-negative weight per row; None: every row weighs 1. A row of weight w
            counts as the row repeated w times in the training loss (a weighted mean; for the
            soft-set losses, weighted soft counts), the growth statistics, the validation
            metrics behind early stopping and growth decisions, the binary threshold and
            the figures in ``metrics_``.
            Rows of weight 0 are left out before anything is fitted; weights that are all
            alike change nothing. The preprocessing (means, scales, kept categories) is fitted
            on the rows unweighted.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        config = self.fit_config()
        features, target = training_columns(self, X, y, self._task, config.data.infinite)
        features, target, weights = weighted_rows(sample_weight, features, target, self._task)
        table = table_from_columns(
            type(self).__name__, features, target, _TARGET, self._task, config.data.infinite
        )
        options = {
            "table": table,
            "checkpoints": False,
            "sample_weight": weights,
            "observers": [Progress()] if self.verbose else [],
        }
        if self.run_dir is not None:
            result = fit_run(config, out=self.run_dir, overwrite=True, **options)
            self._learn(result.run, files.read_run_files(result.path))
            self._write_record(result.path)
            return self
        with tempfile.TemporaryDirectory(prefix="growml-") as scratch:
            result = fit_run(config, out=Path(scratch) / "run", **options)
            self._learn(result.run, files.read_run_files(result.path))
        result.run.path = None
        return self

    def fit_config(self) -> FitConfig:
        """The growml settings ``fit`` trains with (a seed is drawn now when ``random_state``
        is not an int)."""
        return fit_config(self.get_params(), self._task)

    def _learn(self, run: Run, run_files: dict[str, bytes]) -> None:
        """Take the fitted state from ``run`` and its directory's files (kept for ``save``)."""
        self.run_ = run
        self._run_files = run_files
        self.history_ = run.history()
        self.metrics_ = run.metrics
        self.hidden_widths_ = list(run.model.hidden_widths)
        self.n_parameters_ = run.model.n_parameters()
        metrics = run.metrics_record
        self.n_iter_ = metrics.epochs if metrics is not None else 0
        self.loss_curve_ = [e.train_loss for e in self.history_ if isinstance(e, EpochEnd)]

    # Prediction ------------------------------------------------------------------------------

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (classifier) or values (regressor), one per row of ``X``."""
        rows = prediction_rows(self, X)
        return self.run_.predict(rows)

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's raw outputs (logits, or the standardised value) for rows ``X``."""
        rows = prediction_rows(self, X)
        x = self.run_.preprocessor.transform(rows)
        return inference_outputs(self.run_.model, x, prediction_device(self.device)).numpy()

    # Persistence -----------------------------------------------------------------------------

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fitted estimator as a growml run directory at ``path``; returns it.

        The directory is the one ``fit`` wrote (config.yaml, model.safetensors, model.json,
        preprocess.json, metrics.json, history.jsonl, plots/) plus ``estimator.json``;
        ``growml predict``, ``growml report`` and ``growml.load_run`` read it as any run.
        Export it with ``to_onnx``: ``growml export`` verifies on the run's test split, and an
        estimator's run has none. ``overwrite`` replaces a run already at ``path``.
        """
        check_is_fitted(self)
        with RunWriter(Path(path), overwrite=overwrite) as writer:
            for name, content in self._run_files.items():
                atomic.write_bytes(writer.path / name, content)
            self._write_record(writer.path)
        return writer.out

    @classmethod
    def load(cls, path: str | Path) -> GrowingMLPBase:
        """The estimator saved at ``path`` by ``save`` (or any ``growml fit`` run of this
        estimator's task); nothing in the directory is executed."""
        path = Path(path)
        run = load_run(path)
        if run.task != cls._task:
            kind = "classifier" if run.task == "classification" else "regressor"
            raise RunError(f"{str(path)!r} holds a {run.task} run; load it with the {kind}.")
        estimator = cls(**parameters_of(run.config, cls(random_state=0).fit_config()))
        record = files.read_estimator_record(path)
        names = record.get("feature_names_in", run.preprocessor.feature_names)
        estimator.n_features_in_ = record.get("n_features_in", len(run.preprocessor.columns))
        if names is not None:
            estimator.feature_names_in_ = np.asarray(names, dtype=object)
        estimator._learn(run, files.read_run_files(path))
        return estimator

    def _write_record(self, directory: Path) -> None:
        record = files.estimator_record(
            self.n_features_in_, getattr(self, "feature_names_in_", None)
        )
        atomic.write_json(directory / files.ESTIMATOR_FILE, record)

    def __getstate__(self) -> dict[str, Any]:
        # The run's files stand for the run: the network object does not pickle (its
        # activation is a function), and the files are what ``save`` and ``load`` exchange.
        state = {**super().__getstate__()}  # a copy: object.__getstate__ gives __dict__ itself
        state.pop("run_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "_run_files" in state:
            self.run_ = files.run_from_files(self._run_files)

    def to_onnx(self, path: str | Path, X: Any = None) -> Path:
        """Export the fitted network, its preprocessing inside, as one ONNX file at ``path``,
        verified with onnxruntime as ``growml export`` verifies a run; returns the path.

        ``X``: rows to verify on; by default rows drawn from the fitted preprocessing (numbers
        around each column's training centre, every known category, missing values), since the
        estimator keeps no training rows. Raises ``ExportError`` and writes nothing when the
        ONNX model disagrees with the estimator.
        """
        import onnx

        from growml.export.exporter import build_run_model
        from growml.export.runtime import OnnxModel
        from growml.export.verify import compare

        check_is_fitted(self)
        rows = files.verification_rows(self.run_) if X is None else prediction_rows(self, X)
        model = build_run_model(self.run_)
        onnx.checker.check_model(model, full_check=True)
        content = model.SerializeToString()
        with warnings.catch_warnings():
            # The drawn rows hold an unseen category on purpose; it is not the user's data.
            if X is None:
                warnings.simplefilter("ignore", GrowmlWarning)
            parity = compare(OnnxModel(content, str(path)), self.run_, rows)
        if not parity.agrees:
            raise ExportError(
                f"the ONNX model disagrees with the estimator on {parity.rows} rows (largest "
                f"difference {parity.max_difference:.3g}, allowed {parity.tolerance:.0e}; "
                f"{parity.label_mismatches} labels differ), so nothing was written."
            )
        atomic.write_bytes(Path(path), content)
        return Path(path)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Missing values are imputed (with an indicator column), categories one-hot encoded.
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.target_tags.required = True
        return tags
