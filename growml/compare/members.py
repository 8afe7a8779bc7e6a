"""The members of a comparison and how one is trained.

For every seed a comparison trains, on the one split that seed makes: the growing run as
configured (and any named variants of it), one fixed-width network per requested width, and on
request scikit-learn's MLP at the same widths on the same preprocessed arrays. A member is a
complete ``FitConfig`` plus the little that names it; training one gives a *record*, the plain
JSON that the comparison stores, summarises and plots.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from growml.config import MAX_WIDTH, FitConfig, resolve_config
from growml.data import PreparedData, Table, prepare
from growml.errors import ConfigError, GrowmlError
from growml.train.metrics import classification_metrics, regression_metrics

Kind = Literal["grown", "fixed", "sklearn"]
GROWN = "grown"


@dataclass(frozen=True)
class Member:
    """One network of a comparison.

    Attributes:
        key: unique within the comparison, used for its record and run directory
            (``grown-s0``, ``fixed-64-s0``, ``fixed-64x2-s1``, ``sklearn-64-s0``).
        label: the configuration it belongs to, one row of the table (``grown``, ``fixed 64``).
        kind: ``grown`` (a growing run), ``fixed`` (growml at fixed widths) or ``sklearn``.
        seed: the seed of its split, initial weights and batch order.
        widths: the hidden widths asked for (fixed and sklearn members); None when growing.
        config: the member's resolved settings (``FitConfig`` as JSON).
    """

    key: str
    label: str
    kind: Kind
    seed: int
    widths: list[int] | None
    config: dict[str, Any]


def parse_widths(text: str, depth: int) -> list[list[int]]:
    """``"8,16,64x2"`` → ``[[8]*depth, [16]*depth, [64, 64]]``: each item a width, or
    ``WxD`` for ``D`` hidden layers of width ``W``."""
    networks: list[list[int]] = []
    for item in (part.strip() for part in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:x(\d+))?", item)
        if match is None:
            raise ConfigError(
                f"--widths expects comma-separated widths like 8,16,64 or 64x2 (got {item!r})."
            )
        width, layers = int(match[1]), int(match[2]) if match[2] else depth
        if not 1 <= width <= MAX_WIDTH or not 1 <= layers <= 16:
            raise ConfigError(
                f"width {item!r} is out of range: widths run from 1 to {MAX_WIDTH} and "
                "depths from 1 to 16."
            )
        if [width] * layers in networks:
            raise ConfigError(f"width {item!r} is listed twice in --widths.")
        networks.append([width] * layers)
    return networks


def _fixed_widths(base: FitConfig, network: Sequence[int]) -> list[tuple[str, Any]]:
    """The settings of a fixed member of widths ``network``. A convolutional network's
    (``model.arch=conv``) takes one width for every block's channels and every dense layer,
    or one per layer, the blocks first."""
    if base.model.arch != "conv":
        return [("model.hidden_widths", list(network))]
    blocks, dense = len(base.model.channels), len(base.model.hidden_widths)
    if len(network) == 1:
        widths = list(network) * (blocks + dense)
    elif len(network) == blocks + dense:
        widths = list(network)
    else:
        raise ConfigError(
            f"a fixed convolutional network takes one width for all its layers or one for "
            f"each of its {blocks} blocks and {dense} dense layers, not {widths_name(network)}."
        )
    return [("model.channels", widths[:blocks]), ("model.hidden_widths", widths[blocks:])]


def widths_name(widths: Sequence[int]) -> str:
    """``[64]`` → ``"64"``, ``[64, 64]`` → ``"64x2"``, ``[64, 32]`` → ``"64-32"``."""
    if len(set(widths)) == 1:
        return f"{widths[0]}" if len(widths) == 1 else f"{widths[0]}x{len(widths)}"
    return "-".join(str(w) for w in widths)


def plan(
    base: FitConfig,
    widths: Sequence[Sequence[int]],
    seeds: Sequence[int],
    variants: Mapping[str, Sequence[tuple[str, Any]]] | None = None,
    sklearn: bool = False,
) -> list[Member]:
    """Every member of a comparison, seed by seed: the growing runs first, then the widths.

    ``variants`` names further growing configurations (label → dotted settings over ``base``).
    Every member shares ``base``'s data, training, loss and pruning settings; fixed members
    turn growth off, and prune at initialisation when ``base`` prunes after growth.
    """
    growing = {GROWN: [], **(variants or {})}
    for label in growing:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", label) or label in ("fixed", "sklearn"):
            raise ConfigError(
                f"variant name {label!r} must be lower-case letters, digits and dashes, "
                "and not 'fixed' or 'sklearn'."
            )
    settings = base.model_dump(mode="json")
    # One torch thread per member unless the user chose: members run side by side, and their
    # times stay comparable whatever --jobs is.
    threads = [("train.threads", base.train.threads or 1)]
    fixed_prune = "at-init" if base.prune.when == "after-growth" else base.prune.when
    members = []
    for seed in seeds:
        for label, overrides in growing.items():
            config = resolve_config(settings, [("seed", seed), *threads, *overrides])
            if not config.growth.enabled:
                raise ConfigError(
                    f"the {label!r} run of a comparison must grow; remove growth.enabled=false."
                )
            members.append(_member(f"{label}-s{seed}", label, GROWN, seed, None, config))
        for network in widths:
            name = widths_name(network)
            config = resolve_config(
                settings,
                [
                    ("seed", seed),
                    *threads,
                    ("growth.enabled", False),
                    *_fixed_widths(base, network),
                    ("prune.when", fixed_prune),
                ],
            )
            members.append(
                _member(f"fixed-{name}-s{seed}", f"fixed {name}", "fixed", seed, network, config)
            )
            if sklearn:
                members.append(
                    _member(
                        f"sklearn-{name}-s{seed}",
                        f"sklearn {name}",
                        "sklearn",
                        seed,
                        network,
                        config,
                    )
                )
    return members


def _member(
    key: str, label: str, kind: Kind, seed: int, widths: Sequence[int] | None, config: FitConfig
) -> Member:
    return Member(
        key=key,
        label=label,
        kind=kind,
        seed=seed,
        widths=list(widths) if widths is not None else None,
        config=config.model_dump(mode="json"),
    )


def train_member(member: Member, table: Table, runs: Path, keep_run: bool) -> dict[str, Any]:
    """Train ``member`` on ``table`` and return its record.

    growml members write their run directory as ``runs/<key>`` (removed afterwards unless
    ``keep_run``). A user error while training (a network that diverges, one too large for
    memory) is recorded as the member's ``error``; anything else is a bug and propagates.
    """
    started = time.perf_counter()
    config = FitConfig.model_validate(member.config)
    try:
        if member.kind == "sklearn":
            data = prepare(table, config.data, config.seed)
            result = _train_sklearn(member, config, data)
        else:
            result = _train_growml(config, table, runs / member.key, keep_run)
    except GrowmlError as error:
        result = {"error": str(error)}
    return {
        "key": member.key,
        "label": member.label,
        "kind": member.kind,
        "seed": member.seed,
        "widths": member.widths,
        "config": member.config,
        **{
            "hidden_widths": None,
            "parameters": None,
            "epochs": None,
            "metrics": None,
            "test_rows": None,
            "run": None,
            "error": None,
        },
        **result,
        "seconds": {"train": result.get("train_seconds"), "wall": time.perf_counter() - started},
    }


def _train_growml(config: FitConfig, table: Table, out: Path, keep_run: bool) -> dict[str, Any]:
    from growml.fitting import fit

    result = fit(config, out=out, overwrite=True, table=table, checkpoints=False)
    metrics = result.run.metrics_record
    record = {
        "hidden_widths": metrics.hidden_widths,
        "parameters": metrics.parameters,
        "epochs": metrics.epochs,
        "metrics": {"validation": metrics.validation, "test": metrics.test},
        "test_rows": split_digest(result.data),
        "train_seconds": metrics.seconds.train,
        "run": f"{out.parent.name}/{out.name}" if keep_run else None,
    }
    if not keep_run:
        shutil.rmtree(result.path, ignore_errors=True)
    return record


def _train_sklearn(member: Member, config: FitConfig, data: PreparedData) -> dict[str, Any]:
    """scikit-learn's MLP at the member's widths, on the preprocessed arrays of the same split:
    the same learning rate, batch size, L2 penalty and epoch cap, and scikit-learn's own
    stopping rule (training loss, ``tol`` over ``n_iter_no_change`` epochs) and loss."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    train = config.train
    estimator_type = MLPRegressor if data.task == "regression" else MLPClassifier
    estimator = estimator_type(
        hidden_layer_sizes=tuple(member.widths or ()),
        activation=config.model.activation,
        solver="sgd" if train.optimizer == "sgd" else "adam",
        momentum=train.momentum,
        alpha=train.weight_decay,
        learning_rate_init=train.lr,
        batch_size=min(train.batch_size, len(data.x_train)),
        max_iter=train.epochs,
        random_state=config.seed,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(data.x_train, data.y_train)
    seconds = time.perf_counter() - started
    metrics = {}
    for split, (x, y) in {
        "validation": (data.x_val, data.y_val),
        "test": (data.x_test, data.y_test),
    }.items():
        if data.task == "regression":
            decode = data.target_encoder.decode
            metrics[split] = regression_metrics(decode(y), decode(estimator.predict(x)))
        else:
            proba = estimator.predict_proba(x)
            metrics[split] = classification_metrics(y, proba.argmax(1), proba)
    parameters = sum(w.size for w in estimator.coefs_) + sum(b.size for b in estimator.intercepts_)
    return {
        "hidden_widths": list(member.widths or ()),
        "parameters": int(parameters),
        "epochs": int(estimator.n_iter_),
        "metrics": metrics,
        "test_rows": split_digest(data),
        "train_seconds": seconds,
    }


def split_digest(data: PreparedData) -> str:
    """A fingerprint of a split's test rows and targets: members of one seed share it."""
    digest = hashlib.sha256()
    for array in (data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def check_sklearn(config: FitConfig) -> None:
    """scikit-learn's MLP knows relu and tanh only."""
    if config.model.activation not in ("relu", "tanh"):
        raise ConfigError(
            f"--sklearn trains scikit-learn's MLP, which has no {config.model.activation!r} "
            "activation; use model.activation=relu or tanh, or leave out --sklearn."
        )
