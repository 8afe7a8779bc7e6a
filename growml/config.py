"""Typed settings: one pydantic model per concern, addressed by dotted paths (``train.lr``).

Precedence is defaults < recipe (YAML) < command-line flags, and the resolved ``FitConfig`` is
saved with every run so that ``growml fit --recipe runs/NAME/config.yaml`` runs it again.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from growml.errors import ConfigError, GrowmlWarning

Task = Literal["auto", "classification", "regression"]
Activation = Literal["relu", "tanh", "gelu", "selu"]
# Far beyond what growml is for; two such layers already need 16 GiB of weights.
MAX_WIDTH = 65536
_Model = TypeVar("_Model", bound=BaseModel)


class Section(BaseModel):
    """A section of settings: an unknown key, infinity or NaN (``.inf`` is valid YAML, and no
    setting means it), or true or false where a number belongs is refused."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_truth_values(cls, value: Any, info: ValidationInfo) -> Any:
        """``true`` where a number belongs is a mistake, not 1 (pydantic's lax reading)."""
        field = cls.model_fields[info.field_name or ""]
        if isinstance(value, bool) and _numeric(field.annotation):
            raise PydanticCustomError("number_type", "input should be a number, not true or false")
        return value


def _numeric(annotation: Any) -> bool:
    """Whether a setting of this type is a number (or none), never true or false."""
    kinds = set(get_args(annotation)) or {annotation}
    return bool(kinds & {int, float}) and bool not in kinds


class DataConfig(Section):
    """Where the data comes from and how it is split."""

    source: str | None = Field(
        None,
        description="A built-in dataset name (see `growml datasets`), a CSV/Parquet path, an "
        ".npz/.npy of signals or images, or a folder of images in one subfolder per class.",
    )
    target: str | None = Field(
        None, description="Target column of a file; built-in datasets know their own."
    )
    task: Task = Field("auto", description="Inferred from the target unless set.")
    test_size: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Fraction of rows held out for test (0: none, as in the scikit-learn "
        "estimators, whose data is all for training).",
    )
    validation_size: float = Field(
        0.2, gt=0, lt=1, description="Fraction of rows for validation (early stopping)."
    )
    max_categories: int = Field(
        50, ge=1, description="Most frequent categories one-hot encoded per column; others → 0."
    )
    scaling: Literal["standard", "robust", "quantile", "channel"] = Field(
        "standard",
        description="How numeric columns are scaled, fitted on the training rows: standard "
        "(mean and standard deviation), robust (median and quartiles with a smooth clip to "
        "±3, as RealMLP), quantile (the column's quantiles mapped to a normal distribution), "
        "or channel (signals and images: one mean and standard deviation per channel; the "
        "default for model.arch=conv).",
    )
    infinite: Literal["error", "missing"] = Field(
        "error",
        description="An infinite number (inf) in a feature column: error (refused, naming the "
        "column and row), or missing (imputed like any missing value).",
    )
    image_size: list[Annotated[int, Strict(), Field(ge=1, le=4096)]] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="An image folder's images resized to this height and width, a list of "
        "two (none: they must all have one size already).",
    )
    stratify: Literal["always", "when-possible"] = Field(
        "always",
        description="Classification splits keep the class proportions: always (a class too "
        "rare for every part is an error), or when-possible (such data is split at random, as "
        "the scikit-learn estimators do for the folds of cross-validation).",
    )

    stream: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Read a CSV/Parquet file in record batches and train from a memory-mapped "
        "cache instead of holding it in memory (docs/large-data.md): auto (when the file is "
        "larger than data.stream_above_mb, its numbers are scaled standard and the network is "
        "an MLP; smaller files take the in-memory path, unchanged), on (always; a setting it "
        "cannot follow is an error) or off.",
    )
    stream_above_mb: float = Field(
        100.0,
        gt=0,
        description="stream=auto streams files larger than this many megabytes (10^6 bytes); "
        "a 100 MB CSV of numbers holds about 10^6 rows of 10 to 20 columns.",
    )
    cache_dir: str | None = Field(
        None,
        description="Folder of the streamed data's memory-mapped cache (none: the system's "
        "temporary folder); the cache is deleted as soon as it is mapped, so nothing is left "
        "behind however the run ends.",
    )

    @field_validator("stream", mode="before")
    @classmethod
    def _stream_as_yaml_reads_it(cls, value: Any) -> Any:
        """YAML reads ``on`` and ``off`` as true and false."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> DataConfig:
        if self.test_size + self.validation_size >= 0.9:
            raise ValueError(
                "data.test_size + data.validation_size must leave at least 10 % of rows "
                f"for training (got {self.test_size} + {self.validation_size})"
            )
        return self


class ModelConfig(Section):
    """The network: hidden widths, activation, initialisation and numeric embeddings."""

    hidden_widths: list[Annotated[int, Strict(), Field(ge=1, le=MAX_WIDTH)]] = Field(
        [1],
        min_length=1,
        description="Width of each hidden layer: where growth starts, or "
        "the fixed widths when growth is off.",
    )
    activation: Activation = Field("relu", description="The hidden layers' activation.")
    init_scale: float = Field(1.0, gt=0, description="Multiplier on PyTorch's default init.")
    embedding: Literal["none", "periodic", "piecewise"] = Field(
        "none",
        description="How numeric columns enter the first hidden layer (docs/embeddings.md): as "
        "they are, periodic (trained frequencies, linear, ReLU) or piecewise (quantile bins).",
    )
    embedding_frequencies: int = Field(
        16, ge=1, le=1024, description="Trained frequencies per numeric column (periodic)."
    )
    embedding_sigma: float = Field(
        0.01, gt=0, le=100, description="Standard deviation of the initial frequencies (periodic)."
    )
    embedding_width: int = Field(
        8, ge=1, le=1024, description="Outputs per numeric column (periodic)."
    )
    embedding_bins: int = Field(
        16, ge=2, le=1024, description="Quantile bins per numeric column at most (piecewise)."
    )
    feature_gate: bool = Field(
        True,
        description="A trained scale on each column the first hidden layer reads: held at 1 "
        "while the network grows, then learned and pulled towards 0 by "
        "train.feature_gate_l1, so that columns that carry no signal fade out "
        "(docs/feature-gate.md; model.arch=mlp).",
    )
    arch: Literal["mlp", "conv"] = Field(
        "mlp",
        description="mlp: dense layers over the columns; conv: convolution blocks over each "
        "row as a signal or an image, global average pooling or flattening (model.head), "
        "then the dense layers of model.hidden_widths (docs/conv-growth.md).",
    )
    channels: list[Annotated[int, Strict(), Field(ge=1, le=MAX_WIDTH)]] = Field(
        [1, 1, 1],
        min_length=1,
        max_length=8,
        description="model.arch=conv: output channels of each convolution block, where "
        "growth starts (fixed when growth is off).",
    )
    kernel_size: int | None = Field(
        None,
        ge=1,
        le=31,
        description="model.arch=conv: the blocks' kernel length, odd (none: 5 for a signal, "
        "3 for an image).",
    )
    stride: (
        Annotated[int, Strict(), Field(ge=1, le=8)]
        | list[Annotated[int, Strict(), Field(ge=1, le=8)]]
        | None
    ) = Field(
        None,
        description="model.arch=conv: the blocks' stride, one for all or one per block (none: "
        "2 while a block's input is longer than 8 along its shorter side, then 1).",
    )
    head: Literal["pool", "flatten"] = Field(
        "pool",
        description="model.arch=conv: how the dense layers read the last block's map: pool, "
        "each channel's mean over the positions; flatten, every value, so they know where a "
        "feature is.",
    )
    input_shape: list[Annotated[int, Strict(), Field(ge=1)]] | None = Field(
        None,
        min_length=2,
        max_length=3,
        description="model.arch=conv: each row's values as (channels, length) or (channels, "
        "height, width), channel-major (none: the data's own, as mnist1d's 1,40 and digits' "
        "1,8,8).",
    )

    @property
    def layer_widths(self) -> list[int]:
        """Every hidden layer's starting width, as the network lists them: the convolution
        blocks' channels (model.arch=conv), then model.hidden_widths."""
        blocks = self.channels if self.arch == "conv" else []
        return [*blocks, *self.hidden_widths]

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, kernel: int | None) -> int | None:
        if kernel is not None and kernel % 2 == 0:
            raise ValueError(
                f"model.kernel_size must be odd, so that it has a centre (got {kernel})"
            )
        return kernel

    @model_validator(mode="after")
    def _conv_reads_raw_values(self) -> ModelConfig:
        if self.arch == "conv" and self.embedding != "none":
            raise ValueError(
                f"model.embedding={self.embedding} embeds the columns of an MLP; "
                "model.arch=conv convolves the values themselves: use model.embedding=none."
            )
        if isinstance(self.stride, list) and len(self.stride) != len(self.channels):
            raise ValueError(
                f"model.stride={self.stride} gives {len(self.stride)} strides for "
                f"{len(self.channels)} blocks (model.channels): give one per block, or one "
                "for all."
            )
        if self.arch != "conv" and self.head != "pool":
            raise ValueError(
                f"model.head={self.head} says how dense layers read the last convolution "
                "block; it needs model.arch=conv."
            )
        return self

    @field_validator("hidden_widths", mode="before")
    @classmethod
    def _widths_in_range(cls, widths: Any) -> Any:
        """One sentence with every width given, before the item-by-item check."""
        if isinstance(widths, list) and any(
            type(w) is int and not 1 <= w <= MAX_WIDTH for w in widths
        ):
            raise ValueError(f"every hidden width must be between 1 and {MAX_WIDTH} (got {widths})")
        return widths


DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def without_device(settings: dict[str, Any]) -> dict[str, Any]:
    """Resolved ``settings`` (``FitConfig`` as JSON) without ``train.device``: where a run
    trains changes none of what it is, so a checkpoint resumes, and a study or comparison is
    joined or resumed, under any device setting."""
    train = {key: value for key, value in settings["train"].items() if key != "device"}
    return {**settings, "train": train}


class TrainConfig(Section):
    """The training loop."""

    epochs: int = Field(200, ge=1, description="Maximum number of epochs.")
    batch_size: int = Field(64, ge=1, description="Rows per gradient step.")
    lr: float = Field(1e-3, gt=0, description="Learning rate (model.arch=conv: 0.01).")
    optimizer: Literal["adam", "adamw", "sgd"] = Field(
        "adam", description="The optimizer (model.arch=conv: adamw)."
    )
    weight_decay: float = Field(
        0.0,
        ge=0,
        description="L2 penalty (adamw: decoupled decay; model.arch=conv with adamw: 0.1).",
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (sgd only).")
    feature_gate_l1: float = Field(
        1e-3,
        ge=0,
        le=1,
        description="L1 penalty on the feature gate (model.feature_gate), added to the "
        "gradient like weight decay, not to the reported loss.",
    )
    early_stopping: bool = Field(True, description="Stop when the monitored metric stalls.")
    patience: int = Field(20, ge=1, description="Epochs without improvement before stopping.")
    anneal_epochs: int = Field(
        0,
        ge=0,
        description="Epochs of a final anneal: once training would stop (early stopping or "
        "train.epochs), it goes on from the best weights for this many "
        "epochs more with the learning rate falling from train.lr to 0 along a half cosine, "
        "and keeps the best validation epoch of all (0: no anneal).",
    )
    monitor: Literal["loss", "accuracy", "macro_f1", "r2"] = Field(
        "loss", description="Validation metric for early stopping and best-weight selection."
    )
    device: str = Field(
        "auto",
        description="Where training and growth run: auto (a CUDA GPU when there is one, else "
        "the CPU), cpu, cuda, cuda:N or mps (MPS lacks float64: fixed widths only, no growth "
        "or pruning).",
    )
    # Far above any machine's cores; OpenMP crashes when asked for a hundred thousand.
    threads: int = Field(0, ge=0, le=1024, description="torch threads; 0 chooses by network size.")
    checkpoint_seconds: float = Field(
        5.0,
        ge=0,
        description="Seconds of training between checkpoints (also one at every growth step; "
        "0: every epoch); --resume continues from the last.",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not DEVICE_PATTERN.fullmatch(device):
            raise ValueError(
                f"train.device must be auto, cpu, cuda, cuda:N or mps (got {device!r})"
            )
        return device


Pairing = Literal["auto", "always", "never"]
_PAIRING = (
    "Add neurons as pairs (α, ω), (−α, −ω), exact at first order for ReLU and GELU; "
    "auto: for relu only."
)


class PoolSettings(Section):
    """``growth.method=pool``: the candidate pool scored by each neuron's exact gain."""

    random_directions: int = Field(
        32, ge=0, description="Random whitened directions in the candidate pool."
    )
    offsets: int = Field(4, ge=0, description="Hinge offsets through sampled rows per direction.")
    max_step: float | None = Field(
        1.0,
        gt=0,
        description="Largest step of the fitted update. At 1 the new neurons carry out "
        "the least-squares fit of the desired change exactly; larger steps lower the training "
        "loss more at once but leave sharp weights that generalise worse (digits: 97.2 % at "
        "1, 95.4 % unbounded). None: the line search alone decides.",
    )


class TinySettings(Section):
    """``growth.method=tiny`` and ``tiny-noproj``: TINY's linearised optimal neurons."""

    noise_factor: float = Field(
        1.0,
        gt=0,
        description="A neuron's λ must exceed this multiple of the sign-flip noise floor.",
    )
    move_weights: bool = Field(True, description="Also apply ΔW* to the next layer.")
    pairing: Pairing = Field("auto", description=_PAIRING)
    max_amplitude: float | None = Field(
        None,
        gt=0,
        description="Largest amplitude γ of new neurons (none: the line search decides).",
    )


class GradMaxSettings(Section):
    """``growth.method=gradmax``: zero incoming weights, outgoing along the largest gradient."""

    noise_factor: float = Field(
        1.0,
        gt=0,
        description="A neuron's singular value must exceed this multiple of the "
        "sign-flip noise floor.",
    )
    pairing: Pairing = Field("auto", description=_PAIRING)


class RandomSettings(Section):
    """``growth.method=random``: neurons drawn like the initialisation (the ablation)."""

    pairing: Pairing = Field(
        "auto",
        description="Add neurons in even numbers, as TINY adds its pairs, so that the ablation "
        "grows by the same counts; auto: for relu only.",
    )


# Settings that sat directly under ``growth`` before each method had its own section: the old
# path still works and sets the same setting of every section that has it.
MOVED_GROWTH_SETTINGS: dict[str, tuple[str, ...]] = {
    "random_directions": ("pool",),
    "offsets": ("pool",),
    "max_step": ("pool",),
    "noise_factor": ("tiny", "gradmax"),
    "move_weights": ("tiny",),
    "pairing": ("tiny", "gradmax", "random"),
    "max_amplitude": ("tiny",),
}


class GrowthConfig(Section):
    """Growing the network: when, where, which neurons, how much, and when to stop; each
    growth method's own settings in its section (``growth.pool``, ``growth.tiny``...)."""

    enabled: bool = Field(True, description="Grow from model.hidden_widths (false: fixed).")
    method: Literal["pool", "tiny", "tiny-noproj", "gradmax", "random"] = Field(
        "pool",
        description="How new neurons are chosen: pool scores a pool of nonlinear candidates "
        "(TINY's directions among them) by their exact gain; the others are ablations.",
    )
    where: Literal["auto", "best", "all", "round-robin"] = Field(
        "auto",
        description="Which hidden layers grow at a step: the best predicted gain per "
        "parameter, every layer, or each in turn; auto: best for an MLP, each in turn for a "
        "convolutional network (docs/conv-growth.md).",
    )
    schedule: Literal["adaptive", "stall"] = Field(
        "adaptive",
        description="When to grow: adaptive, once the training loss stops falling fast "
        "(from the first epochs on); stall, once training has stalled (growth.patience).",
    )
    every: int = Field(0, ge=0, description="Grow every this many epochs instead (0: schedule).")
    max_new_neurons: int = Field(8, ge=1, le=MAX_WIDTH, description="Neurons per step at most.")
    max_failures: int = Field(
        4,
        ge=1,
        description="Stop growing after this many steps in a row without a better validation "
        "(loss not 1 % lower, accuracy or R² not higher).",
    )
    max_params: int | None = Field(None, ge=1, description="Parameter budget (none: no limit).")
    max_depth: int = Field(
        1,
        ge=1,
        le=16,
        description="Hidden layers growth may reach (model.arch=conv: dense layers of the head, "
        "at least one to start from): once no layer has a candidate above its bar, a hidden "
        "layer that leaves the function unchanged (identity weights; relu only) may be "
        "inserted below the output and grown, when its own candidates beat the bar. A network "
        "that starts with more layers keeps them.",
    )
    max_blocks: int | None = Field(
        None,
        ge=1,
        le=16,
        description="model.arch=conv: convolution blocks growth may reach (none: the starting "
        "blocks). Once no layer has a candidate above its bar, a block of stride 1 that leaves "
        "the function unchanged (identity centre tap; relu only) may be inserted on top of the "
        "blocks and grown, when its own candidates beat the bar.",
    )
    statistics_rows: int = Field(
        2048, ge=16, description="Training rows sampled for the statistics and line search."
    )
    patience: int = Field(
        3,
        ge=1,
        description="schedule=stall: grow when the training loss fell by less than "
        "growth.min_improvement over this many epochs.",
    )
    min_improvement: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="schedule=stall: relative fall of the training loss below which training "
        "counts as stalled.",
    )
    line_search_steps: int = Field(20, ge=1, description="Loss evaluations per line search.")
    trim: bool = Field(
        True,
        description="After growth, remove the neurons the validation metric (train.monitor) "
        "does without, least harm first, fine-tune, and keep the result only if validation is "
        "no worse (growing runs only).",
    )
    trim_tolerance: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="growth.trim: how much worse, relative to the untrimmed network's, the "
        "validation metric may become (0.01: 1 %).",
    )
    pool: PoolSettings = PoolSettings()
    tiny: TinySettings = TinySettings()
    gradmax: GradMaxSettings = GradMaxSettings()
    random: RandomSettings = RandomSettings()

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: Any) -> Any:
        """Settings given at their old place directly under ``growth`` go to their sections."""
        return move_growth_settings(data) if isinstance(data, Mapping) else data


def move_growth_settings(growth: Mapping[str, Any]) -> dict[str, Any]:
    """``growth`` settings with those at their old place (``MOVED_GROWTH_SETTINGS``) put in
    their sections; ValueError when both places are set."""
    growth = dict(growth)
    for name, sections in MOVED_GROWTH_SETTINGS.items():
        if name not in growth:
            continue
        value = growth.pop(name)
        for section in sections:
            given = growth.get(section, {})
            if isinstance(given, BaseModel):
                given = given.model_dump(exclude_unset=True)
            if not isinstance(given, Mapping):
                continue  # the section's own validation says what is wrong with it
            if name in given:
                raise ValueError(
                    f"growth.{name} and growth.{section}.{name} are both set; "
                    f"keep growth.{section}.{name}"
                )
            growth[section] = {**given, name: value}
    return growth


def moved_setting(path: str) -> list[str] | None:
    """The paths an old ``growth`` setting moved to (None: ``path`` did not move)."""
    section, _, name = path.partition(".")
    if section != "growth" or name not in MOVED_GROWTH_SETTINGS:
        return None
    return [f"growth.{part}.{name}" for part in MOVED_GROWTH_SETTINGS[name]]


def _warn_moved(path: str, moved: list[str]) -> None:
    warnings.warn(
        f"setting {path!r} has moved to {' and '.join(repr(p) for p in moved)}; "
        "the old path still works.",
        GrowmlWarning,
        stacklevel=4,
    )


class LossConfig(Section):
    """The training loss."""

    name: Literal[
        "auto",
        "cross-entropy",
        "bce",
        "mse",
        "soft-f1",
        "soft-fbeta",
        "soft-accuracy",
        "soft-auroc",
    ] = Field("auto", description="auto: cross-entropy (bce for binary) or mse (regression).")
    beta: float = Field(1.0, gt=0, description="β of soft-fbeta (and of threshold.metric fbeta).")
    tau: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Threshold of the soft-set losses (none: averaged over 0.1 … 0.9).",
    )
    delta: float = Field(0.2, gt=0, lt=0.5, description="δ of the soft step H.")
    class_weight: Literal["none", "balanced"] = Field(
        "none", description="balanced: weight classes by n / (classes × count) in cross-entropy."
    )
    warmup_epochs: int = Field(
        0, ge=0, description="Epochs of cross-entropy before a soft-set loss takes over."
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="ε of label smoothing in cross-entropy and bce: the training target is "
        "(1 − ε)·one-hot + ε/classes (regression and the soft-set losses ignore it).",
    )


class ThresholdConfig(Section):
    """The decision threshold of binary classifiers, chosen on the validation split."""

    metric: Literal["auto", "none", "f1", "fbeta", "accuracy"] = Field(
        "auto",
        description="Metric the threshold maximises; auto: f1 (fbeta) for soft-f1 "
        "(soft-fbeta), none (0.5) for other losses.",
    )


class PruneConfig(Section):
    """Pruning by SynFlow (or the magnitude and random baselines), then fine-tuning."""

    method: Literal["none", "synflow", "magnitude", "random"] = Field(
        "none", description="The pruning criterion (none: no pruning)."
    )
    structured: bool = Field(
        False, description="Remove whole neurons (a smaller dense network) instead of weights."
    )
    compression: float | None = Field(
        None, gt=1, description="ρ = prunable weights before / after (10 keeps a tenth)."
    )
    target_params: int | None = Field(
        None, ge=1, description="Prunable weights to keep, instead of a compression."
    )
    iterations: int = Field(100, ge=1, description="Steps of the exponential schedule.")
    when: Literal["auto", "at-init", "after-growth"] = Field(
        "auto",
        description="at-init prunes the initial network (as in the paper); after-growth "
        "prunes the grown one; auto: after growth when growing, else at init.",
    )
    schedule: Literal["parameters", "neurons"] = Field(
        "parameters",
        description="Structured pruning ranks neurons by score per parameter "
        "(parameters) or by score (neurons).",
    )

    @model_validator(mode="after")
    def _one_target(self) -> PruneConfig:
        if self.method != "none" and (self.compression is None) == (self.target_params is None):
            raise ValueError(
                "pruning needs exactly one of prune.compression and prune.target_params"
            )
        return self


# The settings a convolutional network (model.arch=conv) takes unless given: they replace
# the MLP's defaults for it (docs/conv-growth.md). The weight decay goes with AdamW only: under
# another optimizer it would be an L2 penalty of another size.
CONV_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"scaling": "channel"},
    "train": {"optimizer": "adamw", "lr": 0.01},
}
CONV_WEIGHT_DECAY = 0.1


class DiagnosticsConfig(Section):
    """What ``growml diagnose`` measures (docs/theory.md): recorded during a fit when
    ``enabled``, and the sizes of its experiments (``growml diagnose --experiment``)."""

    enabled: bool = Field(
        False,
        description="Record, during the fit, each weight's value when it was born and the "
        "gradient confusion on a probe batch at the start and around every growth step.",
    )
    probe: int = Field(
        64, ge=2, le=1024, description="Training rows in the probe batch the measures read."
    )
    seeds: int = Field(3, ge=1, le=100, description="Experiments: networks per setting.")
    rows: int = Field(
        256, ge=8, le=100_000, description="Experiments: training rows they use at most."
    )
    epochs: int = Field(
        1000, ge=1, le=100_000, description="Experiments: full-batch training epochs."
    )
    width_factors: list[Annotated[float, Field(gt=0, le=64)]] = Field(
        [0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
        min_length=1,
        description="width-bound: the widths tried, as multiples of the bound ⌈2n/(d+1)⌉.",
    )
    init_scales: list[Annotated[float, Field(gt=0, le=1000)]] = Field(
        [0.25, 0.5, 1.0, 2.0, 4.0],
        min_length=2,
        description="init-scale: the model.init_scale values tried.",
    )
    width: int = Field(
        64, ge=1, le=MAX_WIDTH, description="init-scale and confusion (depth): hidden width."
    )
    confusion_widths: list[Annotated[int, Strict(), Field(ge=1, le=MAX_WIDTH)]] = Field(
        [8, 16, 32, 64, 128, 256],
        min_length=2,
        description="confusion: one-hidden-layer widths measured.",
    )
    confusion_depths: list[Annotated[int, Strict(), Field(ge=1, le=64)]] = Field(
        [1, 2, 4, 8],
        min_length=2,
        description="confusion: numbers of hidden layers measured (each diagnostics.width wide).",
    )


class FitConfig(Section):
    """Everything `growml fit` needs; saved as the run's config.yaml."""

    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,
        description="Random seed of the split, the initial weights and the batches.",
    )
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    growth: GrowthConfig = GrowthConfig()
    prune: PruneConfig = PruneConfig()
    loss: LossConfig = LossConfig()
    threshold: ThresholdConfig = ThresholdConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()

    @model_validator(mode="before")
    @classmethod
    def _convolution_defaults(cls, data: Any) -> Any:
        """A convolutional network's own defaults (``CONV_DEFAULTS``), each unless the settings
        give it: its input standardised per channel (per column, a pixel that is almost always
        0 is blown up by its own tiny spread), and AdamW with weight decay at a higher
        learning rate, measured in docs/conv-growth.md."""
        if not isinstance(data, Mapping):
            return data
        model = data.get("model")
        arch = model.get("arch") if isinstance(model, Mapping) else getattr(model, "arch", None)
        if arch != "conv":
            return data
        data = dict(data)
        for name, defaults in CONV_DEFAULTS.items():
            section = data.get(name)
            if isinstance(section, BaseModel):
                continue  # built already: it holds every setting
            data[name] = {**defaults, **(section or {})}
        train = data["train"]
        if isinstance(train, Mapping) and train["optimizer"] == "adamw":
            data["train"] = {"weight_decay": CONV_WEIGHT_DECAY, **train}
        return data

    @model_validator(mode="after")
    def _pruning_fits_growth(self) -> FitConfig:
        if self.prune.when == "after-growth" and not self.growth.enabled:
            raise ValueError(
                "prune.when=after-growth needs growth; use at-init (or auto) with fixed widths"
            )
        if (
            self.prune.method != "none"
            and self.prune.when == "at-init"
            and not self.prune.structured
            and self.growth.enabled
        ):
            raise ValueError(
                "weight masks from pruning at init cannot follow a growing network; prune after "
                "growth, prune whole neurons (prune.structured=true), or train fixed widths"
            )
        if self.prune.method != "none" and self.model.arch == "conv":
            raise ValueError(
                "pruning scores the weights of an MLP; model.arch=conv is not pruned "
                "(use prune.method=none, or model.arch=mlp)"
            )
        if self.diagnostics.enabled and self.model.arch == "conv":
            raise ValueError(
                "the diagnostics read the dense layers of an MLP; model.arch=conv is not "
                "diagnosed (use diagnostics.enabled=false, or model.arch=mlp)"
            )
        if self.growth.max_blocks is not None and self.model.arch != "conv":
            raise ValueError(
                "growth.max_blocks counts convolution blocks; it needs model.arch=conv "
                "(an MLP deepens by growth.max_depth)"
            )
        return self


def setting_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo]]:
    """Every (dotted path, field) of ``model``'s settings, nested sections walked in order."""
    leaves = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            leaves.extend(setting_fields(annotation, f"{prefix}{name}."))
        else:
            leaves.append((f"{prefix}{name}", field))
    return leaves


def setting_paths(model: type[BaseModel] = FitConfig) -> list[str]:
    """Every dotted path a recipe or ``--set`` may address."""
    return [path for path, _ in setting_fields(model)]


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"train.lr=0.01"`` → ``("train.lr", 0.01)``; the value is read as YAML (``[8, 16]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, like train.lr=0.01 (got {text!r}).")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe into nested settings (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {str(path)!r} does not exist.")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", "") or "")
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            tag = problem.split("tag", 1)[1].strip(" '\"")
            raise ConfigError(
                f"recipe {str(path)!r} uses the tag {tag!r}{where}: recipes are plain YAML, and "
                "tags that build Python objects are refused."
            ) from None
        raise ConfigError(f"recipe {str(path)!r} is not valid YAML{where}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"recipe {str(path)!r} is not a text file.") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"recipe {str(path)!r} must be a mapping of settings, like `train: ...`.")
    return content


def resolve_config(
    recipe: Mapping[str, Any] | None = None,
    overrides: Iterable[tuple[str, Any]] = (),
) -> FitConfig:
    """Defaults < recipe < overrides, validated into a ``FitConfig``.

    Raises ConfigError with one sentence for an unknown path or an invalid value.
    """
    settings = _deep_copy(recipe or {})
    _check_known(settings)
    if isinstance(settings.get("growth"), Mapping):
        try:
            settings["growth"] = move_growth_settings(settings["growth"])
        except ValueError as error:
            raise ConfigError(f"{error}.") from None
    for path, value in overrides:
        _set_dotted(settings, path, value)
    return validate_section(FitConfig, settings)


def validate_section(model: type[_Model], settings: Mapping[str, Any], prefix: str = "") -> _Model:
    """``settings`` validated into ``model``; ConfigError with one sentence naming the setting
    (its path after ``prefix``, like ``tune.``) when invalid."""
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, prefix)) from None


def _deep_copy(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in settings.items()}


def unknown_setting(path: str, known: Sequence[str] | None = None) -> ConfigError:
    """The error for a setting path that does not exist, naming the closest that does."""
    close = difflib.get_close_matches(path, known if known is not None else setting_paths(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; `growml settings` lists them."
    return ConfigError(f"unknown setting {path!r}{hint}")


def _check_known(settings: Mapping[str, Any], prefix: str = "") -> None:
    known = setting_paths()
    for key, value in settings.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and any(p.startswith(path + ".") for p in known):
            _check_known(value, path + ".")
        elif path not in known:
            moved = moved_setting(path)
            if moved is None:
                raise unknown_setting(path)
            _warn_moved(path, moved)


def _set_dotted(settings: dict[str, Any], path: str, value: Any) -> None:
    moved = moved_setting(path)
    if moved is not None:
        _warn_moved(path, moved)
        for new_path in moved:
            _set_dotted(settings, new_path, value)
        return
    if path not in setting_paths():
        raise unknown_setting(path)
    *parents, leaf = path.split(".")
    node = settings
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _describe(exc: ValidationError, prefix: str = "") -> str:
    error = exc.errors()[0]
    path = prefix + ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error":  # a sentence of ours, full stop or not
        return message if message.endswith(".") else f"{message}."
    message = message[0].lower() + message[1:]
    given = error.get("input")
    if "input" not in error or isinstance(given, dict):
        shown = ""
    elif given is None or isinstance(given, str | int | float | bool | list | tuple):
        shown = f" (got {given!r})"
    else:  # a DataFrame, an array...: its type, not its printout
        shown = f" (got a {type(given).__name__})"
    return f"setting {path!r} is invalid: {message}{shown}."
