"""Train, validation and test rows: seeded, and stratified by class for classification."""

from __future__ import annotations

import math

import numpy as np

from growml.errors import DataError

# Rows from which a stratified split is drawn by ``stratified_split`` rather than by
# scikit-learn's ``train_test_split`` (the same rows; see its docstring).
LARGE_SPLIT_ROWS = 1 << 20


def split_indices(
    labels: np.ndarray | None,
    n_rows: int,
    test_size: float,
    validation_size: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of the train, validation and test parts, each sorted, as int64.

    ``labels`` are the class labels to stratify by (one per row), or None to split without
    stratifying (regression). ``test_size`` and ``validation_size`` are fractions of all
    ``n_rows``; the same ``seed`` gives the same parts. A ``test_size`` of 0 holds out no test
    part (an estimator's training data is all for training and validation); the test indices
    are then empty.
    """
    n_test = _part_rows(test_size, n_rows)
    n_validation = _part_rows(validation_size, n_rows)
    n_train = n_rows - n_test - n_validation
    if min(n_train, n_validation) < 1 or (test_size > 0 and n_test < 1):
        raise DataError(
            f"{n_rows} rows cannot be split into train, validation and test parts of at least "
            f"one row each with test_size {test_size} and validation_size {validation_size}; "
            "use more rows or other fractions."
        )
    if labels is not None:
        _check_stratifiable(np.asarray(labels), n_train, n_validation, n_test)

    rows = np.arange(n_rows)
    try:
        if n_test:
            rest, test = _split_off(rows, n_test, seed, labels)
        else:
            rest, test = rows, rows[:0]
        train, validation = _split_off(
            rest, n_validation, seed, None if labels is None else np.asarray(labels)[rest]
        )
    except ValueError:
        raise DataError(
            f"{n_rows} rows cannot be split into train, validation and test parts that each "
            "hold every class; use more rows or other test_size and validation_size."
        ) from None
    return _sorted(train), _sorted(validation), _sorted(test)


def _split_off(
    rows: np.ndarray, n_part: int, seed: int, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` less ``n_part`` of them, and those ``n_part``: scikit-learn's
    ``train_test_split`` (stratified by ``labels`` when given), or its stratified draw
    re-done without per-row Python objects from ``LARGE_SPLIT_ROWS`` rows."""
    if labels is not None and len(rows) >= LARGE_SPLIT_ROWS:
        return stratified_split(rows, n_part, seed, np.asarray(labels))
    # scikit-learn takes most of a second to import; `import growml.data` must stay fast.
    from sklearn.model_selection import train_test_split

    return train_test_split(rows, test_size=n_part, random_state=seed, stratify=labels)


def stratified_split(
    rows: np.ndarray, n_part: int, seed: int, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split(rows, test_size=n_part, random_state=seed, stratify=labels)``: the
    same rows in the same order, drawn as scikit-learn's ``StratifiedShuffleSplit`` draws them
    (the same calls on the same random state), but with 4-byte positions in arrays where it
    keeps a Python object per row (about 100 bytes a row at its peak, 1 GB for 10 M rows)."""
    from sklearn.utils import check_random_state
    from sklearn.utils.extmath import _approximate_mode

    classes, counts = np.unique(labels, return_counts=True)
    n_rest = len(rows) - n_part
    if counts.min() < 2 or min(n_rest, n_part) < len(classes):
        raise ValueError("a stratified split needs two rows and a row per part of every class")
    position = np.int32 if len(rows) < 2**31 else np.int64
    random = check_random_state(seed)
    rest_counts = _approximate_mode(counts, n_rest, random)
    part_counts = _approximate_mode(counts - rest_counts, n_part, random)
    rest, part = [], []
    for label, count, n_kept, n_drawn in zip(
        classes, counts, rest_counts, part_counts, strict=True
    ):
        members = np.flatnonzero(labels == label).astype(position)
        shuffled = members[random.permutation(count)]
        rest.append(shuffled[:n_kept])
        part.append(shuffled[n_kept : n_kept + n_drawn])
    # RandomState.permutation shuffles a copy with the same draws whatever the integer width.
    return rows[random.permutation(np.concatenate(rest))], rows[
        random.permutation(np.concatenate(part))
    ]


def _sorted(rows: np.ndarray) -> np.ndarray:
    return np.sort(rows).astype(np.int64)


def _part_rows(fraction: float, n_rows: int) -> int:
    # Rounded first so that 0.7 * 10 = 7.000000000000001 gives 7 rows, not 8.
    return math.ceil(round(fraction * n_rows, 9))


def _check_stratifiable(labels: np.ndarray, n_train: int, n_validation: int, n_test: int) -> None:
    classes, counts = np.unique(labels, return_counts=True)
    rarest = int(np.argmin(counts))
    parts = [
        ("train", n_train, "smaller test_size and validation_size"),
        ("validation", n_validation, "a larger validation_size"),
        ("test", n_test, "a larger test_size"),
    ][: 3 if n_test else 2]
    # Stratification puts every class in every part, so a class needs a row for each.
    if counts[rarest] < len(parts):
        names = "train, validation and test" if n_test else "train and validation"
        raise DataError(
            f"class {_label(classes[rarest])!r} has only {counts[rarest]} row(s) but a "
            f"stratified split needs at least {len(parts)} per class (one each for {names}); "
            "add rows of that class or remove them."
        )
    for part, size, setting in parts:
        if size < len(classes):
            raise DataError(
                f"the {part} part would have {size} rows, fewer than the {len(classes)} "
                f"classes; use {setting} or more rows."
            )


def _label(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value
