"""MetricSeries: a downsampled copy (at most ~2,000 points a metric) of a run's curves for charts.

Derived and rebuildable: the worker appends to it while a run trains (`series_append`), and
`series_rebuild(run)` recomputes it from MLflow's history (read whole up to
tracking.mlflow_io.HISTORY_POINTS points a metric, an even sample of them beyond). Downsampling keeps the shape
of a curve with MinMax-LTTB (the `tsdownsample` package: largest-triangle-three-buckets on
min/max preselected points), and keeps every non-finite point, since a NaN or an inf is
what a diverging run is about. Points are stored as [step, value] with non-finite values
as the strings "nan", "inf", "-inf" (valid JSON, as in DESIGN.md's run input).
"""
from __future__ import annotations

import math

import numpy as np
from django.db import transaction

MAX_POINTS = 2000


def encode(value):
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def decode(value):
    return float(value)  # float("nan"), float("inf") and float("-inf") read the strings back


def downsample(points, max_points=MAX_POINTS):
    """At most max_points of [(step, value), ...] (sorted by step), keeping the curve's shape
    and every non-finite point."""
    points = list(points)
    if len(points) <= max_points:
        return points
    odd = [p for p in points if not math.isfinite(p[1])]
    finite = [p for p in points if math.isfinite(p[1])]
    n_out = max(4, max_points - len(odd))
    if len(finite) > n_out:
        x = np.fromiter((p[0] for p in finite), dtype=np.int64, count=len(finite))
        y = np.fromiter((p[1] for p in finite), dtype=np.float64, count=len(finite))
        finite = [finite[i] for i in _lttb_indices(x, y, n_out)]
    return sorted(finite + odd[:max_points], key=lambda p: p[0])


def _lttb_indices(x, y, n_out):
    try:
        from tsdownsample import MinMaxLTTBDownsampler
    except ImportError:  # pragma: no cover - the package is in requirements.txt
        return _minmax_buckets(y, n_out)
    return MinMaxLTTBDownsampler().downsample(x, y, n_out=n_out - n_out % 2)


def _minmax_buckets(y, n_out):
    """Fallback: first, last and each bucket's min and max."""
    buckets = np.array_split(np.arange(1, len(y) - 1), max(1, (n_out - 2) // 2))
    keep = {0, len(y) - 1}
    for b in buckets:
        if len(b):
            keep.update((int(b[np.argmin(y[b])]), int(b[np.argmax(y[b])])))
    return sorted(keep)


def merge(stored, fresh, max_points=MAX_POINTS):
    """A series' stored points ([[step, encoded value], ...]) with new (step, value) points after
    them: appended as they are while they fit in max_points, else the whole downsampled to half
    of it (so a long run is downsampled every max_points / 2 new points, not at every append)."""
    if len(stored) + len(fresh) > max_points:
        merged = downsample([(s, decode(v)) for s, v in stored] + list(fresh), max_points // 2)
        return [[s, encode(v)] for s, v in merged]
    # the stored points stay as they are; only the new ones are encoded
    return stored + [[s, v if math.isfinite(v) else encode(v)] for s, v in fresh]


def series_append(run_id, points_by_key):
    """Append new points ({metric: [(step, value), ...]}) to a run's series; points at or
    before a series' last step are ignored, so a resumed run never doubles a step. One
    transaction and three queries for all the metrics (one select, one insert, one update)."""
    from django.utils import timezone

    from tracking.models import MetricSeries

    keys = [key for key, points in points_by_key.items() if points]
    if not keys:
        return
    with transaction.atomic():  # one commit for all the metrics
        existing = {s.key: s for s in MetricSeries.objects.select_for_update().filter(run_id=run_id, key__in=keys)}
        created, changed = [], []
        for key in keys:
            series = existing.get(key)
            if series is None:
                series = MetricSeries(run_id=run_id, key=key, points=[], count=0, last_step=-1)
                created.append(series)
            last = series.last_step
            fresh = [(int(s), float(v)) for s, v in points_by_key[key] if s > last]
            if not fresh:
                continue
            series.points = merge(series.points, fresh)
            series.count += len(fresh)
            series.last_step = fresh[-1][0]
            series.updated_at = timezone.now()
            if series.pk is not None:
                changed.append(series)
        if created:
            MetricSeries.objects.bulk_create(created)
        if changed:
            MetricSeries.objects.bulk_update(changed, ["points", "count", "last_step", "updated_at"])


def series_rebuild(run, client=None):
    """Recompute every series of a run from its full MLflow history; returns {metric: count}."""
    from django.conf import settings

    from tracking.mlflow_io import metric_history
    from tracking.models import MetricSeries
    from workers.mlflow_logging import make_client

    if not run.mlflow_run_id:
        return {}
    client = client or make_client(settings.MLFLOW_TRACKING_URI)
    counts = {}
    keys = client.get_run(run.mlflow_run_id).data.metrics.keys()
    for key in sorted(keys):
        by_step = {}
        for step, _, value in metric_history(client, run.mlflow_run_id, key):  # sorted, at most HISTORY_POINTS
            by_step[step] = value
        points = downsample(sorted(by_step.items()))
        MetricSeries.objects.update_or_create(run=run, key=key, defaults={
            "points": [[s, encode(v)] for s, v in points],
            "count": len(by_step),
            "last_step": max(by_step) if by_step else -1,
        })
        counts[key] = len(by_step)
    MetricSeries.objects.filter(run=run).exclude(key__in=list(keys)).delete()
    return counts
