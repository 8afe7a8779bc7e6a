"""Signals and images as tables: ``.npz`` / ``.npy`` arrays and folders of images.

growml trains on tables, so a signal of shape (C, L) or an image of shape (C, H, W) becomes
one row of C·L or C·H·W number columns ``x0, x1, ...``, channel-major (numpy's ``reshape``
order), and its shape rides along in the table's schema metadata (``signal_shape``), where a
convolutional network (``model.arch=conv``) finds it.

* ``.npz``: arrays ``x`` of shape (N, C, L) or (N, C, H, W) and ``y`` of shape (N,), read
  without pickle (``allow_pickle=False``).
* ``.npy``: the array ``x`` alone; its labels are a second ``.npy`` given as the target.
* a folder with one subfolder per class of PNG or JPEG images (torchvision's ImageFolder
  layout), read with Pillow: grey when every image is, else RGB, values in [0, 1] (pixel / 255),
  all resized to ``data.image_size`` (height, width) when given; images of different sizes
  without it are refused.

Every problem is a ``DataError`` of one sentence naming the file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from growml.errors import DataError

ARRAY_SUFFIXES = (".npz", ".npy")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SHAPE_KEY = b"growml.signal_shape"
# The target column: an .npz's y (or a .npy of labels), an image folder's subfolder names.
ARRAY_TARGET = "y"
FOLDER_TARGET = "label"
_GREY_MODES = ("1", "L", "I", "I;16", "F")


def is_signal_source(source: str) -> bool:
    """Whether ``source`` names arrays or an image folder rather than a table file."""
    path = Path(source)
    return path.suffix.lower() in ARRAY_SUFFIXES or path.is_dir()


def signal_shape(table: pa.Table) -> tuple[int, ...] | None:
    """The (C, L) or (C, H, W) of each row of ``table``, when it holds signals or images."""
    metadata = table.schema.metadata or {}
    if SHAPE_KEY not in metadata:
        return None
    return tuple(int(n) for n in metadata[SHAPE_KEY].decode().split(","))


def read_signals(
    source: str,
    target: str | None = None,
    image_size: Sequence[int] | None = None,
    labelled: bool = True,
    channels: int | None = None,
) -> tuple[pa.Table, str | None]:
    """The value columns of ``source`` (and its target column when ``labelled``) as one
    table, and the target column's name (None without labels).

    ``target``: for a ``.npy``, the ``.npy`` file of its labels. ``channels``: the channels a
    trained run reads (1 or 3), which an image folder's images are converted to when
    predicting.
    """
    path = Path(source)
    if not path.exists():
        raise DataError(f"{'folder' if not path.suffix else 'file'} {source!r} does not exist.")
    if path.is_dir():
        x, labels = _image_folder(path, source, image_size, labelled, channels)
        name = FOLDER_TARGET
    elif path.suffix.lower() == ".npz":
        x, labels = _npz(path, source, labelled)
        name = ARRAY_TARGET
    else:
        x = _npy(path, source)
        labels = _npy_labels(target, source, len(x)) if labelled else None
        name = ARRAY_TARGET
    columns = {f"x{i}": pa.array(column) for i, column in enumerate(_flat(x).T)}
    if labels is not None:
        columns[name] = pa.array(labels)
    table = pa.table(columns)
    shape = ",".join(str(n) for n in x.shape[1:]).encode()
    return table.replace_schema_metadata({SHAPE_KEY: shape}), name if labels is not None else None


def with_signal_shape(table: pa.Table, shape: tuple[int, ...] | None) -> pa.Table:
    """``table`` carrying ``shape`` (none: as it is)."""
    if shape is None:
        return table
    return table.replace_schema_metadata({SHAPE_KEY: ",".join(map(str, shape)).encode()})


def _flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)


def _checked_values(x: np.ndarray, source: str, what: str = "x") -> np.ndarray:
    if x.ndim not in (3, 4):
        raise DataError(
            f"{what} in {source!r} has shape {x.shape}; growml reads signals as (rows, "
            "channels, length) and images as (rows, channels, height, width)."
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or len(x) == 0:
        raise DataError(f"{what} in {source!r} must hold numbers in at least one row.")
    if min(x.shape[1:]) < 1:
        raise DataError(f"{what} in {source!r} has an empty axis: shape {x.shape}.")
    return x


def _npz(path: Path, source: str, labelled: bool) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = list(arrays.files)
            if "x" not in names:
                raise DataError(
                    f"file {source!r} has no array 'x' (it has {', '.join(names) or 'none'}); "
                    "save the signals as x and their labels as y."
                )
            x = _checked_values(arrays["x"], source)
            if not labelled:
                return x, None
            if "y" not in names:
                raise DataError(
                    f"file {source!r} has no array 'y' of labels; save them beside x as y."
                )
            labels = arrays["y"]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"file {source!r} is not a readable .npz file ({error}).") from None
    return x, _checked_labels(labels, source, len(x))


def _npy(path: Path, source: str) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"file {source!r} is not a readable .npy file ({error}).") from None
    return _checked_values(x, source)


def _npy_labels(target: str | None, source: str, rows: int) -> np.ndarray:
    if target is None or Path(target).suffix.lower() != ".npy":
        raise DataError(
            f"file {source!r} holds values only; give its labels as --target LABELS.npy "
            "(one per row), or save both in one .npz as x and y."
        )
    try:
        labels = np.load(target, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"file {target!r} does not exist.") from None
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"file {target!r} is not a readable .npy file ({error}).") from None
    return _checked_labels(labels, target, rows)


def _checked_labels(labels: np.ndarray, source: str, rows: int) -> np.ndarray:
    if labels.shape != (rows,):
        raise DataError(
            f"the labels in {source!r} have shape {labels.shape}; give one label per row, "
            f"shape ({rows},)."
        )
    if labels.dtype.kind not in "biufUS":
        raise DataError(f"the labels in {source!r} must be numbers or text.")
    return labels.astype(str) if labels.dtype.kind == "S" else labels


def _image_folder(
    path: Path,
    source: str,
    image_size: Sequence[int] | None,
    labelled: bool,
    channels: int | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(child for child in path.iterdir() if child.is_dir())
    files: list[tuple[Path, str]] = [
        (file, folder.name) for folder in classes for file in _images_in(folder)
    ]
    if not labelled:
        files += [(file, "") for file in _images_in(path)]
    if labelled and not classes:
        raise DataError(
            f"{source!r} is a directory without subfolders; give a CSV or Parquet file, an "
            ".npz, or a folder with one subfolder of PNG or JPEG images per class."
        )
    if labelled and len(classes) < 2:
        raise DataError(
            f"folder {source!r} needs one subfolder of images per class (at least two), as "
            "torchvision's ImageFolder reads them."
        )
    if not files:
        raise DataError(f"folder {source!r} holds no PNG or JPEG images.")
    images = []
    for file, _ in files:
        try:
            with Image.open(file) as image:
                image.load()
                images.append(image.copy())
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"image {str(file)!r} cannot be read ({error}).") from None
    if channels is None:
        grey = all(image.mode in _GREY_MODES for image in images)
        channels = 1 if grey else 3
    mode = "L" if channels == 1 else "RGB"
    sizes = {image.size for image in images}  # (width, height)
    if image_size is None and len(sizes) > 1:
        shown = " and ".join(f"{w}×{h}" for w, h in sorted(sizes)[:2])
        raise DataError(
            f"the images in {source!r} differ in size ({shown}); resize them to one size with "
            "--set data.image_size=[HEIGHT,WIDTH]."
        )
    height, width = image_size if image_size is not None else next(iter(sizes))[::-1]
    arrays = []
    for image in images:
        image = image.convert(mode)
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        values = np.asarray(image, dtype=np.float32) / 255.0
        arrays.append(values[None] if channels == 1 else values.transpose(2, 0, 1))
    labels = np.asarray([label for _, label in files]) if labelled else None
    return np.stack(arrays), labels


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        file
        for file in folder.iterdir()
        if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES
    )
