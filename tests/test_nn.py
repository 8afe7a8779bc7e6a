"""The growable MLP: hand-derived backward against autograd, shape changes, spec round-trip."""

import json

import pytest
import torch

from growml.nn import ACTIVATIONS, GrowingMLP, ModelSpec


def _network(widths, activation, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return GrowingMLP(5, widths, 3, activation, generator=generator).to(dtype)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("widths", [[1], [7], [4, 1, 6]])
def test_backward_matches_autograd(activation, widths):
    model = _network(widths, activation)
    x = torch.randn(11, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    output_grad = torch.randn(11, 3, dtype=torch.float64)

    # Reference: autograd on the same function, with the pre-activations kept.
    preactivations, h = [], x
    for index, (weight, bias) in enumerate(zip(model.weights, model.biases, strict=True)):
        a = h @ weight.t() + bias
        a.retain_grad()
        preactivations.append(a)
        h = a if index == len(widths) else ACTIVATIONS[activation].fn(a)
    h.backward(output_grad)
    expected = [p.grad.clone() for p in model.parameters()]
    expected_preactivation = [a.grad for a in preactivations]

    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        cache = model.forward_cached(x)
        torch.testing.assert_close(cache.output, model(x))
        got_preactivation = model.backward(cache, output_grad)
    for got, want in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(got.grad, want, rtol=1e-10, atol=1e-12)
    for got, want in zip(got_preactivation, expected_preactivation, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_adding_neurons_with_zero_outgoing_weights_keeps_the_function(activation):
    model = _network([3, 4], activation)
    x = torch.randn(20, 5, dtype=torch.float64)
    before = model(x).detach()
    incoming = torch.randn(2, 3, dtype=torch.float64)
    model.add_neurons(1, incoming, torch.randn(2, dtype=torch.float64), torch.zeros(3, 2))
    assert model.hidden_widths == [3, 6]
    torch.testing.assert_close(model(x).detach(), before, rtol=0, atol=1e-12)


def test_added_neurons_are_used_when_outgoing_weights_are_not_zero():
    model = _network([2], "tanh")
    x = torch.randn(20, 5, dtype=torch.float64)
    before = model(x).detach()
    model.add_neurons(0, torch.ones(1, 5), torch.zeros(1), torch.ones(3, 1))
    expected = before + torch.tanh(x.sum(1, keepdim=True))
    torch.testing.assert_close(model(x).detach(), expected)


def test_removing_neurons_equals_the_smaller_network():
    model = _network([5, 4], "relu")
    x = torch.randn(20, 5, dtype=torch.float64)
    keep = [0, 2, 3]
    small = GrowingMLP(5, [3, 4], 3).to(torch.float64)
    with torch.no_grad():
        small.weights[0].copy_(model.weights[0][keep])
        small.biases[0].copy_(model.biases[0][keep])
        small.weights[1].copy_(model.weights[1][:, keep])
        small.biases[1].copy_(model.biases[1])
        small.weights[2].copy_(model.weights[2])
        small.biases[2].copy_(model.biases[2])
    parameters_before = [id(p) for p in model.parameters()]
    model.remove_neurons(0, [1, 4])
    assert model.hidden_widths == [3, 4]
    assert [id(p) for p in model.parameters()] == parameters_before
    torch.testing.assert_close(model(x), small(x))


def test_shape_changes_refuse_impossible_requests():
    model = _network([2], "relu")
    with pytest.raises(ValueError, match="cannot remove all"):
        model.remove_neurons(0, [0, 1])
    with pytest.raises(IndexError):
        model.remove_neurons(0, [2])
    with pytest.raises(IndexError):
        model.add_neurons(1, torch.zeros(1, 2), torch.zeros(1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="outgoing"):
        model.add_neurons(0, torch.zeros(1, 5), torch.zeros(1), torch.zeros(2, 1))


def test_width_one_layers_train_without_nan():
    model = _network([1, 1], "relu", dtype=torch.float32)
    x = torch.randn(64, 5)
    with torch.no_grad():
        cache = model.forward_cached(x)
        model.backward(cache, torch.randn(64, 3))
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_spec_round_trips_through_json():
    model = _network([4, 2], "gelu")
    spec = ModelSpec.from_dict(json.loads(json.dumps(model.spec().to_dict())))
    assert spec == model.spec()
    rebuilt = GrowingMLP.from_spec(spec).to(torch.float64)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(rebuilt(x), model(x))


def test_relu_backprop_keeps_the_gradient_exactly_where_the_preactivation_is_not_negative():
    """relu'(0) = 1 (−0 too), relu'(a) = 0 for every negative a, however small."""
    for dtype in (torch.float32, torch.float64):
        info = torch.finfo(dtype)
        least = info.smallest_normal * info.eps
        a = torch.tensor([0.0, -0.0, least, -least, -info.smallest_normal, 1.0, -1.0, -1e-30])
        a = a.to(dtype)
        grad = torch.arange(1.0, len(a) + 1, dtype=dtype)
        relu = ACTIVATIONS["relu"]
        expected = grad * (a >= 0)
        assert torch.equal(relu.backprop(grad.clone(), a, torch.relu(a)), expected)
