"""Uploaded CSVs, owned by their team: stored as MEDIA_ROOT/csv/team-<id>/<random>.csv with a
summary beside it (<random>.json: the file's name as uploaded, rows, features, classes), usable
only by runs of that team, and removed when the submission that uploaded them is rejected."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Optional

from django.conf import settings

from tracking.config import ConfigError

from .reader import CsvError, CsvLimits, CsvSummary, summarise_csv


def csv_limits() -> CsvLimits:
    return CsvLimits.from_settings(settings)


def _team_folder(team_id: int) -> Path:
    return (Path(settings.MEDIA_ROOT) / "csv" / f"team-{int(team_id)}").resolve()


def csv_check(*, uploaded, label: Optional[str]) -> CsvSummary:
    """Every check of an uploaded file (CsvError naming the file and the row or column)."""
    return summarise_csv(uploaded, label=label, name=_display_name(uploaded.name), limits=csv_limits())


def _display_name(name: str) -> str:
    return Path(name or "upload.csv").name[:100]


def csv_store(*, uploaded, team_id: int, summary: CsvSummary) -> str:
    """Save a checked upload in its team's folder; returns its absolute path."""
    folder = _team_folder(team_id)
    folder.mkdir(parents=True, exist_ok=True)
    stem = uuid.uuid4().hex
    path = folder / f"{stem}.csv"
    uploaded.seek(0)
    with open(path, "wb") as out:
        for chunk in uploaded.chunks():
            out.write(chunk)
    (folder / f"{stem}.json").write_text(json.dumps(summary.as_dict()))
    return str(path)


def csv_remove(*, path: str) -> None:
    """Remove an upload (and its summary), e.g. of a submission rejected after it was stored."""
    target = Path(path)
    for p in (target, target.with_suffix(".json")):
        p.unlink(missing_ok=True)


def csv_owned(*, path: str, team_id: int) -> Optional[Path]:
    """The upload's path when it is a stored CSV of this team, else None."""
    try:
        target = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if target.parent != _team_folder(team_id) or target.suffix != ".csv" or not target.is_file():
        return None
    return target


def csv_info(*, path: str, team_id: int) -> dict:
    """The stored summary of a team's upload ({"name", "rows", "features", "classes", ...});
    ConfigError naming csv_path when the path is not an upload of this team."""
    target = csv_owned(path=path, team_id=team_id)
    if target is None:
        raise ConfigError("csv_path", "not a CSV uploaded by this team (upload the file again)")
    info_path = target.with_suffix(".json")
    if info_path.is_file():
        return json.loads(info_path.read_text())
    try:
        summary = summarise_csv(target, name="the uploaded CSV", limits=csv_limits())
    except CsvError as exc:
        raise ConfigError("csv_path", str(exc)) from None
    return summary.as_dict()


def csv_display_name(path: str) -> str:
    """The name the file was uploaded as (never the server path)."""
    info_path = Path(path).with_suffix(".json")
    try:
        return json.loads(info_path.read_text()).get("name") or "the uploaded CSV"
    except (OSError, ValueError):
        return "the uploaded CSV"
