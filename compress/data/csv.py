"""A table in a CSV file: a header row, one numeric column per feature, one label column.

Every cell is checked while reading; the first bad one (empty, not a number, NaN or Inf, or a
row of the wrong length) is named by file, line and column. Class labels are the label column's
distinct values, sorted (numerically when they all are numbers). The rows are split into
train/test (stratified, seeded) and handed to the npz source's checks: a CSV is the npz
contract's (N, F) arrays written as text.
"""

from __future__ import annotations

import csv
import difflib
import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from compress.data.npz import raw_splits_from
from compress.data.problems import listed
from compress.data.splits import (
    LabelledSplitFields,
    RawSplits,
    check_class_counts,
    stratified_split,
)
from compress.errors import DataError


class CsvData(LabelledSplitFields):
    source: Literal["csv"] = "csv"
    path: str = Field(description="the .csv file (header row first); relative paths start at "
                                  "the pipeline file")
    label: str = Field(description="name of the column holding each row's class")
    features: tuple[str, ...] | None = Field(
        None, min_length=1, description="feature columns, in model input order; default: every "
        "column but the label, in file order")
    delimiter: str = Field(",", min_length=1, max_length=1, description="cell separator")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="fraction held out for test "
                                 "(unused with test_path)")
    test_path: str | None = Field(
        None, description="a .csv of held-out test rows with the same columns (a fixed test "
        "split, like npz's x_test or an image folder's test/); `path` is then train and val "
        "only; relative paths start at the pipeline file")


def _number(cell: str) -> float | None:
    try:
        v = float(cell)
    except ValueError:
        return None
    return v


def read_table(cfg: CsvData, path: str | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """(x float32 (N, F), label cell per row, feature names) of `path` (default `cfg.path`);
    one DataError naming every bad cell and row (up to a limit)."""
    path = Path(path or cfg.path)
    if not path.is_file():
        what = "is a folder, not a CSV file" if path.is_dir() else "file not found"
        raise DataError(f"{path}: {what}; check `data.path`")
    try:
        f = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed below)
    except PermissionError as e:
        raise DataError(f"{path}: cannot read it (permission denied); make it readable") from e
    with f:
        try:
            reader = csv.reader(f, delimiter=cfg.delimiter)
            header = [h.strip() for h in next(reader, [])]
            if not header:
                raise DataError(f"{path}: the file is empty; it needs a header row of column "
                                "names, then one row per sample")
            cols = _columns(path, header, cfg)
            x, labels, problems = [], [], []
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue  # blank lines, e.g. the one after the last row
                where = f"line {reader.line_num}"
                if len(row) != len(header):
                    problems.append(f"{where}: {len(row)} cells but the header has "
                                    f"{len(header)} columns")
                    continue
                cells = [_cell(row[i], f"{where}, column '{header[i]}'") for i in cols]
                problems += [c for c in cells if isinstance(c, str)]
                x.append(cells)
                label = row[header.index(cfg.label)].strip()
                if not label:
                    problems.append(f"{where}, column '{cfg.label}': empty label")
                labels.append(label)
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not a readable CSV file ({e}); save it as UTF-8 CSV with "
                            f"'{cfg.delimiter}' between cells") from e
    if problems:
        where = f"{path}, " if len(problems) == 1 else f"{path}: {len(problems)} bad cells or " \
            "rows: "
        raise DataError(f"{where}{listed(problems)}; {FIX}")
    if not x:
        raise DataError(f"{path}: the header is the only row; add one row per sample")
    return np.asarray(x, dtype=np.float32), labels, [header[i] for i in cols]


FIX = ("feature columns must be numeric (encode categories as numbers, fill or drop missing and "
       "infinite values), every row needs one cell per column and a class")


def _columns(path: Path, header: list[str], cfg: CsvData) -> list[int]:
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DataError(f"{path}: column name(s) {dup} appear twice in the header; rename them")
    for name, field in [(cfg.label, "label")] + [(f, "features") for f in cfg.features or []]:
        if name not in header:
            close = difflib.get_close_matches(name, header, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise DataError(f"{path}: data, field '{field}': no column '{name}'; {hint}"
                            f"(columns: {', '.join(header)})")
    names = cfg.features or [h for h in header if h != cfg.label]
    if cfg.label in names:
        raise DataError(f"{path}: data, field 'features': lists the label column "
                        f"'{cfg.label}'; a model must not see its answer")
    if not names:
        raise DataError(f"{path}: no feature columns besides the label '{cfg.label}'")
    return [header.index(n) for n in names]


def _cell(cell: str, where: str) -> float | str:
    """The cell's number, or what is wrong with it (prefixed with `where`)."""
    text = cell.strip()
    v = _number(text)
    if v is None:
        what = "empty cell" if not text else f"{text[:40]!r} is not a number"
        return f"{where}: {what}"
    if not math.isfinite(v):
        return f"{where}: {text!r} is not a finite number"
    return v


def class_order(values: list[str]) -> list[str]:
    """Distinct label cells, sorted numerically when all are numbers ('2' before '10')."""
    distinct = set(values)
    if all(_number(v) is not None for v in distinct):
        return sorted(distinct, key=lambda v: (float(v), v))
    return sorted(distinct)


def load_csv_raw(cfg: CsvData) -> RawSplits:
    x, cells, features = read_table(cfg)
    labels = class_order(cells)
    if len(labels) < 2:
        raise DataError(f"{cfg.path}: column '{cfg.label}' holds one class ({labels[0]!r}); a "
                        "classifier needs at least two")
    index = {v: i for i, v in enumerate(labels)}
    y = np.asarray([index[v] for v in cells], dtype=np.int64)
    check_class_counts(y, labels, cfg.path, "rows")
    if cfg.test_path is None:
        x_rest, y_rest, x_test, y_test = stratified_split(x, y, cfg.test_fraction, cfg.seed)
    else:
        x_rest, y_rest = x, y
        x_test, y_test = _fixed_test(cfg, index)
    arrays = {"x_train": x_rest, "y_train": y_rest, "x_test": x_test, "y_test": y_test,
              "class_labels": np.asarray(labels)}
    raw = raw_splits_from(arrays, cfg, Path(cfg.path))
    raw.source_steps = {"csv": {"features": features, "label_column": cfg.label,
                                "delimiter": cfg.delimiter}}
    return raw


def _fixed_test(cfg: CsvData, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `test_path`, labelled with the training file's classes."""
    x, cells, _ = read_table(cfg, cfg.test_path)
    unknown = sorted(set(cells) - set(index))
    if unknown:
        raise DataError(f"{cfg.test_path}: class(es) {unknown[:5]} of column '{cfg.label}' are "
                        f"not in the training file {cfg.path}; a model cannot predict a class "
                        "it never saw: move such rows to the training file")
    return x, np.asarray([index[v] for v in cells], dtype=np.int64)
