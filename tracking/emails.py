"""Rendering emails: subject, plain-text and HTML parts from three templates per kind
(templates/emails/<kind>-subject.txt, -body.txt, -body.html), and the loss curves as an
inline PNG (matplotlib, Agg) referenced from the HTML part by its Content-ID.

Nothing here sends or writes: `build_message(outbox)` returns an EmailMultiAlternatives.
"""
from __future__ import annotations

import io
import math

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from .config import DEFAULTS
from .models import OutboxEmail, Run

CURVES_CID = "loss-curves"
MAX_RECOMMENDATIONS = 3
CURVE_KEYS = (("train_loss_epoch", "train loss"), ("val_loss", "val loss"))
FALLBACK_CURVE = ("train_loss", "train loss (per step)")


# Words ------------------------------------------------------------------------------------

def format_value(value) -> str:
    """5e-4 rather than 0.0005; 0.1 stays 0.1; booleans and text as they are."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and math.isfinite(value) and (abs(value) < 1e-2 or abs(value) >= 1e5):
            mantissa, exponent = f"{value:.2e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return f"{value:g}"
    return str(value)


def change_in_words(change: dict, config: dict | None) -> str:
    """{"weight_decay": 5e-4} on a config with weight_decay 0 -> "raise weight_decay to 5e-4"."""
    config = config or {}
    parts = []
    for key, new in (change or {}).items():
        old = config.get(key, DEFAULTS.get(key))
        if isinstance(new, bool):
            parts.append(f"turn {'on' if new else 'off'} {key}")
        elif new is None:
            parts.append(f"turn off {key}")
        elif isinstance(new, (int, float)) and isinstance(old, (int, float)) and not isinstance(old, bool):
            verb = "raise" if new > old else "lower" if new < old else "set"
            parts.append(f"{verb} {key} to {format_value(new)}")
        else:
            parts.append(f"set {key} to {format_value(new)}")
    return " and ".join(parts) or "no change"


def diagnosis_words(diagnosis_id: str) -> str:
    return diagnosis_id.replace("_", " ")


def main_diagnosis(analysis: dict) -> dict | None:
    """The most severe diagnosis (the first one on a tie)."""
    diagnoses = (analysis or {}).get("diagnoses") or []
    return max(diagnoses, key=lambda d: d.get("severity") or 0, default=None)


def headline(run: Run, recommendations: list[dict] | None = None) -> str:
    """"overfitting, raise weight_decay to 5e-4" (diagnosis, change), or the status when nothing
    was diagnosed. Every subject reads "[project] run name: headline" (tracking.emails.subject)."""
    diagnosis = main_diagnosis(run.analysis)
    what = diagnosis_words(diagnosis["id"]) if diagnosis else run.status
    recommendations = recommendations_of(run) if recommendations is None else recommendations
    if recommendations:
        return f"{what}, {recommendations[0]['words']}"
    return f"{what}, no change recommended"


def subject(run: Run, recommendations: list[dict] | None = None) -> str:
    """The one subject pattern of every email about a run (its own, a sweep's or an autopilot's
    summary, with its best run): "[vision] run 42: overfitting, raise weight_decay to 5e-4"."""
    return f"[{run.project.name}] {run.name}: {headline(run, recommendations)}"


# Links ------------------------------------------------------------------------------------

def absolute(path: str) -> str:
    return settings.SITE_URL + path


def run_url(run_id: int) -> str:
    try:
        return absolute(reverse("run", args=[run_id]))
    except NoReverseMatch:
        return absolute(f"/runs/{run_id}/")


def apply_url(recommendation_id: int | None, run_id: int) -> str:
    """The apply page (it asks to confirm; GET changes nothing), else the run page."""
    if recommendation_id is None:
        return run_url(run_id)
    try:
        return absolute(reverse("recommendation_apply", args=[recommendation_id]))
    except NoReverseMatch:
        return run_url(run_id)


def settings_url(project_id: int | None = None) -> str:
    try:
        path = reverse("notification-settings")
    except NoReverseMatch:
        path = "/notifications/"
    return absolute(path + (f"#project-{project_id}" if project_id else ""))


# Data for the templates ------------------------------------------------------------------------

def recommendations_of(run: Run, limit: int = MAX_RECOMMENDATIONS) -> list[dict]:
    """The first recommendations, from the Recommendation rows (they carry the pk the apply
    link needs), else from the analysis."""
    rows = list(run.recommendations.all()[:limit])
    items = [dict(pk=r.pk, rule=r.rule, diagnosis=r.diagnosis, change=r.change, rationale=r.rationale,
                  confidence=r.confidence) for r in rows]
    if not items:
        items = [dict(pk=None, **{k: r.get(k) for k in ("rule", "diagnosis", "change", "rationale",
                                                            "confidence")})
                 for r in ((run.analysis or {}).get("recommendations") or [])[:limit]]
    for item in items:
        item["words"] = change_in_words(item["change"], run.config)
        item["apply_url"] = apply_url(item["pk"], run.pk)
        item["confidence_pct"] = round(100 * (item["confidence"] or 0))
    return items


def epochs_text(epochs) -> str:
    """[9, 30] -> "9-30"; [12] -> "12"."""
    return "-".join(str(e) for e in (epochs or []))


def diagnoses_of(run: Run) -> list[dict]:
    return [dict(d, words=diagnosis_words(d.get("id", "?")), epochs_text=epochs_text(d.get("epochs")))
            for d in sorted((run.analysis or {}).get("diagnoses") or [],
                            key=lambda d: -(d.get("severity") or 0))]


def run_summary(run: Run) -> dict:
    """What the run email and the digest say about one run."""
    recommendations = recommendations_of(run)
    return dict(run=run, url=run_url(run.pk), headline=headline(run, recommendations),
                diagnoses=diagnoses_of(run), recommendations=recommendations,
                best_val_loss=run.best_val_loss, best_val_accuracy=run.best_val_accuracy)


# The PNG ------------------------------------------------------------------------------------

def _finite(points):
    xs, ys = [], []
    for step, value in points or []:
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        xs.append(step)
        ys.append(value if math.isfinite(value) else float("nan"))
    return xs, ys


def loss_curves_png(run: Run) -> bytes | None:
    """The run's loss curves (per epoch; per step when there is no epoch curve) as a PNG."""
    series = {s.key: s.points for s in run.series.filter(
        key__in=[k for k, _ in CURVE_KEYS] + [FALLBACK_CURVE[0]])}
    curves = [(label, series[key]) for key, label in CURVE_KEYS if series.get(key)]
    xlabel = "epoch"
    if not any(label == "train loss" for label, _ in curves) and series.get(FALLBACK_CURVE[0]):
        curves = [(FALLBACK_CURVE[1], series[FALLBACK_CURVE[0]])]
        xlabel = "step"
    if not curves:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, points in curves:
        xs, ys = _finite(points)
        ax.plot(xs, ys, label=label, linewidth=1.5)
    diagnosis = main_diagnosis(run.analysis)
    if diagnosis and xlabel == "epoch" and len(diagnosis.get("epochs") or []) == 2:
        ax.axvspan(*diagnosis["epochs"], color="tab:red", alpha=0.1, label=diagnosis_words(diagnosis["id"]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.set_title(f"{run.project.name} / {run.name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    # fixed margins, not tight_layout (which draws the figure once more to measure it: ~40% of the PNG)
    fig.subplots_adjust(left=0.11, right=0.97, top=0.9, bottom=0.17)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


_PNG_CACHE: dict = {}
_PNG_CACHE_SIZE = 32


def cached_loss_curves_png(run: Run) -> bytes | None:
    """The same PNG for every recipient of a run: cached in the process, keyed by the run and
    the last change of its analysis and curves (a re-analysed run gets a new picture)."""
    from django.db.models import Max

    stamp = (run.pk, run.analysed_at, run.series.aggregate(last=Max("updated_at"))["last"])
    if stamp not in _PNG_CACHE:
        if len(_PNG_CACHE) >= _PNG_CACHE_SIZE:
            _PNG_CACHE.pop(next(iter(_PNG_CACHE)))
        _PNG_CACHE[stamp] = loss_curves_png(run)
    return _PNG_CACHE[stamp]


# Messages ------------------------------------------------------------------------------------

def make_message(kind: str, context: dict, to: str) -> EmailMultiAlternatives:
    """Three templates per kind: subject, text and HTML."""
    subject = " ".join(render_to_string(f"emails/{kind}-subject.txt", context).split())[:300]
    text = render_to_string(f"emails/{kind}-body.txt", context)
    html = render_to_string(f"emails/{kind}-body.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [to])
    message.attach_alternative(html, "text/html")
    return message


def attach_inline_png(message: EmailMultiAlternatives, png: bytes, cid: str) -> None:
    """multipart/related around the alternatives, so the HTML's <img src="cid:..."> resolves."""
    from email.mime.image import MIMEImage

    image = MIMEImage(png, "png")
    image.add_header("Content-ID", f"<{cid}>")
    image.add_header("Content-Disposition", "inline", filename=f"{cid}.png")
    message.mixed_subtype = "related"
    message.attach(image)


def run_ended_message(outbox: OutboxEmail) -> EmailMultiAlternatives:
    run = Run.objects.select_related("project", "owner").get(pk=outbox.run_id)
    png = cached_loss_curves_png(run)
    context = dict(run_summary(run), project=run.project, recipient=outbox.recipient,
                   settings_url=settings_url(run.project_id), curves_cid=CURVES_CID if png else None,
                   site_url=settings.SITE_URL)
    message = make_message("run_ended", context, outbox.recipient.email)
    if png:
        attach_inline_png(message, png, CURVES_CID)
    return message


def digest_message(outbox: OutboxEmail) -> EmailMultiAlternatives:
    from .notifications import digest_content

    groups = digest_content(user=outbox.recipient, day=outbox.digest_date)
    for group in groups:
        group["summaries"] = [run_summary(run) for run in group["runs"]]
        group["helped_items"] = [
            dict(recommendation=rec, words=change_in_words(rec.change, rec.run.config),
                 run_url=run_url(rec.run_id),
                 follow_ups=[dict(run=f, url=run_url(f.pk)) for f in rec.follow_ups.filter(
                     pk__in=[r.pk for r in group["runs"]])])
            for rec in group["helped"]]
    context = dict(groups=groups, day=outbox.digest_date, recipient=outbox.recipient,
                   run_count=sum(len(g["runs"]) for g in groups), settings_url=settings_url(),
                   site_url=settings.SITE_URL)
    return make_message("digest", context, outbox.recipient.email)


BUILDERS = {"run_ended": run_ended_message, "digest": digest_message}


def build_message(outbox: OutboxEmail) -> EmailMultiAlternatives:
    return BUILDERS[outbox.kind](outbox)
