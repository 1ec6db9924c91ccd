"""Read side: querysets and plain data for pages and the API (a constant number of queries)."""
from __future__ import annotations

import json
import math

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from .config import DEFAULTS, FIXED_KEYS, OPTIMIZERS
from .models import ConfigText, MetricSeries, Project, Run, Tag

CHART_KEYS = ("train_loss", "lr", "grad_norm", "train_loss_epoch", "val_loss", "train_accuracy", "val_accuracy")
HISTORY_COLUMNS = ("optimizer", "lr", "batch_size", "epochs", "scheduler", "weight_decay")

# Sort keys offered by the history table: name in the URL -> ORDER BY expression.
SORTS = {
    "created": "created_at", "name": "name", "status": "status", "owner": "owner__username",
    "started": "started_at", "best_val_loss": "best_val_loss", "best_val_accuracy": "best_val_accuracy",
    **{key: f"config__{key}" for key in HISTORY_COLUMNS},
}


class RunFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search", widget=forms.TextInput(
        attrs={"placeholder": "Search name, note, tag", "aria-label": "Search"}))
    status = django_filters.ChoiceFilter(choices=Run.Status.choices, empty_label="any status")
    owner = django_filters.ModelChoiceFilter(queryset=get_user_model().objects.none(), empty_label="anyone")
    optimizer = django_filters.ChoiceFilter(method="by_optimizer", choices=[(o, o) for o in OPTIMIZERS],
                                            empty_label="any optimizer")
    tag = django_filters.ModelChoiceFilter(field_name="tags", queryset=Tag.objects.none(), empty_label="any tag")

    class Meta:
        model = Run
        fields = ["q", "status", "owner", "optimizer", "tag"]

    def __init__(self, data=None, *, project: Project, **kwargs):
        super().__init__(data, queryset=run_table_queryset(project), **kwargs)
        self.filters["owner"].queryset = get_user_model().objects.filter(
            memberships__team_id=project.team_id).order_by("username")
        self.filters["tag"].queryset = Tag.objects.filter(project=project).order_by("name")

    def by_optimizer(self, queryset, name, value):
        # The expression of the index "run_project_optimizer" (Run.Meta): the count and the page
        # are an index search, not a scan of every run's JSON.
        return queryset.alias(optimizer_text=ConfigText("optimizer")).filter(optimizer_text=value)

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(note__icontains=value) | Q(tags__name__icontains=value)
                               ).distinct()


TABLE_FIELDS = ("id", "project_id", "name", "status", "config", "best_val_loss", "best_val_accuracy",
                "created_at", "started_at", "finished_at", "owner__id", "owner__username")


def run_table_queryset(project: Project):
    """Runs of a project with what the table shows in one query (only its columns: a Run and its
    owner have ~50 fields, and building them was most of a 200-row page), tags in one more."""
    return (Run.objects.filter(project=project).select_related("owner")
            .prefetch_related("tags").only(*TABLE_FIELDS))


def run_history(project: Project, params) -> tuple[RunFilter, object, str]:
    """The filtered, sorted queryset for the history table, with its filter form and sort key."""
    run_filter = RunFilter(params, project=project)
    sort = params.get("sort", "-created")
    key = sort.lstrip("-")
    if key not in SORTS:
        sort, key = "-created", "created"
    column = F(SORTS[key])
    # Empty values (no val_loss yet, an LR range test, a key absent from the config) go last both ways.
    order = [column.desc(nulls_last=True) if sort.startswith("-") else column.asc(nulls_last=True), "-pk"]
    return run_filter, run_filter.qs.order_by(*order), sort


def json_safe(value):
    """Non-finite floats (a diverged run's NaN or inf) as the strings "nan", "inf", "-inf", as in
    DESIGN.md's run input: JSON has no NaN, and a browser's JSON.parse rejects it."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def run_analysis_is_final(run: Run) -> bool:
    """Has the run's final analysis been stored (analysed after the run ended)?"""
    return bool(run.is_final() and run.analysed_at and (run.finished_at is None or run.analysed_at >= run.finished_at))


def run_chart_data(run: Run) -> dict:
    """What the run page's charts and progress need, from the Run row and the MetricSeries table
    (never from MLflow: a series there is a downsampled copy of at most ~2,000 points)."""
    series_qs = MetricSeries.objects.filter(run=run).only("key", "points", "count", "last_step")
    data = _run_progress(run)
    data["series"] = {s.key: {"points": s.points, "count": s.count, "last_step": s.last_step} for s in series_qs}
    return data  # tracking.series already stores non-finite values as strings


def run_chart_json(run: Run) -> str:
    """run_chart_data as JSON text, with each series' points spliced in as the database keeps
    them (JSON text): a page with three 2,000-point series builds no Python object per point
    (~12,000 lists and floats a request otherwise, the garbage that made full collections
    pause requests)."""
    rows = (MetricSeries.objects.filter(run=run).annotate(raw=Cast("points", TextField()))
            .values_list("key", "raw", "count", "last_step"))
    series = ", ".join(f'{json.dumps(key)}: {{"points": {raw}, "count": {count}, "last_step": {last_step}}}'
                       for key, raw, count, last_step in rows)
    progress = json.dumps(_run_progress(run), cls=DjangoJSONEncoder)
    return f'{progress[:-1]}, "series": {{{series}}}}}'


def _run_progress(run: Run) -> dict:
    return json_safe({
        "id": run.pk,
        "status": run.status,
        "status_reason": run.status_reason,
        "final": run.is_final(),
        "stop_requested": run.stop_requested,
        "epoch": run.epoch,
        "epochs": run.config.get("epochs"),
        "step": run.step,
        "total_steps": run.total_steps,
        "steps_per_epoch": run.steps_per_epoch,
        "progress": run.progress_fraction(),
        "eta_seconds": run.eta_seconds,
        "latest_metrics": run.latest_metrics,
        "best_val_loss": run.best_val_loss,
        "best_val_accuracy": run.best_val_accuracy,
        "diverged_step": run.diverged_step,
        "device": run.device,
        "worker": run.worker,
        "diagnoses": (run.analysis or {}).get("diagnoses", []),
        # The page swaps in the analysis when analysed_at changes, and keeps polling after the
        # run ends until the final analysis (analysed after the end) is shown.
        "analysed_at": run.analysed_at.isoformat() if run.analysed_at else None,
        "analysis_final": run_analysis_is_final(run),
        # Elapsed time, counted on the page from the server's clock while the run trains.
        "started_at": run.started_at.timestamp() if run.started_at else None,
        "finished_at": run.finished_at.timestamp() if run.finished_at else None,
        "server_time": timezone.now().timestamp(),
    })


def config_groups(config: dict) -> list[tuple[str, list[tuple[str, object, bool]]]]:
    """A run's config in the run form's groups: [(group, [(key, value, changed from default)])]."""
    from .forms import GROUPS

    seen, groups = set(), []
    for title, names in GROUPS.items():
        names = ["csv_path" if k == "csv_file" else k for k in names]
        rows = [(k, config[k], config[k] != DEFAULTS.get(k)) for k in names if k in config]
        seen.update(names)
        if rows:
            groups.append((title, rows))
    rest = [(k, v, v != DEFAULTS.get(k)) for k, v in sorted(config.items()) if k not in seen]
    return groups + ([("Other", rest)] if rest else [])


def runs_compare(runs: list[Run]) -> dict:
    """Configs side by side (with the keys that differ) and each run's curves."""
    keys = sorted({k for r in runs for k in r.config}, key=lambda k: (k not in FIXED_KEYS, k))
    rows = []
    for key in keys:
        values = [r.config.get(key) for r in runs]
        rows.append({"key": key, "values": values, "differs": any(v != values[0] for v in values)})
    series = {}
    for s in MetricSeries.objects.filter(run__in=runs, key__in=CHART_KEYS).only("run_id", "key", "points"):
        series.setdefault(s.key, {})[s.run_id] = s.points
    return {"rows": rows, "series": series}
