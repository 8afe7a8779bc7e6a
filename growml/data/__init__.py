"""Datasets by name, tabular files, preprocessing and splits: everything before the network.

``load_table`` turns a built-in name or a CSV/Parquet file into a checked ``Table``;
``prepare`` splits it and fits the ``Preprocessor`` and ``TargetEncoder`` on the training rows;
``as_arrow`` reads the rows a user gives for prediction. ``read_columns`` decides how each
column is read (numbers written as text, missing marks, dates and identifiers dropped) and
records it as a ``ColumnReading``.
"""

from growml.data.builtin import DatasetInfo, list_datasets
from growml.data.columns import ColumnReading, read_columns
from growml.data.files import as_arrow
from growml.data.preprocess import Preprocessor, TargetEncoder
from growml.data.split import split_indices
from growml.data.table import (
    PreparedData,
    Table,
    infer_task,
    load_data_table,
    load_table,
    prepare,
    read_rows,
    split_rows,
    table_from_columns,
)

__all__ = [
    "ColumnReading",
    "DatasetInfo",
    "PreparedData",
    "Preprocessor",
    "Table",
    "TargetEncoder",
    "as_arrow",
    "infer_task",
    "load_data_table",
    "list_datasets",
    "load_table",
    "prepare",
    "read_columns",
    "read_rows",
    "split_indices",
    "split_rows",
    "table_from_columns",
]
