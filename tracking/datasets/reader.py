"""The one CSV reader: at upload (`summarise_csv`, every check, nothing kept but a summary) and in
the worker (`read_csv`, the same checks, then the float32 matrix). Pure: numpy and pandas, no
Django, no torch.

Memory is bounded: the file is read in chunks of rows (stdlib `csv`, so a ragged row is seen
with its number), a text column is one-hot encoded only up to `max_categories` distinct values
(beyond that it is refused by name, as soon as it is seen), and the matrix is allocated once at
its final size, which `max_cells` bounds. Every message names the file and the row or column.
Rows are numbered as in a spreadsheet: the header is row 1, the first data row is row 2.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from typing import BinaryIO, Optional, Union

import numpy as np

CHUNK_ROWS = 8192
MISSING = ("", "na", "n/a", "nan", "null", "none", "?")


class CsvError(ValueError):
    """A CSV that cannot be used; str(error) names the file and the row or column."""

    def __init__(self, message: str, *, column: Optional[str] = None, row: Optional[int] = None):
        super().__init__(message)
        self.column, self.row = column, row


@dataclass(frozen=True)
class CsvLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_rows: int = 200_000
    max_columns: int = 500
    max_categories: int = 50      # distinct values of a text feature column (one-hot encoded)
    max_classes: int = 1000       # distinct values of the label column
    max_cells: int = 20_000_000   # data rows x input features after encoding (float32: 80 MB)

    @classmethod
    def from_settings(cls, settings) -> "CsvLimits":
        names = {"max_bytes": "CSV_MAX_BYTES", "max_rows": "CSV_MAX_ROWS", "max_columns": "CSV_MAX_COLUMNS",
                 "max_categories": "CSV_MAX_CATEGORIES", "max_classes": "CSV_MAX_CLASSES",
                 "max_cells": "CSV_MAX_CELLS"}
        return cls(**{k: getattr(settings, v) for k, v in names.items() if hasattr(settings, v)})


@dataclass
class CsvSummary:
    name: str
    columns: list
    label: Optional[str]
    rows: int                                        # data rows with a label
    numeric: list = field(default_factory=list)      # feature columns read as numbers
    categories: dict = field(default_factory=dict)   # text feature column -> its sorted values
    classes: list = field(default_factory=list)      # sorted label values

    @property
    def features(self) -> int:
        return len(self.numeric) + sum(len(v) for v in self.categories.values())

    def as_dict(self) -> dict:
        return {"name": self.name, "columns": self.columns, "label": self.label, "rows": self.rows,
                "features": self.features, "classes": len(self.classes)}


Source = Union[str, os.PathLike, BinaryIO]


def _size(source) -> int:
    if isinstance(source, (str, os.PathLike)):
        return os.path.getsize(source)
    if getattr(source, "size", None) is not None:
        return int(source.size)
    here = source.tell()
    source.seek(0, io.SEEK_END)
    size = source.tell()
    source.seek(here)
    return size


class _Opened:
    """A binary stream on the source, rewound; a path is opened and closed, a file object left open."""

    def __init__(self, source):
        self.source = source
        self.stream = None

    def __enter__(self) -> BinaryIO:
        if isinstance(self.source, (str, os.PathLike)):
            self.stream = open(self.source, "rb")
        else:
            self.stream = getattr(self.source, "file", self.source)  # a Django UploadedFile's file
            self.stream.seek(0)
        return self.stream

    def __exit__(self, *exc):
        if isinstance(self.source, (str, os.PathLike)):
            self.stream.close()
        else:
            self.stream.seek(0)


def _bad_line(stream: BinaryIO) -> int:
    """The row number (1 = header) of the first line that is not UTF-8."""
    stream.seek(0)
    for number, line in enumerate(stream, start=1):
        try:
            (line[3:] if number == 1 and line.startswith(b"\xef\xbb\xbf") else line).decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 0


def _chunks(stream: BinaryIO, name: str, limits: CsvLimits):
    """(header, then [(row number, fields), ...] chunks): ragged rows, encoding and row count checked."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text)
    number = 0
    try:
        header = None
        chunk = []
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            number += 1
            if header is None:
                header = fields
                yield header
                continue
            if len(fields) != len(header):
                raise CsvError(f"{name}: row {number} has {len(fields)} fields, the header has {len(header)}",
                               row=number)
            if number - 1 > limits.max_rows:
                raise CsvError(f"{name}: more than {limits.max_rows:,} data rows (CSV_MAX_ROWS)", row=number)
            chunk.append(fields)
            if len(chunk) == CHUNK_ROWS:
                yield chunk
                chunk = []
        if header is None:
            raise CsvError(f"{name}: the file is empty (a header row and data rows are needed)", row=1)
        if chunk:
            yield chunk
    except UnicodeDecodeError:
        row = _bad_line(stream)
        raise CsvError(f"{name}: row {row} is not UTF-8 text (save the file as UTF-8, e.g. \"CSV UTF-8\" "
                       f"in a spreadsheet)", row=row) from None
    except csv.Error as exc:
        raise CsvError(f"{name}: row {number + 1} cannot be read: {exc}", row=number + 1) from None
    finally:
        try:
            text.detach()  # leave the underlying stream open (the caller closes or rewinds it)
        except ValueError:
            pass


def _header(fields, name, limits, label):
    columns = [f.strip() for f in fields]
    if len(columns) > limits.max_columns:
        raise CsvError(f"{name}: {len(columns):,} columns, more than {limits.max_columns:,} (CSV_MAX_COLUMNS)", row=1)
    seen = set()
    for i, column in enumerate(columns, start=1):
        if not column:
            raise CsvError(f"{name}: column {i} of the header has no name", row=1)
        if column in seen:
            raise CsvError(f"{name}: column '{column}' appears twice in the header", column=column, row=1)
        seen.add(column)
    if label is not None and label.strip() not in seen:
        shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
        raise CsvError(f"{name}: no column '{label}' (columns: {shown})", column=label)
    return columns


def _parse(values):
    """(numbers as float64 with NaN where missing or text, missing mask, text mask) of strings."""
    import pandas as pd

    try:  # the common case, a column of plain numbers: parsed in C at once
        numbers = np.array(values, dtype=np.float64)
    except ValueError:
        pass
    else:
        missing = ~np.isfinite(numbers)
        numbers[missing] = np.nan
        return pd.Series(values, dtype=object), numbers, missing, np.zeros(len(numbers), dtype=bool)
    s = pd.Series(values, dtype=object).str.strip()
    missing = s.str.lower().isin(MISSING).to_numpy()
    numbers = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    finite = np.isfinite(numbers)
    text = ~finite & ~missing & ~np.isin(s.str.lower().to_numpy(), ("inf", "-inf", "+inf", "infinity", "-infinity"))
    missing = missing | (~finite & ~text)
    numbers[~finite] = np.nan
    return s, numbers, missing, text


def summarise_csv(source: Source, *, label: Optional[str] = None, name: str = "the CSV",
                  limits: CsvLimits = CsvLimits()) -> CsvSummary:
    """Every check of the file (size, encoding, ragged rows, rows, columns, text columns' distinct
    values, the label's classes) without keeping the data; CsvError naming file and row/column."""
    size = _size(source)
    if size > limits.max_bytes:
        raise CsvError(f"{name}: {size / 2**20:.1f} MB, larger than {limits.max_bytes / 2**20:.0f} MB (CSV_MAX_BYTES)")
    with _Opened(source) as stream:
        chunks = _chunks(stream, name, limits)
        columns = _header(next(chunks), name, limits, label)
        label = label.strip() if label is not None else None
        label_at = columns.index(label) if label is not None else None
        distinct = [set() for _ in columns]      # None once over the limit
        is_text = [False] * len(columns)
        rows = 0
        for chunk in chunks:
            cols = list(zip(*chunk))
            keep = None
            if label_at is not None:
                s, _, missing, _ = _parse(cols[label_at])
                keep = ~missing
                rows += int(keep.sum())
                _collect(distinct, label_at, s[keep].unique(), limits.max_classes)
                if distinct[label_at] is None:
                    raise CsvError(f"{name}: the label column '{label}' has more than {limits.max_classes:,} "
                                   f"distinct values (CSV_MAX_CLASSES)", column=label)
            else:
                rows += len(chunk)
            for j, values in enumerate(cols):
                if j == label_at:
                    continue
                s, _, missing, text = _parse(values)
                if keep is not None:
                    s, missing, text = s[keep], missing[keep], text[keep]
                is_text[j] = is_text[j] or bool(text.any())
                if distinct[j] is not None:
                    _collect(distinct, j, s[~missing].unique(), limits.max_categories)
                if is_text[j] and distinct[j] is None:
                    raise CsvError(f"{name}: column '{columns[j]}' has text in more than {limits.max_categories} "
                                   f"distinct values (CSV_MAX_CATEGORIES), too many to one-hot encode (an id or "
                                   f"free text?): remove the column or turn it into numbers", column=columns[j])
    if rows == 0:
        raise CsvError(f"{name}: a header but no data rows" + (f" with a '{label}' value" if label else ""), row=2)
    summary = CsvSummary(name, columns, label, rows)
    for j, column in enumerate(columns):
        if j == label_at:
            continue
        if is_text[j]:
            summary.categories[column] = sorted(map(str, distinct[j]))
        else:
            summary.numeric.append(column)
    if label is not None:
        summary.classes = sorted(map(str, distinct[label_at]))
        if len(summary.classes) < 2:
            raise CsvError(f"{name}: the label column '{label}' has a single class ('{summary.classes[0]}'); "
                           f"a classifier needs two or more", column=label)
        if summary.features == 0:
            raise CsvError(f"{name}: no feature column besides the label '{label}'", column=label)
    if summary.rows * summary.features > limits.max_cells:
        raise CsvError(f"{name}: {summary.rows:,} rows x {summary.features:,} input features (text columns one-hot "
                       f"encoded) is more than {limits.max_cells:,} values (CSV_MAX_CELLS)")
    return summary


def _collect(distinct, j, values, cap):
    if distinct[j] is None:
        return
    distinct[j].update(values)
    if len(distinct[j]) > cap:
        distinct[j] = None


def read_csv(source: Source, label: str, *, name: str = "the CSV", limits: CsvLimits = CsvLimits()):
    """(x float32 of shape (rows, features), y int64 class indices, summary): numeric columns as
    numbers (missing values: the column's median), text columns one-hot, rows without a label dropped."""
    summary = summarise_csv(source, label=label, name=name, limits=limits)
    x = np.zeros((summary.rows, summary.features), dtype=np.float32)
    y = np.zeros(summary.rows, dtype=np.int64)
    label_at = summary.columns.index(summary.label)
    offsets, at = {}, 0
    for column in summary.columns:
        if column in summary.categories:
            offsets[column], at = at, at + len(summary.categories[column])
        elif column != summary.label:
            offsets[column], at = at, at + 1
    classes = {c: i for i, c in enumerate(summary.classes)}
    with _Opened(source) as stream:
        chunks = _chunks(stream, name, limits)
        next(chunks)
        start = 0
        for chunk in chunks:
            cols = list(zip(*chunk))
            s, _, missing, _ = _parse(cols[label_at])
            keep = ~missing
            n = int(keep.sum())
            y[start:start + n] = [classes[str(v)] for v in s[keep]]
            for j, column in enumerate(summary.columns):
                if j == label_at:
                    continue
                s, numbers, missing, _ = _parse(cols[j])
                if column in summary.categories:
                    index = {v: i for i, v in enumerate(summary.categories[column])}
                    codes = np.array([index.get(str(v), -1) if not m else -1
                                      for v, m in zip(s[keep], missing[keep])], dtype=np.int64)
                    hit = codes >= 0
                    x[start + np.flatnonzero(hit), offsets[column] + codes[hit]] = 1.0
                else:
                    x[start:start + n, offsets[column]] = numbers[keep]
            start += n
    for column in summary.numeric:
        values = x[:, offsets[column]]
        nan = np.isnan(values)
        if nan.any():
            values[nan] = np.median(values[~nan]) if (~nan).any() else 0.0
    return x, y, summary
