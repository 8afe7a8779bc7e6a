"""``fit``: settings in, a trained network and its run directory out.

The data is loaded and checked before anything is written, so bad input never leaves a run
directory behind; the directory itself appears only when the run is complete.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from growml.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from growml.config import FitConfig, without_device
from growml.data import PreparedData, Table, load_data_table, prepare
from growml.data.streaming import load_streamed
from growml.data.streaming import streams as streams_data
from growml.diagnose.recording import Recording, draw_probe, probe_loss
from growml.errors import ConfigError, DataError, GrowmlWarning, RunError, TrainingError
from growml.events import Event, Observer, parse_event
from growml.growth.engine import GrowthEngine
from growml.growth.trim import trim_after_growth
from growml.losses import Loss, default_loss, make_loss
from growml.losses.threshold import choose_threshold
from growml.nn.conv import GrowingConvNet, default_strides
from growml.nn.embeddings import make_embedding
from growml.nn.mlp import GrowingMLP
from growml.prune.stage import prune_network
from growml.runs.layout import DIAGNOSTICS_RECORD, PLOTS
from growml.runs.plots import threshold_plot
from growml.runs.run import Run, save_run
from growml.runs.rundir import RunWriter, default_run_dir, interrupted_runs, remove_abandoned
from growml.runs.summary import fit_metrics
from growml.scoring import check_settings, threshold_metric
from growml.train.device import training_device
from growml.train.metrics import outputs, probabilities
from growml.train.trainer import Trainer, TrainResult


@dataclass
class FitResult:
    """A finished fit: the run (model, preprocessing, metrics) and where it was written."""

    run: Run
    path: Path
    train: TrainResult
    data: PreparedData

    @property
    def metrics(self) -> dict[str, Any]:
        return self.run.metrics


def fit(
    config: FitConfig,
    out: str | Path | None = None,
    overwrite: bool = False,
    observers: Sequence[Observer] = (),
    table: Table | None = None,
    resume: bool = False,
    checkpoints: bool = True,
    sample_weight: np.ndarray | None = None,
    started: float | None = None,
    prepared: PreparedData | None = None,
) -> FitResult:
    """Train the network ``config`` describes and write its run directory.

    Args:
        config: the resolved settings; ``config.data.source`` names the data.
        out: the run directory; default ``runs/<data name>`` (``-2``, ``-3``... when taken,
            unless ``overwrite``).
        overwrite: replace an existing run directory at ``out`` (or at ``runs/<data name>``).
        observers: receive the trainer's events (progress display, tuner...).
        table: ``config.data.source`` already loaded (a comparison loads its data once for
            all its runs); by default it is loaded here.
        resume: go on from the checkpoint of an interrupted run of ``out`` (with the same
            settings) instead of starting afresh; it ends as the uninterrupted run would.
        checkpoints: write checkpoints (``train.checkpoint_seconds``, and at every growth
            step); a comparison or a study, which resume whole runs, turns them off.
        sample_weight: one positive weight per row of ``table``: a row of weight 2 counts as
            the row twice in the training loss, the growth statistics, the validation metrics,
            the binary threshold and metrics.json; by default every row counts once.
        started: the ``time.perf_counter()`` at which the command began (default: now); the
            run's wall time counts from it, so that ``growml fit``'s counts its reading of the data.
        prepared: ``table`` split and encoded already, with ``sample_weight`` (the command
            line does it before torch loads, to say what it will train on); by default it is
            done here.
    """
    started = time.perf_counter() if started is None else started
    device = training_device(config)  # before data that may take minutes to read
    if table is None and prepared is None and sample_weight is None and streams(config):
        table, prepared = load_streamed(config.data, config.seed)
    if table is None:
        table = load_config_table(config)
    check_settings(config, table.task)
    _check_weights(sample_weight, table)
    if prepared is None:
        prepared = prepare(table, config.data, config.seed, sample_weight)
    data = prepared
    loaded = time.perf_counter()
    with _memory_errors_as_user_errors(config):
        model = _network(config, data).to(device)
        n_outputs = data.target_encoder.n_outputs
        loss = make_loss(config.loss, data.task, n_outputs, data.y_train, data.w_train)
        engine = GrowthEngine(config.growth, loss, config.seed) if config.growth.enabled else None
        path = _run_path(out, overwrite, table.name)
        settings = config.model_dump(mode="json")
        partial, checkpoint = _interrupted(path, settings, resume)
        with RunWriter(path, overwrite=overwrite, resume=partial) as writer:
            recorder = _Recorder(writer, settings, observers, checkpoint)
            recording = _recording(config, data, model)
            trainer = Trainer(
                config.train,
                loss,
                data.task,
                observers=[recorder],
                seed=config.seed,
                growth=engine,
                warmup=_warmup_loss(config, data, loss),
                warmup_epochs=config.loss.warmup_epochs,
                checkpoint=recorder.save_checkpoint if checkpoints else None,
                resume=checkpoint,
                hooks=[recording] if recording is not None else [],
            )
            trained, pruning, trimming = _train_and_prune(
                model, data, config, trainer, recorder, resumed=checkpoint is not None
            )
            model.cpu()  # the threshold, the metrics and the run directory read it there
            if model.masks:
                model.masks = [mask.cpu() for mask in model.masks]
            if recording is not None:
                writer.write_weights(recording.record(), DIAGNOSTICS_RECORD)
            threshold = None
            if data.task == "classification" and data.target_encoder.n_outputs == 1:
                threshold = _choose_threshold(model, data, config, loss, writer.path / PLOTS)
            run = Run(
                model=model,
                preprocessor=data.preprocessor,
                target_encoder=data.target_encoder,
                threshold=threshold["value"] if threshold else None,
                config=settings,
            )
            seconds = {"data": loaded - started, "wall": time.perf_counter() - started}
            run.metrics = fit_metrics(
                run, config, data, trained, recorder.events, seconds, pruning, threshold, trimming
            )
            save_run(writer, run, recorder.events)
    run.path = writer.out
    return FitResult(run=run, path=writer.out, train=trained, data=data)


class _Recorder:
    """Where a fit's events go: ``history.jsonl``, the history kept in memory (typed), then
    the ``observers``; checkpoints carry the settings and the history so far.

    A resumed run starts from its ``checkpoint``'s history, written again into the file."""

    def __init__(
        self,
        writer: RunWriter,
        settings: dict[str, Any],
        observers: Sequence[Observer],
        checkpoint: Checkpoint | None,
    ) -> None:
        self.writer = writer
        self.settings = settings
        self.observers = list(observers)
        replayed = checkpoint.state["events"] if checkpoint is not None else []
        writer.replay(replayed)
        self.events: list[Event] = [parse_event(event) for event in replayed]

    def __call__(self, event: Event) -> None:
        self.writer.record(event)
        self.events.append(event)
        for observer in self.observers:
            observer(event)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        events = [event.to_dict() for event in self.events]
        checkpoint.state.update(config=self.settings, events=events)
        write_checkpoint(self.writer.path, checkpoint)


def _recording(config: FitConfig, data: PreparedData, model: GrowingMLP) -> Recording | None:
    """What the fit records for ``growml diagnose`` (``diagnostics.enabled``), or None."""
    if not config.diagnostics.enabled:
        return None
    probe = draw_probe(data.x_train, data.y_train, config.diagnostics.probe, config.seed)
    return Recording(model, probe_loss(data.task, data.target_encoder.n_outputs), *probe)


def _network(config: FitConfig, data: PreparedData) -> GrowingMLP:
    """The starting network ``model`` describes, seeded by ``seed``."""
    generator = torch.Generator().manual_seed(config.seed)
    if config.model.arch == "conv":
        return _conv_network(config, data, generator)
    numeric = data.preprocessor.numeric_outputs
    if config.model.embedding != "none" and not numeric:
        raise ConfigError(
            f"model.embedding={config.model.embedding} embeds numeric columns and the data has "
            "none; use model.embedding=none."
        )
    embedding = make_embedding(config.model, data.x_train, numeric, generator)
    first = data.x_train.shape[1] if embedding is None else embedding.output_size
    _check_memory(config, data, first)
    return GrowingMLP(
        input_size=data.x_train.shape[1],
        hidden_widths=config.model.hidden_widths,
        output_size=data.target_encoder.n_outputs,
        activation=config.model.activation,
        init_scale=config.model.init_scale,
        generator=generator,
        embedding=embedding,
        feature_gate=config.model.feature_gate,
    )


def _conv_network(
    config: FitConfig, data: PreparedData, generator: torch.Generator
) -> GrowingConvNet:
    """The starting convolutional network (``model.arch=conv``)."""
    model = config.model
    shape = tuple(model.input_shape) if model.input_shape else data.signal_shape
    columns = data.x_train.shape[1]
    if shape is None:
        raise ConfigError(
            "model.arch=conv reads each row as a signal or an image: give its shape, e.g. "
            f"model.input_shape=[1,{columns}] for one channel of length {columns}."
        )
    if math.prod(shape) != columns:
        raise ConfigError(
            f"model.input_shape={list(shape)} holds {math.prod(shape)} values but each row has "
            f"{columns} prepared inputs; the shape must account for every column."
        )
    kernel = model.kernel_size or (5 if len(shape) == 2 else 3)
    network = GrowingConvNet(
        shape,
        [*model.channels, *model.hidden_widths],
        data.target_encoder.n_outputs,
        conv_layers=len(model.channels),
        kernel_size=kernel,
        stride=default_strides(shape, kernel, len(model.channels))
        if model.stride is None
        else model.stride,
        activation=model.activation,
        init_scale=model.init_scale,
        generator=generator,
        head=model.head,
    )
    positions = sum(c * h * w for c, (h, w) in zip(model.channels, network.map_shapes, strict=True))
    activations = config.train.batch_size * (columns + positions) * 4 * 3
    _check_available(config, network.n_parameters(), activations)
    return network


def _check_weights(sample_weight: np.ndarray | None, table: Table) -> None:
    """Row weights ``fit`` can train with: one positive, finite number per row of ``table``."""
    if sample_weight is None:
        return
    weights = np.asarray(sample_weight, dtype=np.float64)
    rows = table.features.num_rows
    if weights.shape != (rows,) or not np.all(np.isfinite(weights) & (weights > 0)):
        raise DataError(
            f"sample_weight must hold one positive, finite weight for each of the {rows} rows; "
            "leave rows of weight 0 out of the table."
        )


def _warmup_loss(config: FitConfig, data: PreparedData, loss: Loss) -> Loss | None:
    """The loss of the first ``loss.warmup_epochs`` epochs: the default loss of the task before
    a soft-set loss, which needs a trained network to have a gradient."""
    if config.loss.warmup_epochs and getattr(loss, "needs_positives", False):
        return default_loss(data.task, data.target_encoder.n_outputs)
    return None


def _run_path(out: str | Path | None, overwrite: bool, name: str) -> Path:
    """``out``; by default ``runs/<data>``, replaced with ``overwrite``, else the first free
    ``runs/<data>-N``."""
    if out is not None:
        return Path(out)
    return Path("runs") / name if overwrite else default_run_dir(name)


def streams(config: FitConfig) -> bool:
    """Whether the data ``config`` names is read in batches (``data.stream``)."""
    return streams_data(config.data, config.model.arch)


def load_config_table(config: FitConfig) -> Table:
    """The table ``config.data`` names, loaded and checked."""
    return load_data_table(config.data, config.model.input_shape)


# What training holds per parameter (the weights, their gradients, Adam's two moments, the
# best weights so far and a checkpoint's copy), in float32 bytes.
_BYTES_PER_PARAMETER = 6 * 4


def _check_memory(config: FitConfig, data: PreparedData, first_inputs: int) -> None:
    """Refuse a starting network that cannot fit in the memory available now: allocation
    itself would not fail (memory is promised lazily), the process would be killed instead.
    ``first_inputs``: what the first hidden layer reads (an embedding's outputs, when set)."""
    sizes = [first_inputs, *config.model.hidden_widths, data.target_encoder.n_outputs]
    parameters = sum((a + 1) * b for a, b in zip(sizes, sizes[1:], strict=False))
    _check_available(config, parameters, config.train.batch_size * sum(sizes) * 4 * 3)


def _check_available(config: FitConfig, parameters: int, activations: int) -> None:
    """Refuse a network of ``parameters`` whose training (with ``activations`` bytes of
    activations per batch) would not fit in the memory available."""
    needed = parameters * _BYTES_PER_PARAMETER + activations
    available = _available_memory()
    if available is not None and needed > available:
        raise TrainingError(
            f"the network (hidden widths {config.model.hidden_widths}, {parameters:,} "
            f"parameters) needs about {needed / 2**30:.1f} GiB to train but "
            f"{available / 2**30:.1f} GiB of memory is available; use narrower layers."
        )


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation, if known: Linux's MemAvailable, or
    less where a container's memory limit (cgroup v2) leaves less."""
    limits = [_meminfo_available(), _cgroup_headroom(Path("/sys/fs/cgroup"))]
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom(cgroup: Path) -> int | None:
    """The memory limit of the cgroup at ``cgroup`` less what it uses (None: no limit)."""
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        used = int((cgroup / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


@contextlib.contextmanager
def _memory_errors_as_user_errors(config: FitConfig) -> Iterator[None]:
    """A network too large for memory is a setting to change, not a crash."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and "allocate" not in str(error):
            raise
        raise TrainingError(
            f"the network (hidden widths {config.model.hidden_widths}) does not fit in memory; "
            "use narrower layers or a smaller train.batch_size."
        ) from None


def _quiet(event: Event) -> None:
    """Events already in a resumed run's history (pruning at initialisation, done again)."""


def _interrupted(
    path: Path, settings: dict[str, Any], resume: bool
) -> tuple[Path | None, Checkpoint | None]:
    """The interrupted run of ``path`` to resume and its checkpoint (None, None: start
    afresh). Without ``resume``, an interrupted run is named in a warning, never dropped;
    what a run killed before its first checkpoint left is removed."""
    remove_abandoned(path)
    found = interrupted_runs(path)
    if not found:
        return None, None
    if not resume:
        warnings.warn(
            f"an interrupted run of {str(path)!r} is kept in {str(found[0])!r}; --resume "
            "continues it (this run starts afresh beside it).",
            GrowmlWarning,
            stacklevel=3,
        )
        return None, None
    checkpoint = read_checkpoint(found[0])
    saved = checkpoint.state.get("config") if checkpoint is not None else None
    if saved is None or without_device(saved) != without_device(settings):
        raise RunError(
            f"the interrupted run in {str(found[0])!r} was started with other settings; "
            "resume it with the same command, or delete it."
        )
    return found[0], checkpoint


def _train_and_prune(
    model: GrowingMLP,
    data: PreparedData,
    config: FitConfig,
    trainer: Trainer,
    emit: Observer,
    resumed: bool = False,
) -> tuple[TrainResult, dict[str, Any] | None, dict[str, Any] | None]:
    """Prune at init (if asked), train with ``trainer`` (growing if asked), trim what growth
    added beyond need (``growth.trim``), then prune after growth (if asked); trimming and
    pruning each fine-tune (``Trainer.fine_tuning``), continuing the same optimizer so that its
    sliced state carries over. Returns the training, pruning and trimming summaries.
    ``resumed``: the training goes on from a checkpoint, whose history already holds the
    pruning at initialisation (done again, to give the network its masks and widths); trimming
    and pruning after growth follow the training, so a resumed run does them afresh."""
    when = _prune_when(config)
    pruning = trimming = None
    if when == "at-init":
        pruning = prune_network(
            model, None, config.prune, when, config.seed, _quiet if resumed else emit
        )
    arrays = (data.x_train, data.y_train, data.x_val, data.y_val)
    weights = {"train_weights": data.w_train, "validation_weights": data.w_val}
    result = trainer.run(model, *arrays, **weights)
    if config.growth.enabled and config.growth.trim:
        trimming, tuned = trim_after_growth(
            model, trainer, arrays, weights, config.growth.trim_tolerance, emit
        )
        if tuned is not None:
            result = _followed_by(result, tuned, kept=trimming["kept"], seconds=trimming["seconds"])
    if when != "after-growth":
        return result, pruning, trimming
    pruning = prune_network(model, trainer.optimizer_, config.prune, when, config.seed, emit)
    tuned = trainer.fine_tuning().run(model, *arrays, optimizer=trainer.optimizer_, **weights)
    return _followed_by(result, tuned), pruning, trimming


def _followed_by(
    result: TrainResult, tuned: TrainResult, kept: bool = True, seconds: float = 0.0
) -> TrainResult:
    """A training ``result`` followed by fine-tuning ``tuned`` (and ``seconds`` of other
    work): their epochs and times add up; the kept weights are the fine-tuning's best epoch,
    or the first training's when the fine-tuned network was not ``kept``."""
    last = tuned if kept else result
    return TrainResult(
        epochs=result.epochs + tuned.epochs,
        best_epoch=result.epochs + tuned.best_epoch if kept else result.best_epoch,
        stopped_early=last.stopped_early,
        seconds=result.seconds + tuned.seconds + seconds,
        best_validation=last.best_validation,
    )


def _choose_threshold(
    model: GrowingMLP, data: PreparedData, config: FitConfig, loss: Loss, plots: Path
) -> dict[str, Any]:
    """The decision threshold of a binary model: 0.5, or the τ that maximises
    ``threshold.metric`` on the validation split (plotted as plots/threshold.png)."""
    metric = threshold_metric(config.threshold.metric, config.loss.name)
    if metric == "none":
        return {"value": 0.5, "metric": "none"}
    with torch.no_grad():
        probability = probabilities(outputs(model, data.x_val), 1)[:, 1].numpy()
    # A loss averaged over τ = 0.1 … 0.9 was trained for that range only.
    averaged = getattr(loss, "needs_positives", False) and config.loss.tau is None
    bounds = (0.1, 0.9) if averaged else (0.01, 0.99)
    choice = choose_threshold(
        probability,
        data.y_val,
        metric,
        config.loss.beta,
        bounds,
        seed=config.seed,
        sample_weight=data.w_val,
    )
    threshold_plot(choice, metric, plots / "threshold.png")
    if choice.kept_half:
        warnings.warn(
            f"the validation split ({int(data.y_val.sum())} positives) cannot tell the best "
            f"threshold from 0.5 (its {metric} gain {choice.gain:.3f} is within half the "
            f"resamples' spread {choice.spread:.3f}): decisions stay at 0.5.",
            GrowmlWarning,
            stacklevel=2,
        )
    score = float(choice.curve[np.isclose(choice.grid, choice.value)][0])
    return {
        "value": choice.value,
        "metric": metric,
        "validation_score": score,
        "gain_over_half": choice.gain,
        "gain_spread": choice.spread,
        "kept_half": choice.kept_half,
    }


def _prune_when(config: FitConfig) -> str | None:
    """When to prune: never, at initialisation, or after growth (``prune.when`` resolved)."""
    if config.prune.method == "none":
        return None
    if config.prune.when == "auto":
        return "after-growth" if config.growth.enabled else "at-init"
    return config.prune.when
