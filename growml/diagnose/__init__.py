"""What the theory behind growth says about a data set and a trained network (docs/theory.md).

* ``measures``: the width bound of Zhang et al. (2021), per-example gradients and their
  confusion (Sankararaman et al., 2020), and the laziness of training — relative weight change
  and drift of the empirical neural tangent kernel (Woodworth et al., 2020).
* ``recording``: what a fit records for them with ``diagnostics.enabled``.
* ``diagnosis``: ``diagnose_run``, the diagnosis of a run, and ``write_diagnosis``.
* ``experiments``: the small experiment behind each claim, on a data set (``study``: what
  they share; ``experiment_plots``: their plots).
"""

from growml.diagnose.diagnosis import Diagnosis, diagnose_run, write_diagnosis
from growml.diagnose.experiment_plots import experiment_plot
from growml.diagnose.experiments import EXPERIMENTS, ExperimentResult, run_experiment
from growml.diagnose.measures import (
    Confusion,
    dense_parameters,
    empirical_ntk,
    gradient_confusion,
    kernel_drift,
    per_example_gradients,
    relative_change,
    width_bound,
)

__all__ = [
    "EXPERIMENTS",
    "Confusion",
    "Diagnosis",
    "ExperimentResult",
    "dense_parameters",
    "diagnose_run",
    "empirical_ntk",
    "experiment_plot",
    "gradient_confusion",
    "kernel_drift",
    "per_example_gradients",
    "relative_change",
    "run_experiment",
    "width_bound",
    "write_diagnosis",
]
