"""bench/devset's logger generators: real Lightning, transformers.Trainer and plain-mlflow runs land
in the session's real MLflow store, are readable by tracking.mlflow_io.read_run (what
`advise --mlflow-run` reads), and retraining the same spec without MLflow gives the same curve (so a
counterfactual retrain changes only what the change changes)."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from devset import loggers  # noqa: E402
from tracking.mlflow_io import read_run  # noqa: E402
from tracking.rules import advise  # noqa: E402

pytestmark = pytest.mark.slow

KEYS = {  # what each library puts in MLflow (a few of its keys)
    "lightning": {"train_loss_step", "train_loss_epoch", "val_loss", "val_acc", "lr-SGD", "epoch"},
    "hf": {"loss", "eval_loss", "eval_accuracy", "learning_rate", "epoch"},
    "plain": {"loss", "acc", "val_loss", "val_acc"},
}


def tiny(library):
    spec = loggers.spec_for(library, "healthy", "wine", 1)
    spec.update(epochs=3, train_subset=60, name=f"{library}/tiny")
    return spec


@pytest.mark.parametrize("library", loggers.LIBRARIES)
def test_a_logged_run_is_read_back_and_advised_and_retrains_to_the_same_curve(library):
    import mlflow

    spec = tiny(library)
    with loggers.mlflow_store(os.environ["MLFLOW_TRACKING_URI"]) as uri:
        run_id, curve = loggers.log_run(library, spec, uri)
        logged = set(mlflow.MlflowClient(uri).get_run(run_id).data.metrics)
        run_input = read_run(run_id, tracking_uri=uri)
    assert KEYS[library] <= logged, logged
    assert len(curve) == 3 and all(v > 0 for v in curve)
    metrics = run_input["metrics"]
    val = metrics["eval_loss" if library == "hf" else "val_loss"]  # the reader keeps the logged names
    assert len(val) == 3 and [round(v, 4) for _, v in val] == [round(v, 4) for v in curve]
    answer = advise(run_input)
    assert answer["diagnoses"] and isinstance(answer["recommendations"], list)
    with loggers.quiet():
        again = loggers.TRAIN[library]({k: v for k, v in spec.items() if k != "name"})
    assert again == pytest.approx(curve, rel=1e-5)


def test_changes_a_library_cannot_express_are_not_applicable():
    spec = loggers.spec_for("hf", "healthy", "wine", 1)
    assert loggers.apply_change("hf", spec, {"scheduler": "onecycle"})[0] is None
    assert loggers.apply_change("plain", loggers.spec_for("plain", "healthy", "wine", 1), {"warmup_epochs": 2.0})[0] is None
    new, patience, _ = loggers.apply_change("lightning", loggers.spec_for("lightning", "healthy", "wine", 1),
                                            {"lr": 0.01, "early_stopping_patience": 3})
    assert new["lr"] == 0.01 and patience == 3


def test_the_trainers_sgd_gets_its_momentum_through_optim_args():
    # transformers.Trainer's optim="sgd" takes momentum only from optim_args: "SGD with momentum 0.9"
    # must train differently from plain SGD (until 2 Dec the bench trained plain SGD for both)
    spec = dict(loggers.spec_for("hf", "healthy", "wine", 1), epochs=3)
    sgd, _, _ = loggers.apply_change("hf", spec, {"optimizer": "sgd", "lr": 0.05, "momentum": 0.0})
    with_momentum, _, _ = loggers.apply_change("hf", spec, {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9})
    assert with_momentum["momentum"] == 0.9
    with loggers.quiet():
        plain_curve, momentum_curve = loggers.train_hf(sgd), loggers.train_hf(with_momentum)
    assert momentum_curve != pytest.approx(plain_curve, rel=1e-3)
