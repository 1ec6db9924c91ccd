"""The rules engine's hooks on a training: stop on a confident diagnosis, interim analyses."""
import types

from tracking.config import validate_config
from workers import run_callbacks
from workers.engine import fit
from workers.run_callbacks import Analysis


def test_stop_on_diagnosis_asks_the_rules_engine_every_few_epochs_and_stops_with_its_reason():
    asked = []

    def should_stop_early(run_id, history):
        asked.append((run_id, len(history["val_loss"])))
        return "overfitting: val_loss rose 35%" if len(history["val_loss"]) >= 10 else None

    hook = Analysis(7, stop_on_diagnosis=True, every=5, min_seconds=3600)
    hook.module = types.SimpleNamespace(should_stop_early=should_stop_early)
    r = fit(validate_config({"dataset": "wine", "epochs": 30}), callbacks=[hook])
    assert asked == [(7, 5), (7, 10)]
    assert (r.status, r.epochs_run) == ("stopped", 10)
    assert r.reason == "stopped on diagnosis: overfitting: val_loss rose 35%"


def test_without_stop_on_diagnosis_the_rules_engine_is_not_asked():
    hook = Analysis(7, stop_on_diagnosis=False, every=1, min_seconds=3600)
    hook.module = types.SimpleNamespace(should_stop_early=lambda *a: "no")
    assert fit(validate_config({"dataset": "wine", "epochs": 3}), callbacks=[hook]).status == "succeeded"


def test_interim_analyses_are_enqueued_at_most_every_min_seconds(monkeypatch):
    sent = []
    monkeypatch.setattr(run_callbacks, "send_analysis", lambda run_id, final: sent.append((run_id, final)))
    hook = Analysis(7, every=1, min_seconds=0)
    hook.module = types.SimpleNamespace()
    fit(validate_config({"dataset": "wine", "epochs": 3}), callbacks=[hook])
    assert sent == [(7, False)] * 3
    sent.clear()
    hook = Analysis(7, every=1, min_seconds=3600)
    hook.module = types.SimpleNamespace()
    fit(validate_config({"dataset": "wine", "epochs": 3}), callbacks=[hook])
    assert sent == []


def test_no_analysis_module_means_no_hook():
    hook = Analysis(7, stop_on_diagnosis=True, every=1)
    hook.module = None
    assert fit(validate_config({"dataset": "wine", "epochs": 2}), callbacks=[hook]).status == "succeeded"
