"""Train, validation and test rows: seeded, and stratified by class for classification."""

from __future__ import annotations

import math

import numpy as np

from growml.errors import DataError


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

    # scikit-learn takes most of a second to import; `import growml.data` must stay fast.
    from sklearn.model_selection import train_test_split

    rows = np.arange(n_rows)
    try:
        if n_test:
            rest, test = train_test_split(
                rows, test_size=n_test, random_state=seed, stratify=labels
            )
        else:
            rest, test = rows, rows[:0]
        train, validation = train_test_split(
            rest,
            test_size=n_validation,
            random_state=seed,
            stratify=None if labels is None else np.asarray(labels)[rest],
        )
    except ValueError:
        raise DataError(
            f"{n_rows} rows cannot be split into train, validation and test parts that each "
            "hold every class; use more rows or other test_size and validation_size."
        ) from None
    return _sorted(train), _sorted(validation), _sorted(test)


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
