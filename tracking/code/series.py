"""Chart series of runs whose curves come from MLflow whole (a code run at its end, an imported
run): replaced at once, since the axes of a whole run are only known at the end (an epoch-level
value logged at a global step lands on its epoch once the steps per epoch are known)."""
from django.db import transaction

from tracking.models import MetricSeries
from tracking.series import downsample, encode


def series_replace(run_id: int, points_by_key: dict) -> None:
    """Every series of the run from these full curves ({key: [(step, value)]}), downsampled."""
    with transaction.atomic():
        for key, points in points_by_key.items():
            by_step = dict(sorted(points))
            kept = downsample(sorted(by_step.items()))
            MetricSeries.objects.update_or_create(run_id=run_id, key=key, defaults={
                "points": [[s, encode(v)] for s, v in kept], "count": len(by_step),
                "last_step": max(by_step) if by_step else -1})
        MetricSeries.objects.filter(run_id=run_id).exclude(key__in=list(points_by_key)).delete()
