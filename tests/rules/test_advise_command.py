"""`manage.py advise FILE` and `--mlflow-run RUN_ID`: JSON on stdout per the contract; bad input
exits 2 with one line on stderr."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from tracking.config import apply_change

from . import curves as c
from .mlflow_helpers import log_run

ROOT = Path(__file__).resolve().parents[2]
DIAGNOSIS_KEYS = {"id", "severity", "evidence", "epochs"}
RECOMMENDATION_KEYS = {"rule", "diagnosis", "change", "rationale", "confidence"}
FIXED = {"optimizer", "lr", "momentum", "nesterov", "weight_decay", "batch_size", "epochs", "scheduler",
         "warmup_epochs", "dropout", "batch_norm", "label_smoothing", "grad_clip", "early_stopping_patience",
         "augment"}


def advise_cli(*args, stdin=None):
    return subprocess.run([sys.executable, "manage.py", "advise", *args], cwd=ROOT, capture_output=True,
                          text=True, input=stdin, env=dict(os.environ), timeout=120)


def check_contract(answer, config):
    assert set(answer) == {"diagnoses", "recommendations"}
    assert answer["diagnoses"], "there is always at least one diagnosis (healthy included)"
    for d in answer["diagnoses"]:
        assert set(d) == DIAGNOSIS_KEYS
        assert 0 <= d["severity"] <= 1 and isinstance(d["evidence"], str) and d["evidence"]
        assert len(d["epochs"]) == 2 and all(isinstance(e, int) for e in d["epochs"])
    confidences = [r["confidence"] for r in answer["recommendations"]]
    assert confidences == sorted(confidences, reverse=True)
    for r in answer["recommendations"]:
        assert set(r) == RECOMMENDATION_KEYS and 0 <= r["confidence"] <= 1
        assert r["change"] and set(r["change"]) <= FIXED
        apply_change(config, r["change"])  # the apply button's validation accepts it


def test_it_prints_the_answer_for_a_file(tmp_path, capsys):
    train, val = c.overfitting()
    config = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 40, "dataset": "digits"}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(c.run(train, val, config=config)))
    call_command("advise", str(path))
    answer = json.loads(capsys.readouterr().out)
    check_contract(answer, config)
    assert answer["diagnoses"][0]["id"] == "overfitting"


@pytest.mark.parametrize("shape", [c.healthy, c.overfitting, c.unstable, c.diverging, c.not_converged,
                                   c.underfitting])
def test_every_answer_follows_the_contract(shape, tmp_path, capsys):
    train, val = shape()
    config = {"optimizer": "sgd", "lr": 0.1, "epochs": len(train), "weight_decay": 0.05, "batch_size": 8}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(c.run(train, val, config=config)))
    call_command("advise", str(path))
    check_contract(json.loads(capsys.readouterr().out), config)


def test_nan_and_inf_written_as_strings_are_read(tmp_path):
    path = tmp_path / "failed.json"
    path.write_text(json.dumps({"config": {"optimizer": "adam", "lr": 0.5},
                                "metrics": {"train_loss": [[0, 2.3], [1, 9.5], [2, "inf"], [3, "nan"]]},
                                "steps_per_epoch": 30, "status": "failed"}))
    proc = advise_cli(str(path))
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["diagnoses"][0]["id"] == "diverging"
    assert answer["recommendations"][0]["change"]["lr"] < 0.5


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("{not json", "not valid JSON"),
    ('["a list"]', "must be a JSON object"),
    ('{"config": {}, "metrics": {"train_loss": "fast"}}', "metrics.train_loss"),
    ('{"config": {}, "metrics": {"train_loss": [[0, "abc"]]}}', "metrics.train_loss"),
    ('{"config": {}, "metrics": {"train_loss": [], "val_loss": []}}', "no metric point"),
    ('{"config": {}, "metrics": {"val_accuracy": [[1, 0.5], [2, 0.6]]}}', "no loss curve"),
    ('{"config": {}, "metrics": {"train_loss": [[0, true], [1, false]]}}', "metrics.train_loss"),
    ('{"config": 3, "metrics": {"val_loss": [[1, 0.5]]}}', "config"),
    ('{"config": {}, "metrics": {"val_loss": [[1, 0.5]]}, "status": "done"}', "status"),
    ('{"config": {}, "metrics": {"val_loss": [[1, 0.5]]}, "steps_per_epoch": -1}', "steps_per_epoch"),
])
def test_bad_input_exits_2_with_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    proc = advise_cli(str(path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_no_argument_and_unknown_mlflow_run_exit_2():
    assert advise_cli().returncode == 2
    proc = advise_cli("--mlflow-run", "0123456789abcdef0123456789abcdef")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "no MLflow run" in proc.stderr


def test_it_advises_on_a_run_logged_by_foreign_code_with_aliased_metric_names():
    train, val = c.overfitting(40)
    steps = c.steps_from_epochs(train)
    run_id = log_run(
        params={"optimizer": "SGD", "lr": "0.05", "momentum": "0.9", "nesterov": "False", "epochs": "40",
                "architecture": "resnet-ish", "batch_size": "64"},
        metrics={"loss": [(s, v) for s, v in steps], "eval_loss": list(enumerate(val, start=1)),
                 "val_acc": [(e, 0.9 - 0.01 * e) for e in range(1, 41)]},
        tags={"steps_per_epoch": c.SPE})
    proc = advise_cli("--mlflow-run", run_id)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["diagnoses"][0]["id"] == "overfitting"
    assert answer["recommendations"][0]["change"] == {"weight_decay": 0.001}
