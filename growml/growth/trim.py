"""Trimming after growth: remove the hidden neurons a grown network does without.

Growth adds neurons where the training loss says they pay; by the end some carry little (later
neurons took over their part), some are dead on the data, and some duplicate a twin. Trimming
ranks the hidden neurons by the validation metric the run monitors (``train.monitor``) of the
network without each one, removes them least harm first while that metric (and the training
loss) stays within a relative ``tolerance`` of the untrimmed network's, and stops at the
first removal that costs more. The rule and why: ``docs/trimming.md``.

The network without a set of neurons is computed by ``growml.growth.removal`` (the kept
neurons of each layer taking over what they can of the removed ones' part); each candidate is
judged exactly, by one validation forward of the network's own ``forward`` with the change
applied, and the training loss guards the search (it must stay within the same tolerance).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from growml.events import Event, TrimEnd, TrimStep
from growml.growth.removal import Neuron, Reconstruction, merge_twins, remove, trimmed
from growml.nn.mlp import GrowingMLP
from growml.nn.optimizer_state import forget_stale_state
from growml.train.metrics import HIGHER_IS_BETTER
from growml.train.trainer import Trainer, TrainResult, choose_threads, torch_threads
from growml.train.validation import Validation, model_device

# Candidates ranked exactly per round at most; beyond, the others wait for a later round,
# chosen by the size of their outgoing contribution (a wide network's cost stays bounded).
EXACT_RANKING = 256


@dataclass(frozen=True)
class Criterion:
    """When scores are no worse than their ``baseline``: each within ``tolerance`` × |its
    baseline| of it, in its direction (``higher_is_better``). The first score orders the
    candidates; trimming's are the validation metric, then the training loss."""

    baseline: tuple[float, ...]
    tolerance: float
    higher_is_better: tuple[bool, ...]

    def accepts(self, scores: tuple[float, ...]) -> bool:
        return all(
            score >= base - self.tolerance * abs(base)
            if higher
            else score <= base + self.tolerance * abs(base)
            for score, base, higher in zip(
                scores, self.baseline, self.higher_is_better, strict=True
            )
        )

    def accepts_first(self, scores: tuple[float, ...]) -> bool:
        """Whether the first score alone is no worse than its baseline."""
        first = Criterion(self.baseline[:1], self.tolerance, self.higher_is_better[:1])
        return first.accepts(scores[:1])

    def order(self, scores: tuple[float, ...]) -> float:
        """Sort key: smaller is less harm."""
        return -scores[0] if self.higher_is_better[0] else scores[0]


class TrimmingScores:
    """The validation ``monitor`` and the training loss (``training``: rows, their prepared
    target and the loss) of ``model`` without the neurons given (``trimmed``).

    Called with a set of neurons, it runs the whole network. ``each_added`` scores many sets
    that differ by one neuron, as a ranking round does, for a fraction of that: removing
    neuron j of hidden layer l changes only layer l + 1's weights, so what layer l + 1 reads
    is the same for every neuron of layer l. It is computed once per layer, and each neuron's
    network runs on from there (``GrowingMLP.layer_input``, ``forward_from``): the same
    operations on the same numbers, so the same scores to the last bit. In a convolutional
    network most of the forward lies in the blocks below.
    """

    def __init__(
        self,
        model: GrowingMLP,
        validation: Validation,
        monitor: str,
        reconstruction: Reconstruction,
        training: tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Tensor]],
    ) -> None:
        self.model, self.validation, self.monitor = model, validation, monitor
        self.reconstruction = reconstruction
        self.x, self.target, self.loss = training

    def __call__(self, without: Sequence[Neuron]) -> tuple[float, float]:
        return self._from(0, [self.validation.x, self.x], without)

    def each_added(
        self, removed: Sequence[Neuron], neurons: Sequence[Neuron]
    ) -> list[tuple[float, float]]:
        """The scores without ``removed`` and each of ``neurons`` in turn, in their order."""
        found: dict[Neuron, tuple[float, float]] = {}
        for layer in sorted({layer for layer, _ in neurons}):
            with torch.no_grad(), trimmed(self.model, removed, self.reconstruction):
                reads = [
                    self.model.layer_input(rows, layer + 1) for rows in (self.validation.x, self.x)
                ]
            for neuron in neurons:
                if neuron[0] == layer:
                    found[neuron] = self._from(layer + 1, reads, [*removed, neuron])
        return [found[neuron] for neuron in neurons]

    def _from(
        self, layer: int, reads: list[Tensor], without: Sequence[Neuron]
    ) -> tuple[float, float]:
        """The scores of the network without ``without``, run on from what layer ``layer``
        reads of the validation and the training rows (``reads``)."""
        model = self.model
        with torch.no_grad(), trimmed(model, without, self.reconstruction):
            if layer == 0:  # the whole network, as its own forward runs it
                outputs = [model(rows) for rows in reads]
            else:
                outputs = [model.forward_from(layer, h) for h in reads]
            metric = self.validation.of_output(outputs[0])[self.monitor]
            return metric, float(self.loss(outputs[1], self.target))


def rank_neurons(
    model: GrowingMLP,
    score: Callable[[Sequence[Neuron]], tuple[float, ...]],
    criterion: Criterion,
    removed: Sequence[Neuron],
    contribution: Callable[[], dict[Neuron, float]] | None = None,
    exact: int = EXACT_RANKING,
) -> list[tuple[tuple[float, ...], Neuron]]:
    """(score without it and ``removed``, neuron) for every neuron that may still go (each
    layer keeps one), least harm first; ties by layer and index. Beyond ``exact`` candidates,
    those of smallest ``contribution`` are ranked."""
    gone = set(removed)
    widths = model.hidden_widths
    candidates = [
        (layer, index)
        for layer, width in enumerate(widths)
        for index in range(width)
        if (layer, index) not in gone and width - sum(1 for g in gone if g[0] == layer) > 1
    ]
    if len(candidates) > exact and contribution is not None:
        sizes = contribution()
        candidates = sorted(candidates, key=lambda n: (sizes[n], n))[:exact]
    if isinstance(score, TrimmingScores):
        values = score.each_added(removed, candidates)
    else:
        values = [score([*removed, neuron]) for neuron in candidates]
    scored = list(zip(values, candidates, strict=True))
    return sorted(scored, key=lambda pair: (criterion.order(pair[0]), pair[1]))


def trim_neurons(
    model: GrowingMLP,
    score: Callable[[Sequence[Neuron]], tuple[float, ...]],
    criterion: Criterion,
    contribution: Callable[[], dict[Neuron, float]] | None = None,
    exact: int = EXACT_RANKING,
) -> list[Neuron]:
    """The neurons to remove: greedily, least harm first, while ``criterion`` accepts the
    network without them; stops at the first removal that it refuses.

    Each round ranks the remaining neurons exactly (``rank_neurons``), then tries to remove at
    once all of those whose removal alone is acceptable, halving the batch until the network
    without it is acceptable (a batch of one always is: its score was ranked). A round costs
    one forward per candidate and a few more; rounds shrink the network geometrically when
    neurons go in bulk.
    """
    removed: list[Neuron] = []
    while True:
        ranked = rank_neurons(model, score, criterion, removed, contribution, exact)
        fitting = _leaving_one_per_layer(
            model, removed, [neuron for value, neuron in ranked if criterion.accepts(value)]
        )
        if not fitting:
            return removed
        batch = len(fitting)
        while batch > 1 and not criterion.accepts(score([*removed, *fitting[:batch]])):
            batch //= 2
        removed.extend(fitting[:batch])


def _leaving_one_per_layer(
    model: GrowingMLP, removed: Sequence[Neuron], neurons: Sequence[Neuron]
) -> list[Neuron]:
    """``neurons`` in order, less those that would take the last neuron of a layer."""
    room = list(model.hidden_widths)
    for layer, _ in removed:
        room[layer] -= 1
    taken = []
    for neuron in neurons:
        if room[neuron[0]] > 1:
            room[neuron[0]] -= 1
            taken.append(neuron)
    return taken


def contribution_sizes(model: GrowingMLP, x: Tensor) -> Callable[[], dict[Neuron, float]]:
    """Each neuron's outgoing contribution on ``x``: RMS activation × norm of its outgoing
    column (what it adds to the next layer, in size; a channel's over its positions and the
    next block's kernel taps)."""

    def sizes() -> dict[Neuron, float]:
        with torch.no_grad():
            cache = model.forward_cached(x)
        found = {}
        for layer in model.growable_layers():
            activations = model.unit_activations(cache, layer.index)  # a block's: 4-D
            rms = activations.pow(2).transpose(0, 1).reshape(layer.width, -1).mean(1).sqrt()
            outgoing = model.weights[layer.index + 1].detach().transpose(0, 1)
            norms = outgoing.reshape(layer.width, -1).norm(dim=1)
            for index, size in enumerate((rms * norms).tolist()):
                found[(layer.index, index)] = size
        return found

    return sizes


# Training rows that judge and refit trimming, at most.
TRAINING_ROWS = 4096


def _training_rows(
    trainer: Trainer,
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    device: torch.device,
) -> tuple[Tensor, Tensor, Callable[[Tensor, Tensor], Tensor]]:
    """Up to ``TRAINING_ROWS`` training rows (a seeded sample) on ``device``, their target as
    the loss takes it, and the loss."""
    rows = np.arange(len(x))
    if len(x) > TRAINING_ROWS:
        generator = torch.Generator().manual_seed(trainer.seed)
        drawn = torch.randperm(len(x), generator=generator, device="cpu")
        rows = np.sort(drawn[:TRAINING_ROWS].numpy())
    target = trainer.loss.prepare_target(y[rows], None if weights is None else weights[rows])
    rows_x = torch.as_tensor(x[rows], dtype=torch.float32, device="cpu")
    return rows_x.to(device), target.to(device), trainer.loss


def trim_after_growth(
    model: GrowingMLP,
    trainer: Trainer,
    arrays: Sequence[np.ndarray],
    weights: dict[str, np.ndarray | None],
    tolerance: float,
    emit: Callable[[Event], None],
) -> tuple[dict[str, Any], TrainResult | None]:
    """Trim the grown ``model`` that ``trainer`` trained on ``arrays`` (x, y train, x, y
    validation) with ``weights``, fine-tune it with the same optimizer (``Trainer.fine_tuning``),
    and keep it only if its validation ``train.monitor`` is within ``tolerance`` of the
    untrimmed network's; otherwise the untrimmed network comes back. Emits ``TrimStep`` and
    ``TrimEnd``; returns the summary metrics.json holds and the fine-tuning's result (None when
    nothing was removed)."""
    started = time.perf_counter()
    monitor = trainer.config.monitor
    optimizer = trainer.optimizer_
    device = model_device(model)
    validation = Validation(trainer, arrays[2], arrays[3], weights["validation_weights"], device)
    if validation.x.device != device:  # memory-mapped rows, which trimming reads many times
        validation.x = validation.x.to(device)
    # Many small forwards: on torch's default threads they wait on each other (40× slower).
    threads = choose_threads(trainer.config.threads, model, len(validation.x))
    with torch_threads(threads):
        untrimmed = [param.detach().clone() for param in model.parameters()]
        births = model.births.snapshot() if model.births is not None else None
        widths_before, parameters_before = model.hidden_widths, model.n_parameters()
        merged = merge_twins(model, optimizer)
        training = _training_rows(trainer, arrays[0], arrays[1], weights["train_weights"], device)
        reconstruction = Reconstruction(model, training[0])
        score = TrimmingScores(model, validation, monitor, reconstruction, training)
        criterion = Criterion(score([]), tolerance, (monitor in HIGHER_IS_BETTER, False))
        removed = trim_neurons(model, score, criterion, contribution_sizes(model, validation.x))
        remove(model, removed, reconstruction, optimizer)
        after = score([])
    trimmed_widths, trimmed_parameters = model.hidden_widths, model.n_parameters()
    step = TrimStep(
        monitor=monitor,
        tolerance=tolerance,
        validation_before=criterion.baseline[0],
        validation_after=after[0],
        removed=[sum(1 for layer, _ in removed if layer == k) for k in range(len(merged))],
        merged=merged,
        widths_before=widths_before,
        hidden_widths=trimmed_widths,
        parameters_before=parameters_before,
        parameters=trimmed_parameters,
        seconds=time.perf_counter() - started,
    )
    emit(step)
    tuned = None
    if removed:
        tuned = trainer.fine_tuning().run(model, *arrays, optimizer=optimizer, **weights)
        with torch_threads(threads):
            final = score([])
        # Validation alone decides now: the search is over, and a smaller network that was
        # fine-tuned fits its training rows less closely than the overgrown one, by design.
        kept = criterion.accepts_first(final)
        if not kept:
            for param, saved in zip(model.parameters(), untrimmed, strict=True):
                param.data = saved
            forget_stale_state(optimizer)
            if births is not None:
                model.births.restore(births)
    else:
        final, kept = (after if any(merged) else None), any(merged)
    emit(
        TrimEnd(
            kept=kept,
            monitor=monitor,
            validation_untrimmed=criterion.baseline[0],
            validation_trimmed=final[0] if final else None,
            epochs=tuned.epochs if tuned else 0,
            hidden_widths=model.hidden_widths,
            parameters=model.n_parameters(),
        )
    )
    summary = {
        "monitor": monitor,
        "tolerance": tolerance,
        "kept": kept,
        "removed": step.removed,
        "merged": merged,
        "widths_before": widths_before,
        "trimmed_widths": trimmed_widths,
        "parameters_before": parameters_before,
        "parameters_after": trimmed_parameters,
        "validation_before": criterion.baseline[0],
        "validation_after_removal": after[0],
        "validation_after": final[0] if final else None,
        "training_loss_before": criterion.baseline[1],
        "training_loss_after_removal": after[1],
        "training_loss_after": final[1] if final else None,
        "epochs": tuned.epochs if tuned else 0,
        "seconds": time.perf_counter() - started - (tuned.seconds if tuned else 0.0),
    }
    return summary, tuned
