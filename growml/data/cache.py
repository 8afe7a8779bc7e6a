"""The encoded rows of data larger than memory: float32 matrices in memory-mapped files.

The files are created in a fresh folder under ``data.cache_dir`` (by default the system's
temporary folder), mapped, and deleted at once: the mapping keeps their pages reachable, the
operating system frees the disk space when the process ends, and nothing is left behind however
it ends (an error, an interrupt, a killed process). The pages the training touches are shared
with the file, so ``torch.from_numpy``/``torch.as_tensor`` on a matrix makes no copy; the kernel
writes them out to disk and reads them back as memory requires.

The pages a process has touched count in its resident memory until it lets them go
(``release_pages``): a pass over the rows (encoding them, evaluating a network on them) lets
its pages go behind it, so that only the rows being trained on count at once.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from growml.errors import DataError


def mapped_matrices(
    shapes: Sequence[tuple[int, int]], folder: str | None = None
) -> list[np.ndarray]:
    """Writable float32 matrices of ``shapes``, zeros, each backed by a deleted file under
    ``folder`` (a matrix without rows is an ordinary empty array)."""
    try:
        directory = Path(tempfile.mkdtemp(prefix="growml-cache-", dir=folder))
    except OSError as exc:
        raise DataError(
            f"the cache folder {folder or tempfile.gettempdir()!r} cannot be written "
            f"({exc.strerror}); set data.cache_dir to a folder with room for the encoded rows."
        ) from None
    try:
        return [
            _mapped(directory / f"part{number}.npy", shape) for number, shape in enumerate(shapes)
        ]
    except OSError as exc:
        raise DataError(
            f"the encoded rows do not fit in {str(directory.parent)!r} ({exc.strerror}); set "
            "data.cache_dir to a folder with room for them."
        ) from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _mapped(path: Path, shape: tuple[int, int]) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, dtype=np.float32)
    matrix = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    # Reserve the blocks now, so that a full disk is an error here rather than a SIGBUS when
    # a page is first written.
    with path.open("r+b") as handle:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(handle.fileno(), 0, path.stat().st_size)
    return matrix


def release_pages(matrix: np.ndarray) -> None:
    """Let this process's resident pages of a memory-mapped ``matrix`` go (an ordinary array
    is left alone). The rows stay in the file, and in the system's page cache while memory
    allows; touching them again reads them back. A shared mapping keeps what was written."""
    mapping = getattr(matrix, "_mmap", None)
    if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)
