"""What the diagnostics cost: a fit with ``diagnostics.enabled`` against the same fit without
(the same settings and seed: the weights must come out identical), and growml's closed-form
empirical NTK against the Gram matrix of ``torch.func.jacrev``'s Jacobian of the same network
(the peer a user would write), which must agree.

Fits grow from width 1 with the defaults (seed 0) on each data set, interleaved, the median
of the repeats kept; the kernels are taken on 64 rows of digits for one layer of 64 or 256 and
two of 64, one thread. Ratios are with / without and jacrev / closed form.

    .venv/bin/python benchmarks/diagnostics_cost.py [--datasets moons,digits] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.func import functional_call, jacrev

from growml import fit
from growml.config import resolve_config
from growml.diagnose import empirical_ntk
from growml.diagnose.measures import _Dense, dense_parameters
from growml.nn import GrowingMLP


def fit_seconds(source: str, recorded: bool, folder: Path) -> tuple[float, dict]:
    """The wall seconds of a default fit of ``source`` and its kept weights."""
    config = resolve_config(overrides=[("data.source", source), ("diagnostics.enabled", recorded)])
    started = time.perf_counter()
    result = fit(config, out=folder / f"{source}-{recorded}", overwrite=True)
    return time.perf_counter() - started, result.run.model.state_dict()


def jacobian_kernel(model: GrowingMLP, x: torch.Tensor) -> torch.Tensor:
    """K = J Jᵀ from the full Jacobian of ``torch.func.jacrev``."""
    layers, inputs = dense_parameters(model)
    dense = _Dense(layers, model.activation.fn)
    params = {name: param.detach() for name, param in dense.named_parameters()}
    rows = inputs(x)
    jacobian = jacrev(lambda values: functional_call(dense, values, (rows,)))(params)
    count = rows.shape[0] * layers[-1][0].shape[0]
    flat = torch.cat([jacobian[name].reshape(count, -1) for name in params], 1)
    return flat @ flat.T


def best_of(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="moons,digits,breast-cancer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for source in args.datasets.split(","):
            seconds: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.repeats):
                plain_seconds, plain = fit_seconds(source, False, Path(folder))
                recorded_seconds, recorded = fit_seconds(source, True, Path(folder))
                same = all(torch.equal(recorded[name], value) for name, value in plain.items())
                assert same, "recording changed the training"
                seconds[False].append(plain_seconds)
                seconds[True].append(recorded_seconds)
            with_, without = statistics.median(seconds[True]), statistics.median(seconds[False])
            rows.append(
                {"data": source, "without s": without, "with s": with_, "ratio": with_ / without}
            )
            print(f"{source:14} fit {without:6.2f} s, with diagnostics {with_:6.2f} s, "
                  f"ratio {with_ / without:.3f} (weights identical)")  # fmt: skip
    torch.set_num_threads(1)
    x = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    for widths in ([64], [256], [64, 64]):
        model = GrowingMLP(64, widths, 10, generator=torch.Generator().manual_seed(0))
        difference = float((jacobian_kernel(model, x) - empirical_ntk(model, x)).abs().max())
        reference = best_of(lambda m=model: jacobian_kernel(m, x), args.repeats)
        ours = best_of(lambda m=model: empirical_ntk(m, x), args.repeats)
        rows.append(
            {"kernel widths": widths, "jacrev s": reference, "closed form s": ours,
             "ratio": reference / ours, "max difference": difference}
        )  # fmt: skip
        print(
            f"NTK widths {widths}: jacrev {reference * 1e3:7.1f} ms, closed form "
            f"{ours * 1e3:6.1f} ms, ratio {reference / ours:.1f}, max |ΔK| {difference:.1e}"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
