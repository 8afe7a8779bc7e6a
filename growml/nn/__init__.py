"""The growable network."""

from growml.nn.activations import ACTIVATIONS, Activation, get_activation
from growml.nn.growable import GrowableLayer, LayerSample, ParamResize
from growml.nn.mlp import ForwardCache, GrowingMLP, HiddenLayer, ModelSpec

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ForwardCache",
    "GrowableLayer",
    "GrowingMLP",
    "HiddenLayer",
    "LayerSample",
    "ModelSpec",
    "ParamResize",
    "get_activation",
]
