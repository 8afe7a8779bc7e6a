"""The built-in datasets: scikit-learn's bundled sets, MNIST-1D and synthetic sets.

Nothing here downloads. Every dataset comes out the same on every machine: the generators use
fixed seeds that do not depend on the run's seed, so a run's seed only changes the split and the
training. MNIST-1D is generated once and cached as ``.npz`` under the user cache directory.
"""

from __future__ import annotations

import contextlib
import os
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from growml.atomic import write_arrays

TARGET_NAME = "target"

# The synthetic generators' seed: part of each dataset's definition, not of a run.
_GENERATOR_SEED = 0

# Bump when the cached arrays would change (another generator, other arguments).
_MNIST1D_CACHE_FILE = "mnist1d-v1.npz"
_MNIST1D_ROWS = 5000
_MNIST1D_LENGTH = 40
# Cells per side of the checkerboard dataset.
_CHECKERBOARD_CELLS = 8


@dataclass(frozen=True)
class DatasetInfo:
    """What ``growml datasets`` shows about one built-in dataset.

    ``class_balance`` maps each label (as text) to its fraction of the rows for classification
    sets, and is None for regression sets.
    """

    name: str
    rows: int
    features: int
    task: str
    description: str
    class_balance: dict[str, float] | None


_Loader = Callable[[], tuple[pa.Table, pa.ChunkedArray]]


@dataclass(frozen=True)
class _Builtin:
    load: _Loader
    task: str
    description: str
    # (rows, features) and each label's rows, recorded so that listing the datasets loads none
    # (tests/test_data.py checks them against the data itself).
    shape: tuple[int, int] = (0, 0)
    class_counts: dict[str, int] | None = None
    # Each row's values as a signal (channels, length) or an image (channels, height, width),
    # for model.arch=conv; None: a table of unrelated columns.
    signal_shape: tuple[int, ...] | None = None


def _from_arrays(
    x: np.ndarray, y: np.ndarray | list, feature_names: list[str] | None = None
) -> tuple[pa.Table, pa.ChunkedArray]:
    names = feature_names or [f"x{i}" for i in range(x.shape[1])]
    features = pa.table({name: x[:, i] for i, name in enumerate(names)})
    return features, pa.chunked_array([pa.array(y)])


def _sklearn_bundled(loader_name: str, class_names: bool) -> _Loader:
    def load() -> tuple[pa.Table, pa.ChunkedArray]:
        # scikit-learn takes most of a second to import; `import growml.data` must stay fast.
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        labels = bunch.target_names[bunch.target].tolist() if class_names else bunch.target
        return _from_arrays(bunch.data, labels, [str(name) for name in bunch.feature_names])

    return load


def _moons() -> tuple[pa.Table, pa.ChunkedArray]:
    from sklearn.datasets import make_moons

    return _from_arrays(*make_moons(n_samples=1000, noise=0.25, random_state=_GENERATOR_SEED))


def _circles() -> tuple[pa.Table, pa.ChunkedArray]:
    from sklearn.datasets import make_circles

    return _from_arrays(
        *make_circles(n_samples=1000, noise=0.1, factor=0.5, random_state=_GENERATOR_SEED)
    )


def _imbalanced() -> tuple[pa.Table, pa.ChunkedArray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=2000,
        n_features=20,
        n_informative=6,
        weights=[0.95],
        flip_y=0,
        class_sep=1.0,
        random_state=_GENERATOR_SEED,
    )
    return _from_arrays(x, y)


def _friedman() -> tuple[pa.Table, pa.ChunkedArray]:
    from sklearn.datasets import make_friedman1

    return _from_arrays(
        *make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=_GENERATOR_SEED)
    )


def _spirals() -> tuple[pa.Table, pa.ChunkedArray]:
    # Two arms of two turns each, mirror images of each other, with Gaussian noise.
    rng = np.random.default_rng(_GENERATOR_SEED)
    n = 1000
    arm = np.arange(n) % 2
    turn = np.sqrt(rng.uniform(0.02, 1.0, n)) * 4 * np.pi
    radius = turn / (4 * np.pi)
    angle = turn + np.pi * arm
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
    return _from_arrays(x + rng.normal(scale=0.03, size=x.shape), arm)


def _xor() -> tuple[pa.Table, pa.ChunkedArray]:
    # The parity of 6 ±1 bits (jittered), beside 4 columns of pure noise.
    rng = np.random.default_rng(_GENERATOR_SEED)
    n = 2000
    bits = rng.integers(0, 2, size=(n, 6))
    signal = 2.0 * bits - 1 + rng.normal(scale=0.1, size=bits.shape)
    x = np.concatenate([signal, rng.normal(size=(n, 4))], 1)
    names = [f"bit{i}" for i in range(6)] + [f"noise{i}" for i in range(4)]
    return _from_arrays(x, bits.sum(1) % 2, names)


def _sine() -> tuple[pa.Table, pa.ChunkedArray]:
    # Three periods of a sine over [−π, π], noise sd 0.1.
    rng = np.random.default_rng(_GENERATOR_SEED)
    x = rng.uniform(-np.pi, np.pi, size=(1000, 1))
    return _from_arrays(x, np.sin(3 * x[:, 0]) + rng.normal(scale=0.1, size=1000))


def _many_features() -> tuple[pa.Table, pa.ChunkedArray]:
    # 12 informative columns (two clusters per class at corners of a 12-D hypercube, so some
    # columns matter only jointly) beside 88 of pure noise; 3 % of the labels flipped at random.
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=3000,
        n_features=100,
        n_informative=12,
        n_redundant=0,
        n_repeated=0,
        n_clusters_per_class=2,
        flip_y=0.03,
        class_sep=1.0,
        shuffle=False,
        random_state=_GENERATOR_SEED,
    )
    # Unshuffled, the informative columns come first (named so) and the rows by class.
    rows = np.random.default_rng(_GENERATOR_SEED).permutation(len(y))
    names = [f"informative{i}" for i in range(12)] + [f"noise{i}" for i in range(88)]
    return _from_arrays(x[rows], y[rows], names)


def _clusters() -> tuple[pa.Table, pa.ChunkedArray]:
    # Each class is 3 Gaussian clusters at corners of a 10-D hypercube: no class is one blob.
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=3000,
        n_features=20,
        n_informative=10,
        n_redundant=0,
        n_classes=4,
        n_clusters_per_class=3,
        flip_y=0.01,
        class_sep=1.5,
        random_state=_GENERATOR_SEED,
    )
    return _from_arrays(x, y)


def _checkerboard() -> tuple[pa.Table, pa.ChunkedArray]:
    # The colour of the cell of an 8 x 8 board over the unit square: 32 alternating regions
    # that a few ReLUs cannot carve, and axis-aligned splits can.
    rng = np.random.default_rng(_GENERATOR_SEED)
    x = rng.uniform(size=(4000, 2))
    cells = np.floor(x * _CHECKERBOARD_CELLS).astype(np.int64)
    return _from_arrays(x, cells.sum(1) % 2)


def cache_dir() -> Path:
    """Where growml caches generated data: ``$GROWML_CACHE``, else ``$XDG_CACHE_HOME/growml``,
    else ``~/.cache/growml``."""
    if os.environ.get("GROWML_CACHE"):
        return Path(os.environ["GROWML_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "growml"
    return Path.home() / ".cache" / "growml"


def _read_mnist1d_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x, y = arrays["x"], arrays["y"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        # Missing, truncated or foreign: generating again is cheap and always right.
        return None
    if x.shape != (_MNIST1D_ROWS, _MNIST1D_LENGTH) or y.shape != (_MNIST1D_ROWS,):
        return None
    if x.dtype.kind != "f" or y.dtype.kind not in "iu":
        return None
    return x, y


def _generate_mnist1d() -> tuple[np.ndarray, np.ndarray]:
    # Imported here: mnist1d pulls in matplotlib and requests. `get_dataset` would download.
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset seeds Python's and NumPy's global generators; restore them so that loading
    # data never changes what a seeded run draws afterwards.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        parts = make_dataset(get_dataset_args())
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    x = np.concatenate([parts["x"], parts["x_test"]])
    y = np.concatenate([parts["y"], parts["y_test"]]).astype(np.int64)
    return x, y


def _mnist1d() -> tuple[pa.Table, pa.ChunkedArray]:
    path = cache_dir() / _MNIST1D_CACHE_FILE
    cached = _read_mnist1d_cache(path)
    if cached is None:
        cached = _generate_mnist1d()
        # A read-only or full cache only costs a second next time; the data is still right.
        with contextlib.suppress(OSError):
            write_arrays(path, x=cached[0], y=cached[1])
    return _from_arrays(*cached)


_REGISTRY: dict[str, _Builtin] = {
    "digits": _Builtin(
        _sklearn_bundled("load_digits", class_names=False),
        "classification",
        "8x8 images of handwritten digits 0-9 (scikit-learn).",
        shape=(1797, 64),
        signal_shape=(1, 8, 8),
        class_counts={
            "0": 178,
            "1": 182,
            "2": 177,
            "3": 183,
            "4": 181,
            "5": 182,
            "6": 181,
            "7": 179,
            "8": 174,
            "9": 180,
        },
    ),
    "breast-cancer": _Builtin(
        _sklearn_bundled("load_breast_cancer", class_names=True),
        "classification",
        "Wisconsin breast cancer: malignant or benign from 30 cell measurements (scikit-learn).",
        shape=(569, 30),
        class_counts={"benign": 357, "malignant": 212},
    ),
    "wine": _Builtin(
        _sklearn_bundled("load_wine", class_names=True),
        "classification",
        "Three wine cultivars from 13 chemical measurements (scikit-learn).",
        shape=(178, 13),
        class_counts={"class_0": 59, "class_1": 71, "class_2": 48},
    ),
    "iris": _Builtin(
        _sklearn_bundled("load_iris", class_names=True),
        "classification",
        "Three iris species from 4 flower measurements (scikit-learn).",
        shape=(150, 4),
        class_counts={"setosa": 50, "versicolor": 50, "virginica": 50},
    ),
    "mnist1d": _Builtin(
        _mnist1d,
        "classification",
        "MNIST-1D: digits 0-9 as 1-D signals of length 40, generated locally and cached.",
        shape=(5000, 40),
        signal_shape=(1, 40),
        class_counts={
            "0": 500,
            "1": 500,
            "2": 500,
            "3": 500,
            "4": 500,
            "5": 500,
            "6": 500,
            "7": 500,
            "8": 500,
            "9": 500,
        },
    ),
    "moons": _Builtin(
        _moons,
        "classification",
        "Two interleaving half circles in 2-D, noise 0.25 (synthetic).",
        shape=(1000, 2),
        class_counts={"0": 500, "1": 500},
    ),
    "circles": _Builtin(
        _circles,
        "classification",
        "A small circle inside a large one in 2-D (synthetic).",
        shape=(1000, 2),
        class_counts={"0": 500, "1": 500},
    ),
    "imbalanced": _Builtin(
        _imbalanced,
        "classification",
        "Binary, about 5 % positives, 20 features of which 6 informative (synthetic).",
        shape=(2000, 20),
        class_counts={"0": 1900, "1": 100},
    ),
    "friedman": _Builtin(
        _friedman,
        "regression",
        "Friedman #1 regression: 10 features of which 5 matter, noise 1.0 (synthetic).",
        shape=(2000, 10),
        class_counts=None,
    ),
    "spirals": _Builtin(
        _spirals,
        "classification",
        "Two interleaved spirals of two turns in 2-D (synthetic).",
        shape=(1000, 2),
        class_counts={"0": 500, "1": 500},
    ),
    "xor": _Builtin(
        _xor,
        "classification",
        "Parity (XOR) of 6 jittered ±1 bits, beside 4 noise columns (synthetic).",
        shape=(2000, 10),
        class_counts={"0": 988, "1": 1012},
    ),
    "sine": _Builtin(
        _sine,
        "regression",
        "Three periods of a sine in 1-D, noise sd 0.1 (synthetic).",
        shape=(1000, 1),
        class_counts=None,
    ),
    "diabetes": _Builtin(
        _sklearn_bundled("load_diabetes", class_names=False),
        "regression",
        "Disease progression after one year from 10 baseline measurements of 442 diabetes "
        "patients (scikit-learn).",
        shape=(442, 10),
        class_counts=None,
    ),
    "many-features": _Builtin(
        _many_features,
        "classification",
        "Binary, 100 features of which 12 informative and 88 pure noise, 3 % of labels flipped "
        "(synthetic).",
        shape=(3000, 100),
        class_counts={"0": 1496, "1": 1504},
    ),
    "clusters": _Builtin(
        _clusters,
        "classification",
        "Four classes of three clusters each in 20 features, 10 of them informative (synthetic).",
        shape=(3000, 20),
        class_counts={"0": 748, "1": 747, "2": 751, "3": 754},
    ),
    "checkerboard": _Builtin(
        _checkerboard,
        "classification",
        "The colour of an 8 x 8 checkerboard's cell from 2 uniform coordinates in [0, 1] "
        "(synthetic).",
        shape=(4000, 2),
        class_counts={"0": 2046, "1": 1954},
    ),
}


def builtin_names() -> list[str]:
    """The built-in dataset names, in the order ``growml datasets`` lists them."""
    return list(_REGISTRY)


def builtin_task(name: str) -> str:
    """The task of the built-in dataset ``name``."""
    return _REGISTRY[name].task


def load_builtin(name: str) -> tuple[pa.Table, pa.ChunkedArray]:
    """The feature columns and the target of the built-in dataset ``name``."""
    return _REGISTRY[name].load()


def list_datasets() -> list[DatasetInfo]:
    """Every built-in dataset with its size, task and class balance, in a fixed order."""
    return [
        DatasetInfo(
            name=name,
            rows=builtin.shape[0],
            features=builtin.shape[1],
            task=builtin.task,
            description=builtin.description,
            class_balance=None
            if builtin.class_counts is None
            else {label: count / builtin.shape[0] for label, count in builtin.class_counts.items()},
        )
        for name, builtin in _REGISTRY.items()
    ]


def builtin_signal_shape(name: str) -> tuple[int, ...] | None:
    """Each row of built-in ``name`` as a signal or image shape; None for a plain table."""
    builtin = _REGISTRY.get(name)
    return None if builtin is None else builtin.signal_shape


def recorded_facts(name: str) -> tuple[tuple[int, int], dict[str, int] | None]:
    """The recorded ``(rows, features)`` and label counts of built-in ``name``."""
    return _REGISTRY[name].shape, _REGISTRY[name].class_counts
