"""Uploaded data sets. `reader` is the one CSV reader, used at upload (the form, the API) and by
the worker (workers/datasets.py); it imports neither Django nor torch. `uploads` (Django) stores
an upload in its team's folder, checks that a run's `csv_path` belongs to the run's team, and
removes the uploads of rejected submissions."""
from .reader import CsvError, CsvLimits, CsvSummary, read_csv, summarise_csv

__all__ = ["CsvError", "CsvLimits", "CsvSummary", "read_csv", "summarise_csv"]
