"""The names of the files in a run directory (no torch needed to know them)."""

CONFIG = "config.yaml"
MODEL_WEIGHTS = "model.safetensors"
MODEL_SPEC = "model.json"
PREPROCESS = "preprocess.json"
METRICS = "metrics.json"
HISTORY = "history.jsonl"
PLOTS = "plots"
# What a fit with diagnostics.enabled records (growml.diagnose.recording): the probe batch and
# each weight's value at its birth; and what ``growml diagnose`` writes from it.
DIAGNOSTICS_RECORD = "diagnostics.safetensors"
DIAGNOSTICS = "diagnostics.json"
# What ``growml export`` writes into a run; a user may delete it to predict with torch.
EXPORT = "model.onnx"
# The files of a run, each listed with its digest in digests.json (and every plot).
RUN_FILES = (CONFIG, MODEL_WEIGHTS, MODEL_SPEC, PREPROCESS, METRICS, HISTORY, DIAGNOSTICS_RECORD)
# The run files whose content an ONNX export holds: a model matches a run only with them.
SOURCE_FILES = (MODEL_WEIGHTS, MODEL_SPEC, PREPROCESS)

__all__ = [
    "CONFIG",
    "DIAGNOSTICS",
    "DIAGNOSTICS_RECORD",
    "EXPORT",
    "HISTORY",
    "METRICS",
    "MODEL_SPEC",
    "MODEL_WEIGHTS",
    "PLOTS",
    "PREPROCESS",
    "RUN_FILES",
    "SOURCE_FILES",
]
