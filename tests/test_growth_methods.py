"""Growth methods as classes with their own settings sections, and growable layers: every
method name has its class, each section reaches its method, old setting paths still work."""

import warnings
from typing import get_args

import pytest
import torch

from growml.config import GrowthConfig, resolve_config
from growml.errors import ConfigError, GrowmlWarning
from growml.growth.methods import METHODS, Measurement, make_method
from growml.growth.statistics import collect_statistics
from growml.losses import CrossEntropy
from growml.nn import GrowingMLP


def test_every_growth_method_setting_has_its_class():
    choices = get_args(GrowthConfig.model_fields["method"].annotation)
    assert sorted(METHODS) == sorted(choices)
    for name in choices:
        assert make_method(GrowthConfig(method=name)).name == name


@pytest.mark.parametrize(
    ("old", "value", "new"),
    [
        ("growth.max_step", 0.5, ["growth.pool.max_step"]),
        ("growth.random_directions", 3, ["growth.pool.random_directions"]),
        ("growth.max_amplitude", 0.2, ["growth.tiny.max_amplitude"]),
        ("growth.noise_factor", 2.0, ["growth.tiny.noise_factor", "growth.gradmax.noise_factor"]),
        (
            "growth.pairing",
            "never",
            ["growth.tiny.pairing", "growth.gradmax.pairing", "growth.random.pairing"],
        ),
    ],
)
def test_an_old_growth_setting_path_still_works_and_names_its_new_place(old, value, new):
    with pytest.warns(GrowmlWarning, match="has moved to") as caught:
        from_flag = resolve_config(overrides=[(old, value)])
    message = str(caught[0].message)
    assert all(repr(path) in message for path in new)
    with pytest.warns(GrowmlWarning, match=repr(old)):
        section, name = old.split(".")
        from_recipe = resolve_config({section: {name: value}})
    expected = resolve_config(overrides=[(path, value) for path in new])
    assert from_flag == expected and from_recipe == expected


def test_an_old_path_given_beside_its_new_one_is_refused_in_one_sentence():
    with pytest.warns(GrowmlWarning), pytest.raises(ConfigError) as error:
        resolve_config({"growth": {"max_step": 0.5, "pool": {"max_step": 2.0}}})
    assert str(error.value) == (
        "growth.max_step and growth.pool.max_step are both set; keep growth.pool.max_step."
    )


def test_a_flag_overrides_an_old_path_of_the_recipe():
    with pytest.warns(GrowmlWarning):
        config = resolve_config({"growth": {"max_step": 0.5}}, [("growth.pool.max_step", 2.0)])
    assert config.growth.pool.max_step == 2.0


def test_the_python_settings_take_old_names_as_keywords():
    config = GrowthConfig(method="tiny", noise_factor=0.25, max_step=0.5)
    assert config.tiny.noise_factor == config.gradmax.noise_factor == 0.25
    assert config.pool.max_step == 0.5


def test_each_method_reads_its_own_section():
    loss = CrossEntropy(2)
    model = GrowingMLP(3, [2], 2, "tanh", generator=torch.Generator().manual_seed(0))
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(1)).double()
    target = loss.prepare_target((x[:, 0] * x[:, 1] > 0).long().numpy()).double()
    (stats,) = collect_statistics(model.double(), loss, x, target)
    layer = model.growable_layers()[0]

    def offered(**settings):
        method = make_method(GrowthConfig(**settings))
        return method.propose(Measurement(layer, stats), 4, torch.Generator()).neurons

    # Another method's section never reaches it: gradmax's bar is its own.
    low, high = {"noise_factor": 1e-6}, {"noise_factor": 1e9}
    assert offered(method="tiny", tiny=high, gradmax=low) == 0
    assert offered(method="tiny", tiny=low, gradmax=high) > 0
    assert offered(method="gradmax", gradmax=high, tiny=low) == 0
    assert offered(method="gradmax", gradmax=low, tiny=high) > 0
    tiny_cap = make_method(GrowthConfig(method="tiny", tiny={"max_amplitude": 0.5}))
    pool_cap = make_method(GrowthConfig(pool={"max_step": 0.5}))
    assert tiny_cap.largest_step() == 0.25 and pool_cap.largest_step() == 0.5


def test_a_hidden_layers_sample_is_its_input_its_output_and_the_next_gradient():
    model = GrowingMLP(3, [4, 2], 2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cache = model.forward_cached(x)
        gradients = model.backward(cache, torch.ones(5, 2), parameter_grads=False)
    second = model.growable_layers()[1]
    sample = second.sample(cache, gradients)
    assert sample.below is cache.inputs[1] and sample.current is cache.inputs[2]
    assert sample.gradient is gradients[2]
    assert (second.fan_in, second.width, second.fan_out) == (4, 2, 2)


def test_a_run_saved_before_the_sections_loads_its_settings_in_them_without_a_warning():
    from pathlib import Path

    from growml.runs import load_run

    fixture = Path(__file__).parent / "fixtures" / "format1-iris"
    assert "max_step" in (fixture / "config.yaml").read_text()  # the old place
    with warnings.catch_warnings():
        warnings.simplefilter("error", GrowmlWarning)
        run = load_run(fixture)
        config = resolve_config(run.config)
    assert run.config["growth"]["pool"]["max_step"] == config.growth.pool.max_step == 1.0
    assert "max_step" not in run.config["growth"]


def test_random_growth_adds_even_counts_for_relu_like_tinys_pairs():
    model = GrowingMLP(3, [2], 2, generator=torch.Generator().manual_seed(0))
    loss = CrossEntropy(2)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    target = loss.prepare_target((x[:, 0] > 0).long().numpy())
    measured = make_method(GrowthConfig(method="random")).measure(model, loss, x, target)[0]

    def added(**settings):
        method = make_method(GrowthConfig(method="random", **settings))
        return method.propose(measured, 5, torch.Generator()).neurons

    assert added() == 4 and added(random={"pairing": "always"}) == 4
    assert added(random={"pairing": "never"}) == 5


def test_a_method_class_must_write_its_proposal():
    from growml.growth.methods import GrowthMethod, _Linearised

    class Unfinished(GrowthMethod):
        name = "unfinished"

    class NoProposal(_Linearised):
        name = "no-proposal"

    for incomplete in (Unfinished, NoProposal):
        with pytest.raises(TypeError, match="abstract"):
            incomplete(GrowthConfig())


def test_what_growth_measures_and_proposes_cannot_be_changed_afterwards():
    import dataclasses

    from growml.growth.pool import LayerRows, pool_proposal
    from growml.growth.statistics import collect_rows
    from growml.growth.tiny import tiny_proposal

    loss = CrossEntropy(2)
    model = GrowingMLP(3, [2], 2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(80, 3, generator=torch.Generator().manual_seed(1))
    target = loss.prepare_target((x[:, 0] * x[:, 1] > 0).long().numpy())
    measured = make_method(GrowthConfig()).measure(model, loss, x, target)[0]
    option = make_method(GrowthConfig()).propose(measured, 2, torch.Generator())
    (rows,) = collect_rows(model, loss, x, target)
    assert isinstance(rows, LayerRows)
    proposal = pool_proposal(rows, torch.relu, torch.zeros(0, 4, dtype=torch.float64), 2,
                             torch.Generator())  # fmt: skip
    tiny = tiny_proposal(measured.statistics)
    for record, field in [
        (measured, "rows"),
        (option, "gain"),
        (rows, "below"),
        (proposal, "bar"),
        (tiny, "noise_floor"),
        (measured.statistics, "rows"),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, None)


def test_the_selection_of_the_pool_cannot_be_changed_afterwards():
    import dataclasses

    from growml.growth.pool import greedy_selection

    features = torch.randn(30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    selection = greedy_selection(features, features[:, :2].clone(), 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        selection.gains = []


def test_the_measured_rows_hold_no_autograd_graph():
    from growml.growth.statistics import collect_rows

    loss = CrossEntropy(2)
    model = GrowingMLP(3, [2], 2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    target = loss.prepare_target((x[:, 0] > 0).long().numpy())
    (rows,) = collect_rows(model, loss, x, target)
    assert not any(t.requires_grad for t in (rows.below, rows.current, rows.gradient))
    (stats,) = collect_statistics(model, loss, x, target)
    assert not any(t.requires_grad for t in (stats.S1, stats.M, stats.S2, stats.M2, stats.P))


def test_a_proposal_without_a_noise_estimate_counts_every_positive_lambda():
    from growml.growth.tiny import Proposal

    lambdas = torch.tensor([2.0, 0.5, 0.0], dtype=torch.float64)
    proposal = Proposal(torch.zeros(3, 2), torch.zeros(2, 3), lambdas, None, 0.0, 1.0)
    assert proposal.noise_floor == 0.0 and proposal.significant(3) == 2


def test_a_recipe_setting_both_places_is_refused_by_the_command_line(tmp_path):
    from growml.cli import app
    from typer.testing import CliRunner

    recipe = tmp_path / "both.yaml"
    recipe.write_text("growth:\n  max_step: 0.5\n  pool:\n    max_step: 2\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", "iris", "--recipe", str(recipe), "--out", str(out)])
    assert result.exit_code == 2
    assert "error: growth.max_step and growth.pool.max_step are both set" in result.output
    assert not out.exists()
