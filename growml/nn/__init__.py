"""The growable network."""

from growml.nn.activations import ACTIVATIONS, Activation, get_activation
from growml.nn.mlp import ForwardCache, GrowingMLP, ModelSpec, ParamResize

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ForwardCache",
    "GrowingMLP",
    "ModelSpec",
    "ParamResize",
    "get_activation",
]
