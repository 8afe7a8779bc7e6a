"""The small experiment behind each claim of docs/theory.md, run on a user's data.

Each experiment trains or measures a few one-hidden-layer (or deeper) networks on at most
``diagnostics.rows`` of the data's prepared training rows, ``diagnostics.seeds`` times per
setting, and reports a table, whether the measurement agrees with the claim (by a rule stated
in words beside it) and a one-sentence verdict. Every random choice (the rows, the probe batch,
random targets, initial weights) comes from CPU generators seeded by ``config.seed`` and the
seed's index, so the same settings give the same result. Training is growml's ``Trainer``,
full batch, Adam at ``study.LEARNING_RATE``, for ``diagnostics.epochs`` epochs, no early stopping.

* ``width-bound`` (Zhang et al., NeurIPS 2021): random targets fitted at widths around
  ⌈2n/(d + 1)⌉.
* ``init-scale`` (Woodworth et al., COLT 2020): weight change and kernel drift against
  ``model.init_scale``.
* ``confusion`` (Sankararaman et al., ICML 2020): gradient confusion at initialisation against
  width and depth.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from growml.config import FitConfig
from growml.diagnose.measures import (
    empirical_ntk,
    gradient_confusion,
    kernel_drift,
    per_example_gradients,
    relative_change,
    width_bound,
)
from growml.diagnose.study import (
    Progress,
    Study,
    common_settings,
    falling,
    spread,
)
from growml.losses import MeanSquaredError, default_loss

EXPERIMENTS = ("width-bound", "init-scale", "confusion")

# width-bound: a width "fits" its random targets (variance 1) below FITTED, and the narrowest
# width "cannot" above NOT_FITTED, five times as much.
FITTED = 0.01
NOT_FITTED = 0.05


@dataclass(frozen=True)
class ExperimentResult:
    """What one experiment measured and what it says about its claim.

    Attributes:
        name: the experiment, one of ``EXPERIMENTS``.
        claim: the paper's claim in one sentence, with its citation.
        columns: the table's column names.
        rows: the table, one row per setting: means over seeds and their spread.
        holds: whether this measurement agrees with the claim, by ``rule``.
        rule: the rule that decides ``holds``, in words.
        verdict: what was measured and whether the claim holds here, in one sentence.
        settings: the sizes and choices behind the table (n, d, the bound, seeds, epochs...).
    """

    name: str
    claim: str
    columns: list[str]
    rows: list[list[float | int | str]]
    holds: bool
    rule: str
    verdict: str
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def column(self, name: str) -> list[Any]:
        """The values of column ``name``, down the rows."""
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def run_experiment(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    n_outputs: int,
    config: FitConfig,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Run experiment ``name`` on prepared training rows ``x`` (float32) and targets ``y``
    (class indices or standardised values) of a ``task`` with ``n_outputs`` outputs, sized by
    ``config.diagnostics``. ``progress(done, total)`` is called with 0 first and after each
    network trained or measured."""
    if name not in _PROTOCOLS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    study = Study(x, y, task, n_outputs, config, progress)
    return _PROTOCOLS[name](study)


def _width_bound(study: Study) -> ExperimentResult:
    """Random standard-Gaussian targets (one output, mean squared error), drawn per seed, on n
    rows: no structure in the data explains them, so only width can fit them, and zero
    training loss is what the theorem's global minimiser reaches. tanh, since the theorem
    assumes a smooth activation. Widths max(1, round(f·bound)) for f in
    ``diagnostics.width_factors``. Measured with the defaults (n = 256, 3 seeds, 1000 epochs):
    digits, mnist1d, breast-cancer and friedman fit at the bound (MSE ≤ 0.0013) and not at a
    quarter of it (0.1–0.4); on moons (d = 2, bound 171) no width gets below 0.66: the
    minimiser exists, but Adam does not find it in 1000 epochs for so few inputs."""
    n, d = study.rows, study.inputs
    bound = width_bound(n, d)
    factors = study.diagnostics.width_factors
    widths = [max(1, round(factor * bound)) for factor in factors]
    loss = MeanSquaredError()
    study.start(len(widths) * len(study.seeds))
    losses: list[list[float]] = [[] for _ in widths]
    parameters = [0] * len(widths)
    for seed in study.seeds:
        x, _, _ = study.subset(seed)
        targets = torch.randn(n, generator=study.generator(seed, "targets")).numpy()
        for index, width in enumerate(widths):
            model = study.network(seed, [width], 1, activation="tanh")
            parameters[index] = model.n_parameters()
            losses[index].append(study.train(model, x, targets, loss, "regression"))
            study.step()
    rows: list[list[float | int | str]] = [
        [width, factor, count, statistics.fmean(values), min(values), max(values)]
        for width, factor, count, values in zip(widths, factors, parameters, losses, strict=True)
    ]
    at_bound = [statistics.fmean(v) for w, v in zip(widths, losses, strict=True) if w >= bound]
    narrowest = min(range(len(widths)), key=widths.__getitem__)
    narrow = statistics.fmean(losses[narrowest])
    tested = bool(at_bound) and widths[narrowest] < bound
    holds = tested and max(at_bound) < FITTED and narrow > NOT_FITTED
    if not tested:
        finding = "the widths tried do not reach from below the bound to it"
    else:
        finding = (
            f"widths ≥ {bound} reach a training MSE of at most {max(at_bound):.3g}, "
            f"width {widths[narrowest]} {narrow:.3g}"
        )
    return ExperimentResult(
        name="width-bound",
        claim="A one-hidden-layer network with a smooth activation and width m ≥ 2n/d has a "
        "global minimiser of zero training loss on n rows of d inputs, and narrower ones are "
        "hard to train (Zhang, Zhang, Hong, Sun and Luo, NeurIPS 2021).",
        columns=["width", "factor", "parameters", "mse_mean", "mse_min", "mse_max"],
        rows=rows,
        holds=holds,
        rule=f"the mean training MSE on random targets (variance 1) is below {FITTED} at "
        f"every width ≥ the bound ⌈2n/(d + 1)⌉ = {bound}, and above {NOT_FITTED} at the "
        "narrowest width, which is below the bound",
        verdict=f"On {n} rows of {d} inputs with random targets, {finding}: the claim "
        + ("holds here." if holds else "does not hold here."),
        settings={
            **common_settings(study, "tanh"),
            "bound": bound,
            "width_factors": list(factors),
            "widths": widths,
            "targets": "standard Gaussian, one output, drawn per seed",
            "loss": loss.name,
            "activation_why": "the theorem assumes a smooth activation",
        },
    )


def _init_scale(study: Study) -> ExperimentResult:
    """One hidden layer of ``diagnostics.width`` on the real targets with the task's standard
    loss, at each ``model.init_scale`` in ``diagnostics.init_scales``: the relative change of
    each layer's weights and the drift of the empirical NTK on the probe batch between
    initialisation and the last epoch. Each seed's networks share their rows and the direction
    of their initial weights, so the scales differ in scale alone. Adam's steps do not
    depend on the gradient's scale, so part of the weight change's fall (about 1/scale) comes
    from the optimizer; the kernel drift is the telling measure. Measured with the defaults on
    the five built-in data sets: both fall from 0.25 to 4 on every one (digits' drift not at
    every step)."""
    scales = study.diagnostics.init_scales
    activation = study.config.model.activation
    width = study.diagnostics.width
    loss = default_loss(study.task, study.n_outputs)
    study.start(len(scales) * len(study.seeds))
    measured: list[dict[str, list[float]]] = [
        {"hidden": [], "output": [], "drift": [], "loss": []} for _ in scales
    ]
    for seed in study.seeds:
        x, y, probe = study.subset(seed)
        for index, scale in enumerate(scales):
            model = study.network(
                seed, [width], study.n_outputs, activation=activation, init_scale=scale
            )
            start = [weight.detach().clone() for weight in model.weights]
            kernel = empirical_ntk(model, probe)
            values = measured[index]
            values["loss"].append(study.train(model, x, y, loss, study.task))
            hidden, output = relative_change(start, [w.detach() for w in model.weights])
            values["hidden"].append(hidden)
            values["output"].append(output)
            values["drift"].append(kernel_drift(kernel, empirical_ntk(model, probe)))
            study.step()
    rows: list[list[float | int | str]] = []
    for scale, values in zip(scales, measured, strict=True):
        row: list[float | int | str] = [scale]
        for key in ("hidden", "output", "drift", "loss"):
            row.extend(spread(values[key]))
        rows.append(row)
    order = sorted(range(len(scales)), key=scales.__getitem__)
    change = [statistics.fmean(measured[i]["hidden"]) for i in order]
    drift = [statistics.fmean(measured[i]["drift"]) for i in order]
    holds = change[-1] < change[0] and drift[-1] < drift[0]
    monotone = falling(change) and falling(drift)
    return ExperimentResult(
        name="init-scale",
        claim="A large initialisation makes gradient descent lazy, the network staying near "
        "its linearisation (the kernel regime), while a small one lets the features move (the "
        "rich regime) (Woodworth, Gunasekar, Lee, Moroshko, Savarese, Golan, Soudry and "
        "Srebro, COLT 2020).",
        columns=[
            "init_scale",
            "hidden_change",
            "hidden_change_sd",
            "output_change",
            "output_change_sd",
            "kernel_drift",
            "kernel_drift_sd",
            "train_loss",
            "train_loss_sd",
        ],
        rows=rows,
        holds=holds,
        rule="the mean relative change of the hidden layer's weights and the mean kernel "
        "drift are both smaller at the largest init_scale than at the smallest",
        verdict=f"From init_scale {scales[order[0]]:g} to {scales[order[-1]]:g} the hidden "
        f"layer's relative change goes {change[0]:.3g} → {change[-1]:.3g} and the kernel "
        f"drift {drift[0]:.3g} → {drift[-1]:.3g}"
        + (", both falling at every step" if monotone else ", not at every step")
        + (": the claim holds here." if holds else ": the claim does not hold here."),
        settings={
            **common_settings(study, activation),
            "width": width,
            "init_scales": list(scales),
            "probe": study.probe,
            "loss": loss.name,
            "changes": "weights only, per layer, ‖W_T − W_0‖_F / ‖W_0‖_F",
        },
    )


def _confusion(study: Study) -> ExperimentResult:
    """Gradient confusion at initialisation (the paper's bounds are for random
    initialisation), from the task's standard loss on the probe batch: one hidden layer at
    each width in ``diagnostics.confusion_widths``, and each number of hidden layers in
    ``diagnostics.confusion_depths`` at ``diagnostics.width``. No training, so it is cheap.
    Measured with growml's initialisation (PyTorch's default) and the defaults: depth raises
    confusion on all five built-in data sets; width lowers it beyond the seeds' spread on
    digits and mnist1d only (moons, breast-cancer and friedman: within it)."""
    diagnostics = study.diagnostics
    activation = study.config.model.activation
    loss = default_loss(study.task, study.n_outputs)
    settings = [("width", w, [w]) for w in diagnostics.confusion_widths] + [
        ("depth", depth, [diagnostics.width] * depth) for depth in diagnostics.confusion_depths
    ]
    study.start(len(settings) * len(study.seeds))
    measured: list[list[Any]] = [[] for _ in settings]
    parameters = [0] * len(settings)
    for seed in study.seeds:
        _, y, probe = study.subset(seed)
        target = loss.prepare_target(y[: study.probe])
        for index, (_, _, widths) in enumerate(settings):
            model = study.network(seed, widths, study.n_outputs, activation=activation)
            parameters[index] = model.n_parameters()
            gradients = per_example_gradients(model, loss, probe, target)
            measured[index].append(gradient_confusion(gradients))
            study.step()
    rows: list[list[float | int | str]] = []
    for (kind, value, _), count, confusions in zip(settings, parameters, measured, strict=True):
        lowest = spread([c.min_cosine for c in confusions])
        fifth = spread([c.cosine_5th for c in confusions])
        eta = statistics.fmean(c.eta for c in confusions)
        mean = statistics.fmean(c.mean_cosine for c in confusions)
        rows.append([kind, value, count, eta, *lowest, *fifth, mean])
    width = _Trend(rows, "width")
    depth = _Trend(rows, "depth")
    wider, deeper = width.rises(), depth.falls()
    finding = {
        (True, True): "both trends hold",
        (True, False): "only the width trend holds",
        (False, True): "only the depth trend holds",
        (False, False): "neither trend holds",
    }[wider, deeper]
    return ExperimentResult(
        name="confusion",
        claim="Wider networks have less gradient confusion (per-example gradients point less "
        "against each other), deeper ones without skip connections more (Sankararaman, De, "
        "Xu, Huang and Goldstein, ICML 2020).",
        columns=list(_CONFUSION_COLUMNS),
        rows=rows,
        holds=wider and deeper,
        rule="the mean 5th-percentile cosine between two probe rows' gradients is higher at "
        "the widest width than at the narrowest, and lower at the most hidden layers than at "
        "the fewest, each by more than the two settings' standard deviations over seeds "
        "added (a difference within the seeds' spread is no trend)",
        verdict=f"At initialisation the 5th-percentile gradient cosine goes {width} from "
        f"width {width.first} to {width.last} and {depth} from {depth.first} to {depth.last} "
        f"hidden layers: {finding}, so the claim "
        + ("holds here." if wider and deeper else "does not hold here."),
        settings={
            **common_settings(study, activation),
            "epochs": 0,
            "optimizer": "none: measured at initialisation, where the paper's bounds hold",
            "width": diagnostics.width,
            "confusion_widths": list(diagnostics.confusion_widths),
            "confusion_depths": list(diagnostics.confusion_depths),
            "probe": study.probe,
            "loss": loss.name,
        },
    )


_CONFUSION_COLUMNS = (
    "kind",
    "value",
    "parameters",
    "eta",
    "min_cosine",
    "min_cosine_sd",
    "cosine_5th",
    "cosine_5th_sd",
    "mean_cosine",
)


class _Trend:
    """The 5th-percentile cosine (mean and spread over seeds) at the smallest and the largest
    value of one ``kind`` (width or depth) of the confusion table."""

    def __init__(self, rows: list[list[Any]], kind: str) -> None:
        value, mean, spread = (
            _CONFUSION_COLUMNS.index(c) for c in ("value", "cosine_5th", "cosine_5th_sd")
        )
        chosen = sorted((row for row in rows if row[0] == kind), key=lambda row: row[value])
        self.first, self.last = chosen[0][value], chosen[-1][value]
        self.start, self.end = chosen[0][mean], chosen[-1][mean]
        self.margin = chosen[0][spread] + chosen[-1][spread]

    def rises(self) -> bool:
        return self.end - self.start > self.margin

    def falls(self) -> bool:
        return self.start - self.end > self.margin

    def __str__(self) -> str:
        return f"{self.start:.3g} → {self.end:.3g}"


_PROTOCOLS: dict[str, Callable[[Study], ExperimentResult]] = {
    "width-bound": _width_bound,
    "init-scale": _init_scale,
    "confusion": _confusion,
}
