"""benchmarks/tabular_peers.py: the peers' rows are growml's, the ratios, the cache, the sizes.

No peer is trained here beyond a few iterations: the benchmark itself takes minutes.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from growml.config import DataConfig
from growml.data import load_table, prepare

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import tabular_peer_models as models  # noqa: E402
import tabular_peers as bench  # noqa: E402


@pytest.mark.parametrize(("name", "seed"), [("wine", 3), ("diabetes", 1), ("checkerboard", 0)])
def test_the_peers_are_tested_on_growmls_test_rows_and_fit_on_the_rest(name, seed) -> None:
    table = load_table(name)
    fit_rows, test_rows = bench.peer_split(table, DataConfig(), seed)
    prepared = prepare(table, DataConfig(), seed)
    assert prepared.raw_test.equals(table.features.take(test_rows))
    assert len(fit_rows) == len(prepared.x_train) + len(prepared.x_val)
    assert np.array_equal(
        np.sort(np.concatenate([fit_rows, test_rows])), np.arange(len(table.target))
    )
    # The raw arrays the peers get hold the same test rows, unscaled.
    x, y = bench.raw_arrays(table)
    assert np.array_equal(x[test_rows, 0], prepared.raw_test.column(0).to_numpy())
    if table.task == "classification":
        decoded = np.asarray(prepared.target_encoder.classes)[prepared.y_test]
        assert np.array_equal(np.unique(table.target.to_numpy())[y[test_rows]], decoded)
    else:
        assert np.array_equal(y[test_rows], table.target.take(test_rows).to_numpy())


def _run(score: float, size: float = 100, seconds: float = 1.0, unit: str = "weights") -> dict:
    return {"score": score, "size": size, "unit": unit, "seconds": seconds}


def test_the_ratios_are_against_the_best_neural_peer_and_realmlp() -> None:
    runs = {}
    # Seed 1 of "b" lacks TabM-D: its seed is left out of every mean of "b".
    for name, seed, scores in [
        ("a", 0, {"growml": 90, "realmlp-td": 95, "tabm-d": 93, "lightgbm": 91}),
        ("a", 1, {"growml": 92, "realmlp-td": 93, "tabm-d": 97, "lightgbm": 89}),
        ("b", 0, {"growml": 80, "realmlp-td": 70, "tabm-d": 75, "lightgbm": 85}),
        ("b", 1, {"growml": 10, "realmlp-td": 10, "lightgbm": 10}),
    ]:
        for model, score in scores.items():
            size, seconds = (50, 2.0) if model == "growml" else (1000, 8.0 + seed)
            runs[f"{name}/{seed}/{model}"] = _run(score, size, seconds)
    models_ = ["growml", "realmlp-td", "tabm-d", "lightgbm"]
    tables = {"a": load_table("wine"), "b": load_table("diabetes")}
    report = bench.summarise(runs, ["a", "b"], [0, 1], models_, tables)
    a, b = report["datasets"]["a"], report["datasets"]["b"]
    assert b["seeds_done"] == [0]
    assert a["models"]["growml"]["score"] == pytest.approx(91.0)
    assert a["models"]["growml"]["score_sd"] == pytest.approx(np.std([90, 92], ddof=1))
    # TabM-D's mean (95) beats RealMLP-TD's (94) on "a"; on "b" TabM-D's 75 beats 70.
    assert a["ratios"]["best_neural"] == "tabm-d"
    assert a["ratios"]["growml_minus_best_neural"] == pytest.approx(-4.0)
    assert b["ratios"]["growml_minus_best_neural"] == pytest.approx(5.0)
    assert a["ratios"]["growml_minus_lightgbm"] == pytest.approx(1.0)
    assert a["ratios"]["parameters_over_realmlp"] == pytest.approx(0.05)
    assert a["ratios"]["seconds_over_realmlp"] == pytest.approx(2.0 / 8.5)
    assert b["ratios"]["seconds_over_realmlp"] == pytest.approx(2.0 / 8.0)
    assert report["medians"]["growml_minus_best_neural"] == pytest.approx(0.5)
    assert report["medians"]["growml_minus_lightgbm"] == pytest.approx(-2.0)
    text = bench.markdown(report, threads=1, settings=[])
    assert "| a | 2 | 91.0 ± 1.4 | 94.0 ± 1.4 | 95.0 ± 2.8 | 90.0 ± 1.4 | -4.0 | +1.0 |" in text


def test_a_peer_is_reused_only_for_the_same_version_threads_and_split() -> None:
    version = models.PEERS["lightgbm"].version() or "absent"
    entry = {**_run(90), "version": version, "threads": 1}
    entry["split"] = bench.split_settings(DataConfig())
    runs = {"wine/0/lightgbm": entry, "wine/0/growml": {**entry}}
    if models.PEERS["lightgbm"].version() is not None:
        assert bench.cached(runs, "wine/0/lightgbm", "lightgbm", 1, DataConfig()) is entry
    assert bench.cached(runs, "wine/0/lightgbm", "lightgbm", 2, DataConfig()) is None
    other_split = DataConfig(test_size=0.3)
    assert bench.cached(runs, "wine/0/lightgbm", "lightgbm", 1, other_split) is None
    runs["wine/0/lightgbm"] = {**entry, "version": "0.0.1"}
    assert bench.cached(runs, "wine/0/lightgbm", "lightgbm", 1, DataConfig()) is None
    # growml is always fitted again: the benchmark is there to measure its changes.
    assert bench.cached(runs, "wine/0/growml", "growml", 1, DataConfig()) is None


def test_torch_parameters_counts_each_tensor_of_a_nested_module_once() -> None:
    shared = torch.nn.Linear(3, 4)

    class Holder:
        def __init__(self) -> None:
            self.parts = {"net": torch.nn.Sequential(shared, torch.nn.Linear(4, 2))}
            self.again = [shared]

    class Estimator:
        def __init__(self) -> None:
            self.alg_ = Holder()

    assert models.torch_parameters(Estimator()) == (3 * 4 + 4) + (4 * 2 + 2)


def test_the_mlp_peer_counts_its_weights_and_biases() -> None:
    x, y = np.random.default_rng(0).normal(size=(60, 5)), np.arange(60) % 3
    estimator = models.PEERS["sklearn-mlp"].build("classification", 0, 1)
    with pytest.warns(Warning):
        estimator.set_params(mlpclassifier__max_iter=2).fit(x, y)
    assert models.mlp_parameters(estimator) == 5 * 256 + 256 + 256 * 3 + 3
    regressor = models.PEERS["sklearn-mlp"].build("regression", 0, 1)
    with pytest.warns(Warning):
        regressor.set_params(regressor__mlpregressor__max_iter=2).fit(x, 100 + x[:, 0])
    assert models.mlp_parameters(regressor) == 5 * 256 + 256 + 256 + 1


def test_lightgbm_nodes_are_every_leaf_and_split() -> None:
    pytest.importorskip("lightgbm")
    pytest.importorskip("pandas")
    x = np.random.default_rng(0).normal(size=(200, 3))
    estimator = models.PEERS["lightgbm"].build("regression", 0, 1)
    estimator.set_params(n_estimators=5, num_leaves=6).fit(x, x[:, 0] ** 2)
    assert models.lightgbm_nodes(estimator) == len(estimator.booster_.trees_to_dataframe())


def test_the_score_is_accuracy_or_100_r2() -> None:
    y = np.array([1.0, 2.0, 4.0, 7.0])
    predicted = np.array([1.5, 2.0, 3.0, 7.5])
    r2 = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
    assert models.score_points("regression", y, predicted) == pytest.approx(100 * r2)
    assert models.score_points("classification", np.array([0, 1, 2]), np.array([0, 2, 2])) == (
        pytest.approx(200 / 3)
    )


def test_the_benchmark_imports_without_the_bench_extra_and_says_how_to_get_it() -> None:
    """With pytabkit and lightgbm unimportable, the module loads and a peer run stops with
    exit code 2 and the install command."""
    script = (
        "import sys; sys.modules['pytabkit'] = sys.modules['lightgbm'] = None\n"
        "import importlib.metadata as m\n"
        "real = m.version\n"
        "def version(name):\n"
        "    if name in ('pytabkit', 'lightgbm'):\n"
        "        raise m.PackageNotFoundError(name)\n"
        "    return real(name)\n"
        "m.version = version\n"
        f"sys.path.insert(0, {str(BENCHMARKS)!r})\n"
        "import tabular_peers\n"
        "sys.argv = ['tabular_peers.py', '--datasets', 'wine', '--models', 'growml,lightgbm']\n"
        "tabular_peers.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "tabular_peers: peer(s) lightgbm need the bench extra; install it with "
        'pip install -e ".[bench]".\n'
    )


def test_an_unknown_model_or_data_set_is_refused_in_one_sentence(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["tabular_peers.py", "--models", "growml,xgboost"])
    with pytest.raises(SystemExit) as stopped:
        bench.main()
    assert stopped.value.code == 2
    assert "unknown model(s) xgboost; choose from growml, realmlp-td" in capsys.readouterr().err
    # growml alone: the check must not depend on the bench extra being installed.
    argv = ["tabular_peers.py", "--models", "growml", "--datasets", "wine,nope"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stopped:
        bench.main()
    assert stopped.value.code == 2
    assert "'nope'" in capsys.readouterr().err
