"""The metadata properties of an exported model: what it predicts and from which columns.

ONNX metadata values are text; everything that is not text already is stored as JSON, so a
reader in any language gets lists and numbers back with one JSON parse. No machine path is
ever stored. ``inputs`` lists every source column with its kind (``number`` or ``text``);
``numbers_input`` the columns of the grouped ``numbers`` input, in order (empty when every
column is an input of its own); ``categories`` each categorical column's known values;
``decimal_comma`` the numeric columns whose numbers, given as text, have a decimal comma;
``dropped`` the columns training read and left out (rows may hold them unremarked); and
``target`` the target column's name (absent from models exported before they were written:
nothing is then checked); ``source`` the SHA-256 of the run files it was exported from
(weights, architecture, preprocessing), by name, so that a model is matched to its run.
"""

from __future__ import annotations

import json
from typing import Any

NUMBER, TEXT = "number", "text"  # the kinds of input column
MIN_OPSET = 13  # Squeeze/Softmax/Gemm in their current form; the latest is the installed onnx's
DEFAULT_OPSET = 18
# The one float32 input of every numeric column, in the grouped layout (the default).
NUMBERS_INPUT = "numbers"

# Every key growml writes; a model without them was not exported by growml.
KEYS = (
    "growml_version",
    "task",
    "classes",
    "threshold",
    "inputs",
    "numbers_input",
    "hidden_widths",
    "activation",
    "parameters",
    "test_metrics",
)


def encode(info: dict[str, Any]) -> dict[str, str]:
    """``info`` (the ``KEYS``) as ONNX metadata properties."""
    return {
        key: value if isinstance(value, str) else json.dumps(info[key])
        for key, value in info.items()
    }


def decode(properties: dict[str, str]) -> dict[str, Any] | None:
    """The values ``encode`` stored, or None when a key is missing or not JSON."""
    if any(key not in properties for key in KEYS):
        return None
    try:
        info = {
            key: properties[key]
            if key in ("growml_version", "task", "activation")
            else json.loads(properties[key])
            for key in KEYS
        }
        info["categories"] = json.loads(properties.get("categories", "{}"))
        info["decimal_comma"] = json.loads(properties.get("decimal_comma", "[]"))
        info["dropped"] = json.loads(properties.get("dropped", "[]"))
        info["target"] = properties.get("target") or None  # text, like the version
        info["source"] = json.loads(properties.get("source", "{}"))
        return info
    except json.JSONDecodeError:
        return None
