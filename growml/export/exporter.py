"""``growml export``: a run directory to one verified ONNX file.

The model is built, checked with ``onnx.checker``, run against the torch path on the run's
test split, and only then written (atomically) — a refused export leaves no file behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from growml import atomic
from growml.errors import ExportError
from growml.export import metadata
from growml.export.columns import grouped_numbers, input_types, number_type
from growml.export.embedding import EmbeddingWeights
from growml.export.engines import MODEL_FILE
from growml.export.graph import DEFAULT_OPSET, ConvShape, NetworkWeights, build_model
from growml.export.runtime import OnnxModel
from growml.export.verify import Parity, check_recorded_metrics, compare, held_out_rows
from growml.nn.conv import GrowingConvNet
from growml.nn.embeddings import NumericEmbedding
from growml.nn.mlp import GrowingMLP
from growml.runs import Run, digests, load_run
from growml.runs.layout import SOURCE_FILES
from growml.version import __version__


@dataclass(frozen=True)
class ExportResult:
    """What ``export_run`` wrote: the file, its opset, size, nodes and inputs (the numeric
    ones' element type), and its parity."""

    path: Path
    opset: int
    size_bytes: int
    nodes: int
    inputs: int
    number_type: str
    parity: Parity
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "opset": self.opset,
            "size_bytes": self.size_bytes,
            "nodes": self.nodes,
            "inputs": self.inputs,
            "number_type": self.number_type,
            "verified_rows": self.parity.rows,
            "max_difference": self.parity.max_difference,
            "tolerance": self.parity.tolerance,
            "label_mismatches": self.parity.label_mismatches,
            "seconds": self.seconds,
        }


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    data: str | None = None,
    grouped: bool = True,
) -> ExportResult:
    """Export the run at ``run_dir`` to ``out`` (default ``run_dir/model.onnx``).

    ``opset`` is the ONNX opset (default 18); ``data`` the training data's source when it
    has moved since the run was trained (default: ``config.yaml``'s ``data.source``);
    ``grouped`` takes the numeric columns as one float32 ``numbers`` input, and without it
    each is an input of its own (see ``build_model``). Raises
    ``ExportError`` (and writes nothing) when the exported model does not reproduce the run.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    out = run_dir / MODEL_FILE if out is None else Path(out)
    _check_out(out)
    run = load_run(run_dir)
    model = build_run_model(run, opset, grouped)
    # A model the checker rejects is a bug in growml, not the user's to fix: it propagates.
    onnx.checker.check_model(model, full_check=True)
    content = model.SerializeToString()
    rows, target = held_out_rows(run, data)
    check_recorded_metrics(run, rows, target)
    parity = compare(OnnxModel(content, str(out)), run, rows)
    if not parity.agrees:
        raise ExportError(
            f"the ONNX model disagrees with the run on {parity.rows} test rows (largest "
            f"difference {parity.max_difference:.3g}, allowed {parity.tolerance:.0e}; "
            f"{parity.label_mismatches} labels differ), so nothing was written."
        )
    try:
        atomic.write_bytes(out, content)
        if out.resolve() == (run_dir / MODEL_FILE).resolve():
            digests.add(run_dir, MODEL_FILE)
    except OSError as error:
        raise ExportError(f"cannot write {str(out)!r}: {error.strerror}.") from None
    return ExportResult(
        path=out,
        opset=opset,
        size_bytes=len(content),
        nodes=len(model.graph.node),
        inputs=len(model.graph.input),
        number_type=onnx.helper.tensor_dtype_to_np_dtype(number_type(run.preprocessor)).name,
        parity=parity,
        seconds=time.perf_counter() - started,
    )


def _check_out(out: Path) -> None:
    """An ONNX file's path: named ``.onnx`` (so no run file, ``model.json`` say, is ever
    written over)."""
    if out.is_dir():
        raise ExportError(
            f"{str(out)!r} is a directory; give a file path such as {str(out / MODEL_FILE)!r}."
        )
    if out.suffix.lower() != ".onnx":
        raise ExportError(
            f"--out {str(out)!r} must name an .onnx file (like {MODEL_FILE!r}); nothing was "
            "written."
        )


def _embedding_weights(embedding: NumericEmbedding | None) -> EmbeddingWeights | None:
    if embedding is None:
        return None
    tensors = [*embedding.named_parameters(), *embedding.named_buffers()]
    return EmbeddingWeights(
        kind=embedding.kind,
        numeric=embedding.numeric,
        others=embedding.others,
        arrays={name: tensor.detach().numpy() for name, tensor in tensors},
    )


def _conv_shape(model: GrowingMLP) -> ConvShape | None:
    if not isinstance(model, GrowingConvNet):
        return None
    return ConvShape(
        image=model.image_shape,
        blocks=model.conv_layers,
        kernel=model.kernel,
        strides=tuple(model.strides),
        padding=model.padding,
        head=model.head,
    )


def build_run_model(run: Run, opset: int = DEFAULT_OPSET, grouped: bool = True) -> onnx.ModelProto:
    """The ONNX model of a loaded run, unchecked and unverified."""
    network = NetworkWeights(
        layers=[
            # a flatten head's first weight (out, channels, positions) as the Gemm's (out, in)
            (weight.flatten(1).numpy() if weight.dim() == 3 else weight.numpy(), bias.numpy())
            for weight, bias in run.model.folded_layers()
        ],
        activation=run.model.activation.name,
        embedding=_embedding_weights(run.model.embedding),
        convolution=_conv_shape(run.model),
    )
    info = run.model_info()
    properties = metadata.encode(
        {
            "growml_version": __version__,
            "task": run.task,
            "classes": info["classes"],
            "threshold": run.threshold,
            "inputs": [
                {"name": name, "type": kind} for name, kind in input_types(run.preprocessor).items()
            ],
            "numbers_input": grouped_numbers(run.preprocessor) if grouped else [],
            "categories": {k: list(v) for k, v in run.preprocessor.categories.items()},
            "decimal_comma": run.preprocessor.decimal_comma,
            "dropped": run.preprocessor.dropped,
            "target": run.target_encoder.name or "",
            "hidden_widths": info["hidden_widths"],
            "activation": info["activation"],
            "parameters": info["parameters"],
            "test_metrics": run.metrics.get("test", {}),
            "source": digests.of(run.path, SOURCE_FILES) if run.path is not None else {},
        }
    )
    return build_model(
        run.preprocessor, network, run.target_encoder, run.threshold, opset, properties, grouped
    )
