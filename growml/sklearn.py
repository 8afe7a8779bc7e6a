"""scikit-learn estimators over growml's own fitting code: ``GrowingMLPClassifier`` and
``GrowingMLPRegressor``.

They follow scikit-learn's estimator rules (https://scikit-learn.org/stable/developers/
develop.html) the way skorch does for torch modules: the constructor stores settings, ``fit``
builds a ``FitConfig`` from them and calls ``growml.fit`` on the data in memory, so an estimator
trains exactly as ``growml fit`` does. scikit-learn is imported here only.

The data handed to ``fit`` is the training data: growml splits it into training and validation
rows (``validation_fraction``, stratified for classifiers) for early stopping, growth decisions
and the binary threshold, and holds out no test part (``data.test_size`` is 0); scoring is left
to scikit-learn's own tools (``cross_val_score``, a held-out set).

The safe format for a fitted estimator is its run directory (``save``, ``load``): safetensors
and JSON, which load without executing code. Pickling works, as scikit-learn users expect, but
unpickling runs whatever code the file names; load pickles only from sources you trust.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from growml import atomic
from growml.config import FitConfig, resolve_config
from growml.data import table_from_columns
from growml.data.table import MIN_ROWS
from growml.errors import ConfigError, RunError
from growml.fitting import fit as fit_run
from growml.runs import Run, load_run
from growml.runs.rundir import RunWriter

# The estimator's own record in its run directory: how its input looked (column names or an
# array, how many columns), which ``load`` needs and model.json does not hold.
ESTIMATOR_FILE = "estimator.json"
_TARGET = "target"
# Constructor parameters and the growml setting each one is; ``start`` and ``random_state``
# are converted on the way (an int width is a one-layer list; a random state becomes a seed).
_SETTINGS = {
    "start": "model.hidden_widths",
    "grow": "growth.enabled",
    "method": "growth.method",
    "max_params": "growth.max_params",
    "activation": "model.activation",
    "epochs": "train.epochs",
    "lr": "train.lr",
    "batch_size": "train.batch_size",
    "weight_decay": "train.weight_decay",
    "early_stopping": "train.early_stopping",
    "patience": "train.patience",
    "loss": "loss.name",
    "prune": "prune.method",
    "compression": "prune.compression",
    "validation_fraction": "data.validation_size",
    "random_state": "seed",
}
# Settings the estimator decides itself: its data comes from ``fit``, all of it for training.
_OWNED = ("data.source", "data.target", "data.task", "data.test_size")

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
    run_dir : str, Path or None, default=None
        Where ``fit`` writes the run directory. None: a temporary directory, removed once the
        fitted state is loaded into the estimator (``save`` writes it again). A path: the run
        stays there after ``fit``; a run already at that path is replaced.
    set : dict or None, default=None
        Any other growml setting by its dotted path, as ``growml fit --set`` takes them, e.g.
        ``{"growth.max_new_neurons": 4, "train.optimizer": "adamw"}``. The settings of the
        parameters above are set through those, and the data settings the estimator owns
        (``data.source``, ``data.target``, ``data.task``, ``data.test_size``) not at all.
"""

_ATTRIBUTES_DOC = """
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit``, when ``X`` had string column names (a DataFrame or a
        pyarrow Table).
    hidden_widths_ : list of int
        Hidden widths of the fitted network, after growth and pruning.
    n_parameters_ : int
        Weights and biases of the fitted network.
    history_ : list of dict
        The run's events (``history.jsonl``): epochs, growth steps, pruning.
    n_iter_ : int
        Epochs trained.
    loss_curve_ : list of float
        Training loss at the end of every epoch.
    metrics_ : dict
        The run's ``metrics.json``: train and validation metrics, parameters, timings.
    run_ : growml.Run
        The fitted growml run: network, preprocessing, target encoding.
"""


class _GrowingMLP(BaseEstimator):
    """The fitting, prediction and persistence both estimators share."""

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
        run_dir: str | Path | None = None,
        set: Mapping[str, Any] | None = None,  # noqa: A002 - the name of growml fit --set
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
        self.run_dir = run_dir
        self.set = set

    # Fitting ---------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> _GrowingMLP:
        """Grow and train the network on ``X`` and ``y``.

        ``X``: a 2-D array, a pandas DataFrame (numeric and categorical or text columns, missing
        values allowed) or a pyarrow Table; ``y``: one target per row. Returns the estimator.
        """
        config = self.fit_config()
        features, target = self._training_columns(X, y)
        table = table_from_columns(type(self).__name__, features, target, _TARGET, self._task)
        if self.run_dir is not None:
            result = fit_run(config, out=self.run_dir, overwrite=True, table=table)
            self._learn(result.run, _read_run_files(result.path))
            self._write_estimator_file(result.path)
            return self
        with tempfile.TemporaryDirectory(prefix="growml-") as scratch:
            result = fit_run(config, out=Path(scratch) / "run", table=table)
            self._learn(result.run, _read_run_files(result.path))
        result.run.path = None
        return self

    def fit_config(self) -> FitConfig:
        """The growml settings ``fit`` trains with (the seed drawn now when ``random_state``
        is not an int)."""
        extra = dict(self.set or {})
        for path in extra:
            if path in _OWNED:
                raise ConfigError(
                    f"setting {path!r} is decided by the estimator (its data comes from fit); "
                    "leave it out of set."
                )
            named = next((name for name, dotted in _SETTINGS.items() if dotted == path), None)
            if named is not None:
                raise ConfigError(
                    f"setting {path!r} is the estimator's {named!r} parameter; set it there "
                    "instead of in set."
                )
        values = {name: getattr(self, name) for name in _SETTINGS}
        values["start"] = [self.start] if np.ndim(self.start) == 0 else list(self.start)
        values["random_state"] = _seed(self.random_state)
        overrides = [(_SETTINGS[name], value) for name, value in values.items()]
        # Folds of cross-validation can leave a class too few rows to stratify the validation
        # split; those are split at random rather than refused (set data.stratify to refuse).
        overrides += [
            ("data.task", self._task),
            ("data.test_size", 0.0),
            ("data.stratify", "when-possible"),
            *extra.items(),
        ]
        return resolve_config(overrides=overrides)

    def _training_columns(self, X: Any, y: Any) -> tuple[pa.Table, pa.ChunkedArray]:
        arrow = isinstance(X, pa.Table)
        if arrow:
            # validate_data without X forgets feature names, so the table's come after it.
            y = validate_data(self, y=y, **self._target_checks())
            self._check_arrow(X, reset=True)
        else:
            checked, y = validate_data(
                self, X, y, reset=True, **self._input_checks(), **self._target_checks()
            )
        if len(y) != (X.num_rows if arrow else len(checked)):
            raise ValueError(f"X has {_rows(X)} rows but y has {len(y)}; give one target per row.")
        self._check_target(y)
        features = X if arrow else self._as_table(X, checked)
        try:
            target = pa.chunked_array([pa.array(y)])
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            raise ValueError(
                "y mixes values of different types; give labels of one type."
            ) from None
        return features, target

    def _input_checks(self) -> dict[str, Any]:
        # Categorical and text columns pass through (dtype=None); missing values are imputed.
        return {
            "dtype": None,
            "ensure_all_finite": "allow-nan",
            "ensure_min_samples": MIN_ROWS,
            "accept_sparse": False,
        }

    def _target_checks(self) -> dict[str, Any]:
        return {"y_numeric": self._task == "regression"}

    def _check_target(self, y: np.ndarray) -> None:
        """Target checks beyond scikit-learn's own (the classifier's labels)."""

    def _check_arrow(self, X: pa.Table, reset: bool) -> None:
        """``n_features_in_`` and ``feature_names_in_`` of a pyarrow Table, as ``validate_data``
        keeps them for arrays and DataFrames."""
        if reset:
            if X.num_rows < MIN_ROWS:
                raise ValueError(
                    f"Found a table with {X.num_rows} sample(s) while a minimum of {MIN_ROWS} "
                    "is required."
                )
            self.n_features_in_ = X.num_columns
            self.feature_names_in_ = np.asarray(X.column_names, dtype=object)
            return
        check_is_fitted(self)
        expected = list(getattr(self, "feature_names_in_", []))
        missing = [name for name in expected if name not in X.column_names]
        if missing:
            raise ValueError(f"the table lacks the column(s) {missing} seen in fit.")

    def _as_table(self, X: Any, checked: np.ndarray) -> pa.Table:
        """``X`` as columns named as in ``fit``: DataFrames keep their column types, arrays
        become columns ``x0``, ``x1``, ... (the names a saved run and its ONNX model use)."""
        names = self._column_names()
        pandas = _pandas()
        if pandas is not None and isinstance(X, pandas.DataFrame):
            try:
                table = pa.Table.from_pandas(X, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
                raise ValueError(f"X cannot be read as columns: {error}") from None
            return table.rename_columns(names)
        columns = [checked[:, j] for j in range(checked.shape[1])]
        if checked.dtype == object:
            return pa.table(
                [_object_column(column, name) for column, name in zip(columns, names, strict=True)],
                names=names,
            )
        return pa.table(columns, names=names)

    def _column_names(self) -> list[str]:
        if hasattr(self, "feature_names_in_"):
            return [str(name) for name in self.feature_names_in_]
        return [f"x{j}" for j in range(self.n_features_in_)]

    def _learn(self, run: Run, files: dict[str, bytes]) -> None:
        """Take the fitted state from ``run`` (and its directory's ``files``, for ``save``)."""
        self.run_ = run
        self._run_files = files
        self.history_ = [json.loads(line) for line in files["history.jsonl"].splitlines() if line]
        self.metrics_ = run.metrics
        self.hidden_widths_ = list(run.model.hidden_widths)
        self.n_parameters_ = run.model.n_parameters()
        self.n_iter_ = int(run.metrics.get("epochs", 0))
        self.loss_curve_ = [e["train_loss"] for e in self.history_ if e["event"] == "epoch"]

    # Prediction ------------------------------------------------------------------------------

    def _rows(self, X: Any) -> pa.Table:
        """``X`` checked against what ``fit`` saw, as the columns the run reads."""
        check_is_fitted(self)
        if isinstance(X, pa.Table):
            self._check_arrow(X, reset=False)
            return X
        checked = validate_data(
            self, X, reset=False, **{**self._input_checks(), "ensure_min_samples": 1}
        )
        return self._as_table(X, checked)

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's raw outputs (logits, or the standardised value) for rows ``X``."""
        rows = self._rows(X)
        run = self.run_
        x = torch.as_tensor(run.preprocessor.transform(rows))
        with torch.inference_mode():
            return run.model.eval()(x).double().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (classifier) or values (regressor), one per row of ``X``."""
        rows = self._rows(X)
        return self.run_.predict(rows)

    # Persistence -----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # The run's files stand for the run: the network object itself does not pickle (its
        # activation is a function), and its files are what ``save`` and ``load`` exchange.
        state = {**super().__getstate__()}  # a copy: object.__getstate__ gives __dict__ itself
        state.pop("run_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "_run_files" in state:
            self.run_ = _run_from_files(self._run_files)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fitted estimator as a growml run directory at ``path``.

        The directory is the one ``fit`` wrote (config.yaml, model.safetensors, model.json,
        preprocess.json, metrics.json, history.jsonl, plots) plus ``estimator.json``; ``growml
        export``, ``growml predict`` and ``growml.load_run`` read it as any run. ``overwrite``
        replaces a run already at ``path``. Returns the path.
        """
        check_is_fitted(self)
        with RunWriter(Path(path), overwrite=overwrite) as writer:
            for name, content in self._run_files.items():
                atomic.write_bytes(writer.path / name, content)
            self._write_estimator_file(writer.path)
        return writer.out

    @classmethod
    def load(cls, path: str | Path) -> _GrowingMLP:
        """The estimator saved at ``path`` (by ``save``, or any ``growml fit`` run of this
        estimator's task); nothing in the directory is executed."""
        run = load_run(path)
        if run.task != cls._task:
            raise RunError(
                f"{str(path)!r} holds a {run.task} run; load it with the "
                f"{'classifier' if run.task == 'classification' else 'regressor'}."
            )
        estimator = cls(**_parameters(run.config, cls(random_state=0).fit_config()))
        record = _read_estimator_file(Path(path))
        names = run.preprocessor.feature_names
        estimator.n_features_in_ = record.get("n_features_in", len(names))
        if record.get("feature_names_in", names) is not None:
            estimator.feature_names_in_ = np.asarray(
                record.get("feature_names_in", names), dtype=object
            )
        estimator._learn(run, _read_run_files(Path(path)))
        return estimator

    def _write_estimator_file(self, directory: Path) -> None:
        names = getattr(self, "feature_names_in_", None)
        atomic.write_json(
            directory / ESTIMATOR_FILE,
            {
                "estimator": type(self).__name__,
                "n_features_in": int(self.n_features_in_),
                "feature_names_in": None if names is None else [str(n) for n in names],
            },
        )

    def to_onnx(self, path: str | Path, X: Any = None) -> Path:
        """Export the fitted network, its preprocessing inside, to one ONNX file at ``path``,
        verified with onnxruntime as ``growml export`` verifies a run.

        ``X``: rows to verify on; by default rows drawn from the fitted preprocessing (numbers
        around each column's training mean, every known category, missing values), since the
        estimator keeps no training rows. Raises ``ExportError`` and writes nothing when the
        ONNX model disagrees with the estimator. Returns the path.
        """
        import onnx

        from growml.errors import ExportError
        from growml.export.exporter import build_run_model
        from growml.export.runtime import OnnxModel
        from growml.export.verify import compare

        check_is_fitted(self)
        rows = self._rows(X) if X is not None else _verification_rows(self.run_)
        model = build_run_model(self.run_)
        onnx.checker.check_model(model, full_check=True)
        content = model.SerializeToString()
        parity = compare(OnnxModel(content, str(path)), self.run_, rows)
        if not parity.agrees:
            raise ExportError(
                f"the ONNX model disagrees with the estimator on {parity.rows} rows (largest "
                f"difference {parity.max_difference:.3g}, allowed {parity.tolerance:.0e}; "
                f"{parity.label_mismatches} labels differ), so nothing was written."
            )
        atomic.write_bytes(Path(path), content)
        return Path(path)

    # scikit-learn conventions ----------------------------------------------------------------

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Missing values are imputed (with an indicator column), categories one-hot encoded.
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.target_tags.required = True
        return tags


class GrowingMLPClassifier(ClassifierMixin, _GrowingMLP):
    __doc__ = (
        """A classifier whose hidden layers grow from ``start`` during ``fit``.

    ``fit`` runs ``growml fit`` on ``X`` and ``y``: labels are classes (at least two, each with
    at least two rows for the stratified validation split); binary classifiers decide at the
    threshold ``threshold_`` (0.5 unless ``set={"threshold.metric": "f1"}`` or a soft-set
    loss chooses one on the validation rows).
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

    def _target_checks(self) -> dict[str, Any]:
        return {"y_numeric": False}

    def _check_target(self, y: np.ndarray) -> None:
        check_classification_targets(y)
        if np.unique(y).size < 2:
            raise ValueError("y has a single class; a classifier needs at least two classes.")

    def _learn(self, run: Run, files: dict[str, bytes]) -> None:
        super()._learn(run, files)
        self.classes_ = np.asarray(run.classes)
        self.threshold_ = run.threshold

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, rows × classes in ``classes_`` order."""
        rows = self._rows(X)
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


class GrowingMLPRegressor(RegressorMixin, _GrowingMLP):
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


def _seed(random_state: int | np.random.RandomState | None) -> int:
    if isinstance(random_state, int | np.integer) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31))


def _parameters(config: Mapping[str, Any], default: FitConfig) -> dict[str, Any]:
    """Constructor parameters of a run's saved settings: the named ones, and in ``set``
    every other setting that differs from the estimator's ``default`` settings."""
    defaults = default.model_dump(mode="json")
    values, extra = {}, {}
    for path in _flat(config):
        if path in _OWNED:
            continue
        value, default = _dotted(config, path), _dotted(defaults, path)
        named = next((name for name, dotted in _SETTINGS.items() if dotted == path), None)
        if named is not None:
            values[named] = value
        elif value != default:
            extra[path] = value
    start = values.get("start", [1])
    values["start"] = start[0] if len(start) == 1 else tuple(start)
    return {**values, "set": extra or None}


def _flat(settings: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in settings.items():
        if isinstance(value, Mapping):
            paths.extend(_flat(value, f"{prefix}{key}."))
        else:
            paths.append(f"{prefix}{key}")
    return paths


def _dotted(settings: Mapping[str, Any], path: str) -> Any:
    node: Any = settings
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _read_run_files(path: Path) -> dict[str, bytes]:
    """Every file of a run directory by its relative path (the model.onnx of an export and the
    estimator's own record left out: ``save`` writes the latter afresh)."""
    return {
        str(file.relative_to(path)): file.read_bytes()
        for file in sorted(path.rglob("*"))
        if file.is_file() and file.name not in ("model.onnx", ESTIMATOR_FILE)
    }


def _run_from_files(files: Mapping[str, bytes]) -> Run:
    """The run that ``files`` (``_read_run_files``) make up, loaded as from its directory."""
    with tempfile.TemporaryDirectory(prefix="growml-") as scratch:
        for name, content in files.items():
            (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / name).write_bytes(content)
        run = load_run(scratch)
    run.path = None
    return run


def _read_estimator_file(path: Path) -> dict[str, Any]:
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


def _verification_rows(run: Run, n_rows: int = 256, seed: int = 0) -> pa.Table:
    """Rows that exercise every part of the preprocessing: numbers spread around each
    column's training mean (and beyond), every kept category, an unseen one, missing values."""
    from growml.data.preprocess import NumericColumn

    rng = np.random.default_rng(seed)
    columns = {}
    for column in run.preprocessor.columns:
        if isinstance(column, NumericColumn):
            if column.boolean:
                values: list[Any] = list(rng.integers(0, 2, n_rows).astype(bool))
            else:
                values = list(column.mean + 3 * column.std * rng.standard_normal(n_rows))
        else:
            choices = [*column.categories, "<unseen>"]
            values = [choices[i] for i in rng.integers(0, len(choices), n_rows)]
        missing = rng.random(n_rows) < 0.05
        columns[column.name] = pa.array(
            [None if m else v for v, m in zip(values, missing, strict=True)]
        )
    return pa.table(columns)


def _object_column(values: np.ndarray, name: str) -> pa.Array:
    try:
        return pa.array(values.tolist(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        raise ValueError(
            f"column {name!r} of X mixes values of different types; give numbers or text."
        ) from None


def _rows(X: Any) -> int:
    return X.num_rows if isinstance(X, pa.Table) else len(X)


def _pandas() -> Any:
    import sys

    return sys.modules.get("pandas")
