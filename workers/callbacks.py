"""Callbacks: everything beyond the bare loop hangs on these hooks (as in fastai and Lightning).

A callback reads the `Training` it is given (epoch, step, last step's metrics, history...)
and may end the run with `training.stop(reason, status)`: a flag with a reason, which the
loop honours after the current step. Callbacks run in `order` (lower first). This module
imports neither Django nor MLflow.
"""
from __future__ import annotations

import math

# DESIGN.md's metric names, as the engine logs them (here, not in workers.engine, so that the worker's
# own process can name them without importing torch: only its runs' child processes train)
STEP_METRICS = ("train_loss", "lr", "grad_norm")
EPOCH_METRICS = ("train_loss_epoch", "train_accuracy", "val_loss", "val_accuracy")


class Callback:
    order = 50

    def on_fit_start(self, training): ...
    def on_epoch_start(self, training): ...
    def on_step_end(self, training): ...
    def on_epoch_end(self, training): ...
    def on_fit_end(self, training): ...
    # After every callback's on_fit_end: wait for work handed off there (a writer's backlog,
    # a thread's last write), so that such work of several callbacks overlaps.
    def on_teardown(self, training): ...

    # Resumable callbacks keep their state in the checkpoint.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class EarlyStopping(Callback):
    """Stop when val_loss has not improved for `patience` epochs (the run still succeeds)."""

    order = 10

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.wait = math.inf, 0, 0

    def on_epoch_end(self, training):
        val_loss = training.epoch_metrics.get("val_loss")
        if val_loss is None or not math.isfinite(val_loss):
            return
        if val_loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = val_loss, training.epoch, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            training.stop(f"early stopping: val_loss has not improved for {self.patience} epochs "
                          f"(best {self.best:.4g} at epoch {self.best_epoch})", status="succeeded")

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]


class Recorder(Callback):
    """Keeps every call, for tests and debugging: [(hook, epoch, step), ...]."""

    def __init__(self):
        self.calls = []

    def _log(self, hook, training):
        self.calls.append((hook, training.epoch, training.step))

    def on_fit_start(self, training): self._log("on_fit_start", training)
    def on_epoch_start(self, training): self._log("on_epoch_start", training)
    def on_step_end(self, training): self._log("on_step_end", training)
    def on_epoch_end(self, training): self._log("on_epoch_end", training)
    def on_fit_end(self, training): self._log("on_fit_end", training)
    def on_teardown(self, training): self._log("on_teardown", training)
