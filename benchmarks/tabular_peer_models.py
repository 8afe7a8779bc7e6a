"""The peers of ``tabular_peers.py``: how each is built, fitted, scored and sized.

Each peer is used as its documentation tells a user to: raw numeric features in, the
scikit-learn interface, default hyperparameters.

* RealMLP-TD and TabM-D (pytabkit's ``RealMLP_TD_*`` and ``TabM_D_*``): the tuned defaults of
  Holzmüller et al. (NeurIPS 2024) and Gorishniy et al. (ICLR 2025). They preprocess the
  features themselves and hold out their own validation rows for early stopping.
* LightGBM (``LGBMClassifier`` / ``LGBMRegressor``) at its defaults.
* scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` with one hidden layer of 256 and early
  stopping, behind a ``StandardScaler`` (and, for regression, a standardised target).

Size: the torch peers count the parameters of every ``torch.nn.Module`` their fitted estimator
holds; LightGBM counts its trees' nodes (leaves and splits), which is not the same unit; the
scikit-learn MLP counts its weights and biases.

The peers' packages (``pip install -e ".[bench]"``) are imported only when a peer is built, so
that this module and the tests that read it import without them.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

WEIGHTS = "weights"
TREE_NODES = "tree nodes"


@dataclass(frozen=True)
class PeerResult:
    """One peer fitted on one split: the test score in points (accuracy in %, 100·R²), its
    size in ``unit``, and the seconds ``fit`` took."""

    score: float
    size: int
    unit: str
    seconds: float


@dataclass(frozen=True)
class Peer:
    """A peer model: ``build(task, seed, threads)`` gives an unfitted estimator, ``size(fitted)``
    its size in ``unit``; ``package`` is the distribution whose version keys its cached
    results."""

    label: str
    package: str
    build: Callable[[str, int, int], Any]
    size: Callable[[Any], int]
    unit: str

    def version(self) -> str | None:
        """The installed version of the peer's package, or None when it is missing."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

    def run(
        self,
        task: str,
        seed: int,
        threads: int,
        x_fit: np.ndarray,
        y_fit: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
    ) -> PeerResult:
        """Fit on ``x_fit, y_fit`` and score on the test rows, with ``threads`` threads for torch,
        BLAS and OpenMP alike."""
        import torch
        from threadpoolctl import threadpool_limits

        estimator = self.build(task, seed, threads)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with threadpool_limits(limits=threads):
                started = time.perf_counter()
                estimator.fit(x_fit, y_fit)
                seconds = time.perf_counter() - started
                predicted = np.asarray(estimator.predict(x_test))
        finally:
            torch.set_num_threads(previous)
        return PeerResult(
            score_points(task, y_test, predicted), self.size(estimator), self.unit, seconds
        )


def score_points(task: str, y_true: np.ndarray, y_predicted: np.ndarray) -> float:
    """Test accuracy in % for classification, 100·R² for regression."""
    if task == "classification":
        return 100.0 * float(np.mean(y_true == y_predicted))
    from sklearn.metrics import r2_score

    return 100.0 * float(r2_score(y_true, y_predicted))


def torch_parameters(estimator: Any) -> int:
    """The parameters of every ``torch.nn.Module`` reachable from ``estimator``'s attributes
    (pytabkit keeps its fitted network a few objects deep), each tensor counted once."""
    import torch

    tensors: dict[int, int] = {}
    seen: set[int] = set()
    pending = [estimator]
    while pending:
        item = pending.pop()
        if id(item) in seen or isinstance(item, str | bytes | int | float | np.ndarray | type):
            continue
        seen.add(id(item))
        if isinstance(item, torch.nn.Module):
            tensors.update((id(p), p.numel()) for p in item.parameters())
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set):
            pending.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, torch.Tensor):
            pending.extend(vars(item).values())
    return sum(tensors.values())


def lightgbm_nodes(estimator: Any) -> int:
    """Leaves and splits of every tree (a tree of n leaves has n − 1 splits)."""
    trees = estimator.booster_.dump_model()["tree_info"]
    return sum(2 * tree["num_leaves"] - 1 for tree in trees)


def mlp_parameters(estimator: Any) -> int:
    """Weights and biases of scikit-learn's MLP, inside a pipeline and a target transform."""
    regressor = getattr(estimator, "regressor_", estimator)
    mlp = regressor[-1]
    return sum(w.size for w in mlp.coefs_) + sum(b.size for b in mlp.intercepts_)


def _realmlp(task: str, seed: int, threads: int) -> Any:
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor

    model = RealMLP_TD_Classifier if task == "classification" else RealMLP_TD_Regressor
    return model(device="cpu", random_state=seed, n_threads=threads, verbosity=0)


def _tabm(task: str, seed: int, threads: int) -> Any:
    from pytabkit import TabM_D_Classifier, TabM_D_Regressor

    model = TabM_D_Classifier if task == "classification" else TabM_D_Regressor
    return model(device="cpu", random_state=seed, n_threads=threads, verbosity=0)


def _lightgbm(task: str, seed: int, threads: int) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor

    model = LGBMClassifier if task == "classification" else LGBMRegressor
    return model(random_state=seed, n_jobs=threads, verbose=-1)


def _sklearn_mlp(task: str, seed: int, threads: int) -> Any:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    settings = {"hidden_layer_sizes": (256,), "early_stopping": True, "random_state": seed}
    if task == "classification":
        return make_pipeline(StandardScaler(), MLPClassifier(**settings))
    # A target of 25 … 346 (diabetes) is out of reach of a network started near zero.
    return TransformedTargetRegressor(
        make_pipeline(StandardScaler(), MLPRegressor(**settings)), transformer=StandardScaler()
    )


PEERS = {
    "realmlp-td": Peer("RealMLP-TD", "pytabkit", _realmlp, torch_parameters, WEIGHTS),
    "tabm-d": Peer("TabM-D", "pytabkit", _tabm, torch_parameters, WEIGHTS),
    "lightgbm": Peer("LightGBM", "lightgbm", _lightgbm, lightgbm_nodes, TREE_NODES),
    "sklearn-mlp": Peer("MLP-256", "scikit-learn", _sklearn_mlp, mlp_parameters, WEIGHTS),
}
