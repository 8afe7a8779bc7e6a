"""What the theory behind growth says about a data set and a trained network.

``measures``: the width bound of Zhang et al. (2021), per-example gradients and their
confusion (Sankararaman et al., 2020), and the laziness of training — relative weight change
and drift of the empirical neural tangent kernel (Woodworth et al., 2020).
"""

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
    "Confusion",
    "dense_parameters",
    "empirical_ntk",
    "gradient_confusion",
    "kernel_drift",
    "per_example_gradients",
    "relative_change",
    "width_bound",
]

# The experiments behind each claim (``growml diagnose --experiment``), and their plots.
from growml.diagnose.experiment_plots import experiment_plot  # noqa: E402
from growml.diagnose.experiments import (  # noqa: E402
    EXPERIMENTS,
    ExperimentResult,
    run_experiment,
)

__all__ += ["EXPERIMENTS", "ExperimentResult", "experiment_plot", "run_experiment"]
