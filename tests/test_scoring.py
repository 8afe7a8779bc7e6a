"""Which metric measures a run: the monitor, the threshold's metric and the ranking metric,
chosen in one place for every loss and task."""

import pytest

import growml
from growml.errors import ConfigError
from growml.scoring import check_settings, ranking_metric, threshold_metric


@pytest.mark.parametrize(
    ("task", "monitor", "allowed"),
    [
        ("classification", "loss", True),
        ("classification", "accuracy", True),
        ("classification", "macro_f1", True),
        ("classification", "r2", False),
        ("regression", "loss", True),
        ("regression", "r2", True),
        ("regression", "accuracy", False),
        ("regression", "macro_f1", False),
    ],
)
def test_the_monitor_must_apply_to_the_task(task, monitor, allowed):
    config = growml.resolve_config(overrides=[("train.monitor", monitor)])
    if allowed:
        check_settings(config, task)
        return
    with pytest.raises(ConfigError) as caught:
        check_settings(config, task)
    choices = "accuracy, loss, macro_f1" if task == "classification" else "loss, r2"
    assert str(caught.value) == (
        f"train.monitor={monitor!r} does not apply to {task}; choose one of {choices}."
    )


@pytest.mark.parametrize(
    ("loss", "metric"),
    [
        ("soft-f1", "f1"),
        ("soft-fbeta", "fbeta"),
        ("soft-auroc", "f1"),
        ("soft-accuracy", "accuracy"),
        ("bce", "none"),
        ("cross-entropy", "none"),
        ("auto", "none"),
    ],
)
def test_a_soft_set_loss_has_its_threshold_chosen_for_the_metric_it_stands_for(loss, metric):
    assert threshold_metric("auto", loss) == metric
    assert threshold_metric("accuracy", loss) == "accuracy"  # asked for: always kept


@pytest.mark.parametrize(
    ("task", "binary", "loss", "metric"),
    [
        ("classification", True, "soft-f1", "f1"),
        ("classification", True, "soft-fbeta", "f1"),
        ("classification", True, "soft-auroc", "accuracy"),
        ("classification", True, "bce", "accuracy"),
        ("classification", False, "soft-f1", "accuracy"),
        ("regression", False, "mse", "r2"),
    ],
)
def test_auto_ranks_by_f1_only_for_a_binary_run_of_a_soft_f_loss(task, binary, loss, metric):
    assert ranking_metric("auto", task, binary, loss) == metric


def test_a_ranking_metric_that_does_not_apply_is_refused_with_the_choices():
    assert ranking_metric("f1", "classification", True, "bce") == "f1"
    assert ranking_metric("macro_f1", "classification", False, "auto") == "macro_f1"
    with pytest.raises(ConfigError, match="this classification data; choose one of accuracy, "):
        ranking_metric("f1", "classification", False, "auto")
    with pytest.raises(ConfigError, match="this binary classification data; choose one of acc"):
        ranking_metric("r2", "classification", True, "auto")
    with pytest.raises(ConfigError, match="--metric accuracy does not apply to this regression"):
        ranking_metric("accuracy", "regression", False, "mse")
