"""When may a pruner judge a growing network? Trials that would have ended best, pruned early.

A study runs without pruning (``tune.pruner=none``), so every trial trains to its end and keeps
its run. Each trial's recorded history is then replayed, in the study's order, through the
observer that reports to Optuna (``growml.tune.TrialPruning``) under the median rule (after 5
trials and 5 epochs, as ``growml tune`` sets it), once for each settling time: the epochs after
a growth step that added neurons during which the trial is not judged (0 is judging every
epoch, the rule before growth was taken into account). Counted for each: trials pruned, the
trials that would have ended among the best (the top ``--top`` validation values) pruned,
and the share of epochs saved.

    .venv/bin/python benchmarks/tune_pruning.py [--trials 30] [--data iris wine]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import optuna
from optuna.trial import TrialState

import growml
from growml.tune import TrialPruning, TuneConfig, tune
from growml.tune.storage import make_pruner, quiet_optuna

RESULTS = Path(__file__).parent / "results"
SETTLING = (0, 5, 10, 20)


def finished_trials(data: str, trials: int, work: Path) -> list[tuple[float, list]]:
    """(final validation value, history) of every completed trial of an unpruned study."""
    config = growml.resolve_config({"data": {"source": data}})
    result = tune(config, TuneConfig(pruner="none", seed=0), trials=trials, out=work / data)
    study = optuna.load_study(study_name=data, storage=f"sqlite:///{result.path / 'study.db'}")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    return [
        (trial.values[0], growml.load_run(result.path / trial.user_attrs["run"]).history())
        for trial in done
    ]


def replay(finished: list[tuple[float, list]], settle: int) -> list[tuple[bool, int, int]]:
    """(pruned, epochs trained, epochs in all) of each trial under the median rule."""
    with quiet_optuna():
        study = optuna.create_study(direction="maximize", pruner=make_pruner("median"))
    outcomes = []
    for value, history in finished:
        trial = study.ask()
        observer = TrialPruning(trial, "accuracy", settle=settle)
        try:
            for event in history:
                observer(event)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            outcomes.append((True, observer.step, _epochs(history)))
            continue
        study.tell(trial, value)
        outcomes.append((False, observer.step, observer.step))
    return outcomes


def _epochs(history: list) -> int:
    return sum(event.event == "epoch" for event in history)


def measure(data: str, trials: int, top: int, work: Path) -> list[dict]:
    finished = finished_trials(data, trials, work)
    best = sorted(range(len(finished)), key=lambda i: -finished[i][0])[:top]
    rows = []
    for settle in SETTLING:
        outcomes = replay(finished, settle)
        trained = sum(epochs for _, epochs, _ in outcomes)
        total = sum(epochs for _, _, epochs in outcomes)
        rows.append(
            {
                "data": data,
                "settle_epochs": settle,
                "trials": len(finished),
                "pruned": sum(pruned for pruned, _, _ in outcomes),
                f"top_{top}_pruned": sum(outcomes[i][0] for i in best),
                "best_pruned": outcomes[best[0]][0],
                "epochs_saved": 1 - trained / total,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--data", nargs="+", default=["iris", "wine"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for data in args.data:
            rows += measure(data, args.trials, args.top, Path(work))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tune_pruning.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = markdown(rows, args.top)
    (RESULTS / "tune_pruning.md").write_text(table)
    print(table, end="")


def markdown(rows: list[dict], top: int) -> str:
    columns = ["data", "settle epochs", "trials", "pruned", f"top {top} pruned", "best pruned"]
    lines = [
        "| " + " | ".join([*columns, "epochs saved"]) + " |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['data']} | {row['settle_epochs']} | {row['trials']} | {row['pruned']} | "
            f"{row[f'top_{top}_pruned']} | {'yes' if row['best_pruned'] else 'no'} | "
            f"{100 * row['epochs_saved']:.0f} % |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
