"""What the charts draw, read from the canvas in Chromium: every text uPlot and our hooks draw is
recorded (fillText wrapped before the page loads) with its box. Log axes label small values as
1e-7, 1e-6, ... (not "0"); the LR range test's y range leaves out the final blow-up; annotation
labels overlap neither each other, nor the tick labels, nor the plotting area (the curves)."""
import math

import pytest
from django.utils import timezone

from tests.web.conftest import make_run, sign_in
from tracking import lr_finder, sweeps
from tracking.config import validate_config
from tracking.models import MetricSeries, Run, Sweep, Trial

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RECORDER = """
window.__texts = [];
const fill = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y) {
  const m = this.measureText(String(text));
  const holder = this.canvas.closest('[id]');
  window.__texts.push({chart: holder ? holder.id : '', text: String(text),
    x0: x - m.actualBoundingBoxLeft, x1: x + m.actualBoundingBoxRight,
    y0: y - m.actualBoundingBoxAscent, y1: y + m.actualBoundingBoxDescent});
  return fill.apply(this, arguments);
};
"""


def drawn(page, chart_id):
    """(texts of the chart's last draw, its plotting area) in canvas pixels."""
    # uPlot's .u-over lies exactly over the plotting area (CSS px from the canvas' corner; DPR 1 here).
    bbox = page.evaluate(f"(() => {{ const o = document.querySelector('#{chart_id} .u-over');"
                         " return {left: o.offsetLeft, top: o.offsetTop, right: o.offsetLeft + o.offsetWidth,"
                         " bottom: o.offsetTop + o.offsetHeight}; })()")
    texts = [t for t in page.evaluate("window.__texts") if t["chart"] == chart_id]
    return texts, bbox


def overlap(a, b):
    return a["x0"] < b["x1"] and b["x0"] < a["x1"] and a["y0"] < b["y1"] and b["y0"] < a["y1"]


def last_draw(texts, labels):
    """The texts of the chart's last draw: those after the last time the first label was drawn."""
    starts = [i for i, t in enumerate(texts) if t["text"] in labels]
    return texts[max(0, starts[-1] - len(labels) * 40):] if starts else texts


def check_labels(texts, bbox, labels):
    boxes = {}
    for t in texts:
        for label in labels:
            if t["text"].startswith(label):
                boxes[label] = t
    assert set(boxes) == set(labels), [t["text"] for t in texts]
    ticks = [t for t in texts if t["text"] not in boxes.values() and not any(t["text"].startswith(l) for l in labels)]
    for label, box in boxes.items():
        assert box["y1"] <= bbox["top"], (label, box, bbox)  # above the plotting area: over no curve
        for tick in ticks:
            assert not overlap(box, tick), (label, tick)
        for other, obox in boxes.items():
            assert other == label or not overlap(box, obox), (label, other)
    return boxes


def x_ticks(texts, bbox):
    return [t["text"] for t in texts if t["y0"] >= bbox["bottom"] and bbox["left"] - 20 <= t["x0"] <= bbox["right"]]


def test_the_lr_range_plot_labels_its_log_axis_clips_the_blow_up_and_keeps_the_suggestions_apart(page, team_users):
    source = make_run(team_users["project"], team_users["admin"], name="base", with_series=False)
    run = Run.objects.create(project=source.project, owner=source.owner, name="LR range test", kind="lr_find",
                             config=source.config, status="succeeded", parent=source)
    lrs = lr_finder.lr_schedule()
    tracker = lr_finder.SmoothedLoss()
    raw = [2.3 - 2.0 / (1 + math.exp(-3 * (math.log10(lr) + 3))) + (38 * lr if lr > 0.3 else 0) for lr in lrs]
    smooth = [tracker.update(v) for v in raw]
    assert max(raw) > 300  # the blow-up at the end, as a real range test has
    for key, values in (("lr", lrs), ("train_loss", raw), ("smooth_loss", smooth)):
        MetricSeries.objects.create(run=run, key=key, points=[[i, v] for i, v in enumerate(values)],
                                    count=len(values), last_step=len(values) - 1)
    page.add_init_script(RECORDER)
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/lr-find/{run.pk}/")
    page.wait_for_selector("#lr-chart canvas")
    texts, bbox = drawn(page, "lr-chart")
    ticks = x_ticks(texts, bbox)
    assert {"1e-7", "1e-5", "0.001"} <= set(ticks), ticks
    assert "0" not in ticks, ticks
    y_ticks = [float(t["text"]) for t in texts if t["x1"] <= bbox["left"] and t["y1"] <= bbox["bottom"] + 8
               and t["text"].replace(".", "", 1).isdigit()]
    # The valley fills the plot; the blow-up (up to ~380) is cut at about twice the starting loss.
    assert y_ticks and max(y_ticks) <= 2.2 * smooth[0] and max(y_ticks) >= 0.5 * smooth[0], y_ticks
    check_labels(texts, bbox, ["valley", "steep", "minimum"])


def open_run_with_findings(page, team_users, name: str, diagnoses: list, wait_ms: int):
    """A run whose stored analysis holds `diagnoses`, open in the page with the canvas recorder."""
    run = make_run(team_users["project"], team_users["admin"], name=name, epochs=12, steps_per_epoch=20)
    Run.objects.filter(pk=run.pk).update(analysis={"diagnoses": diagnoses})
    page.add_init_script(RECORDER)
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/runs/{run.pk}/")
    page.wait_for_selector("#chart-loss_epoch canvas")
    page.wait_for_timeout(wait_ms)


def test_the_run_charts_put_diagnosis_labels_above_the_curves(page, team_users):
    open_run_with_findings(page, team_users, "marked", [
        {"id": "overfitting", "severity": 0.8, "evidence": "val_loss rose", "epochs": [4, 12]},
        {"id": "not_converged", "severity": 0.6, "evidence": "still falling", "epochs": [5, 12]}], 300)
    for chart in ("chart-loss_epoch", "chart-train_loss"):
        texts, bbox = drawn(page, chart)
        check_labels(last_draw(texts, ["overfitting"]), bbox, ["overfitting", "not_converged"])


def test_four_findings_at_the_same_epoch_get_four_rows_of_labels(page, team_users):
    ids = ["diverging", "overfitting", "unstable", "plateau"]  # a real run had these four, severity >= 0.8
    open_run_with_findings(page, team_users, "bad", [
        {"id": d, "severity": 0.9, "evidence": "x", "epochs": [3 + (i % 2), 12]} for i, d in enumerate(ids)], 500)
    for chart in ("chart-loss_epoch", "chart-accuracy"):
        texts, bbox = drawn(page, chart)
        check_labels(last_draw(texts, ["diverging"]), bbox, ids)


def test_the_sweep_scatter_labels_a_log_axis_and_its_border_flag_clear_of_the_ticks(page, team_users):
    source = make_run(team_users["project"], team_users["admin"], name="base", with_series=False)
    sweep = sweeps.sweep_create(project=source.project, owner=source.owner,
                                base_config=validate_config({"dataset": "digits", "epochs": 5}),
                                space={"lr": {"low": 1e-6, "high": 1e-2, "log": True},
                                       "weight_decay": {"low": 1e-7, "high": 1e-3, "log": True}}, stage1_trials=3)
    for i, (trial, lr, wd) in enumerate(zip(sweep.trials.all(), (1e-6, 1e-4, 1e-3), (1e-7, 1e-5, 1e-4))):
        Trial.objects.filter(pk=trial.pk).update(params={"lr": lr, "weight_decay": wd})
        Run.objects.filter(pk=trial.run_id).update(status="succeeded", best_val_loss=0.4 + i,
                                                   finished_at=timezone.now())
    for trial in sweep.trials.all():
        sweeps.on_run_ended(trial.run_id)
    Sweep.objects.filter(pk=sweep.pk).update(state=Sweep.State.DONE)  # no auto-refresh while we read
    page.add_init_script(RECORDER)
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/sweeps/{sweep.pk}/")
    page.wait_for_selector("#scatter-lr canvas")
    texts, bbox = drawn(page, "scatter-lr")
    ticks = x_ticks(texts, bbox)
    assert "1e-6" in ticks and "0" not in ticks, ticks
    check_labels(texts, bbox, ["best (on the low border)"])
    texts, bbox = drawn(page, "scatter-weight_decay")
    ticks = x_ticks(texts, bbox)
    assert "1e-7" in ticks and "0" not in ticks, ticks
