"""Other loggers' metric names and axes, read into DESIGN.md's names and units.

Runwise logs `train_loss`, `lr`, `grad_norm` per optimizer step and `train_loss_epoch`,
`train_accuracy`, `val_loss`, `val_accuracy` per epoch (step = epoch, from 1). Other code logs:

- PyTorch Lightning (`self.log` with `MLFlowLogger`): `train_loss_step` / `train_loss_epoch` for
  `on_step` and `on_epoch`, `val_loss`, `val_acc`, every epoch-level value at the *global step*
  it was logged at, an `epoch` metric (0-based `current_epoch`) beside every logged value, and
  `lr-<Optimizer>` or `lr-<Optimizer>-pgN` / `lr-<Optimizer>/pgN` from `LearningRateMonitor`;
- Hugging Face `transformers.Trainer`: `loss`, `learning_rate`, `grad_norm` and a fractional
  `epoch` (epochs done) every `logging_steps`, `eval_loss`, `eval_accuracy` at its evaluations,
  at global steps, and one `train_loss` (the run's mean) at the end;
- plain scripts and Keras: `loss`, `val_loss`, `acc`, `val_acc`, `valid_loss` ... per epoch,
  often from step 0.

`canonical_name` maps a logged name to a DESIGN name (or "epoch", or None: not read);
`choose_sources` picks one logged series per DESIGN name; `to_epochs` infers the steps per epoch
when no tag says it and puts the epoch-level series on an epoch axis (1-based), so that the
evidence says "epoch 16", not "epoch 399" for a global step.
"""
from __future__ import annotations

import re

import numpy as np

DESIGN_METRICS = ("train_loss", "train_loss_epoch", "val_loss", "train_accuracy", "val_accuracy", "lr",
                  "grad_norm")
STEP_METRICS = ("train_loss", "lr", "grad_norm")
EPOCH_METRICS = ("train_loss_epoch", "val_loss", "train_accuracy", "val_accuracy")

ALIASES = {
    "loss": "train_loss", "training_loss": "train_loss", "train/loss": "train_loss",
    "batch_loss": "train_loss", "step_loss": "train_loss",
    "epoch_loss": "train_loss_epoch", "train_epoch_loss": "train_loss_epoch", "train/epoch_loss": "train_loss_epoch",
    "acc": "train_accuracy", "accuracy": "train_accuracy", "train_acc": "train_accuracy",
    "val_acc": "val_accuracy", "valid_acc": "val_accuracy", "validation_accuracy": "val_accuracy",
    "valid_accuracy": "val_accuracy", "val/accuracy": "val_accuracy", "val/acc": "val_accuracy",
    "test_accuracy": "val_accuracy", "test_acc": "val_accuracy",
    "valid_loss": "val_loss", "validation_loss": "val_loss", "val/loss": "val_loss", "test_loss": "val_loss",
    "learning_rate": "lr", "lr": "lr", "grad_norm_total": "grad_norm", "gradient_norm": "grad_norm",
}
_LR_MONITOR = re.compile(r"lr-[a-z0-9_]+?(?:[-/]pg(\d+))?")  # Lightning's LearningRateMonitor


def canonical_name(name: str):
    """The DESIGN name a logged metric name stands for, "epoch", or None (not read)."""
    n = name.strip().lower()
    if n in DESIGN_METRICS or n == "epoch":
        return n
    if n in ALIASES:
        return ALIASES[n]
    if _LR_MONITOR.fullmatch(n):
        return "lr"
    for prefix in ("eval_", "eval/"):  # Hugging Face's evaluation prefix
        if n.startswith(prefix) and n[len(prefix):] in ("loss", "accuracy", "acc"):
            return "val_loss" if n.endswith("loss") else "val_accuracy"
    if n.endswith("_step"):  # Lightning's on_step copy: only the train loss is read per step
        return "train_loss" if canonical_name(n[:-5]) in ("train_loss", "train_loss_epoch") else None
    if n.endswith("_epoch"):  # Lightning's on_epoch copy
        base = canonical_name(n[:-6])
        if base == "train_loss":
            return "train_loss_epoch"
        return base if base in EPOCH_METRICS else None
    return None


def _preference(name: str, length: int):
    """Sort key among logged series standing for the same DESIGN name: a series with 2+ points
    first (Hugging Face's one-point `train_loss` summary loses to its `loss` curve), then the DESIGN
    name itself, then an LR monitor's first parameter group, then the name."""
    n = name.strip().lower()
    group = _LR_MONITOR.fullmatch(n)
    pg = int(group.group(1)) if group and group.group(1) else 0
    return (length < 2, n not in DESIGN_METRICS and n != "epoch", pg, n)


def choose_sources(lengths: dict[str, int]) -> dict[str, str]:
    """DESIGN name (or "epoch") -> the logged name to read it from, given each name's point count."""
    best: dict[str, tuple] = {}
    for name, length in lengths.items():
        target = canonical_name(name)
        if target is None:
            continue
        key = _preference(name, length)
        if target not in best or key < best[target][0]:
            best[target] = (key, name)
    return {target: name for target, (_, name) in best.items()}


def _median_int(x: np.ndarray):
    x = x[np.isfinite(x) & (x > 0)]
    return int(round(float(np.median(x)))) if x.size else None


def infer_steps_per_epoch(metrics: dict) -> int | None:
    """Steps per epoch from an `epoch` metric or from the step numbers of the epoch-level series,
    None when neither tells. `metrics` maps DESIGN names (and "epoch") to Series."""
    epoch = metrics.get("epoch")
    if epoch is not None and len(epoch) >= 2:
        steps, values = epoch.steps, epoch.values
        ok = np.isfinite(values)
        steps, values = steps[ok], values[ok]
        if values.size and np.any(np.abs(values - np.round(values)) > 1e-6):
            # Hugging Face: epochs done (fractional) at each logged step
            inside = values > 0
            spe = _median_int(steps[inside] / values[inside]) if inside.any() else None
            if spe:
                return spe
        elif values.size:
            # Lightning: the 0-based epoch index beside every logged value; a new index starts a new epoch
            firsts = [steps[values == k].min() for k in np.unique(values)]
            if len(firsts) >= 3:
                return _median_int(np.diff(firsts[1:]))  # the first epoch may have been logged late
            if len(firsts) == 2 and values.min() == 0:
                return _median_int(np.array([firsts[1] - firsts[0]]))
    # the step numbers of epoch-level series logged at global steps (Lightning without `epoch`)
    per_step = metrics.get("train_loss")
    for name in ("val_loss", "train_loss_epoch", "val_accuracy", "train_accuracy"):
        s = metrics.get(name)
        if s is None or len(s) < 2 or per_step is None or len(per_step) < 2 * len(s):
            continue
        d = np.diff(s.steps)
        gap = _median_int(d)
        if gap and gap > 1 and np.mean(np.abs(d - gap) <= max(1, 0.02 * gap)) >= 0.8 \
                and s.steps[-1] >= 0.5 * per_step.steps[-1]:
            return gap
    return None


def epoch_labels(series, metrics: dict, spe: int | None, per_step_end: float | None) -> np.ndarray:
    """The 1-based epoch of each point of an epoch-level series. Steps already in epochs (DESIGN,
    Keras from 0) stay so; global steps are read through the `epoch` metric logged beside them,
    else divided by the steps per epoch."""
    steps = series.steps
    epoch = metrics.get("epoch")
    global_units = per_step_end is not None and len(steps) >= 1 and (
        (spe and steps[-1] > 1.5 * (per_step_end / spe + 1))
        or (not spe and steps[-1] >= 0.5 * per_step_end and steps[-1] > 2 * len(steps)))
    if epoch is not None and len(epoch) and (global_units or per_step_end is None and steps[-1] > 2 * len(steps)):
        ev = epoch.values
        fractional = np.any(np.abs(ev[np.isfinite(ev)] - np.round(ev[np.isfinite(ev)])) > 1e-6)
        idx = np.clip(np.searchsorted(epoch.steps, steps, side="right") - 1, 0, len(epoch) - 1)
        at = ev[idx]
        if np.isfinite(at).all():
            labels = at if fractional else at + (1 if np.nanmin(ev) == 0 else 0)
            return np.maximum(labels, 1e-9 if fractional else 1)
    if global_units and spe:
        return np.maximum(1, np.round((steps + 1) / spe))
    if global_units:
        return np.arange(1, len(steps) + 1, dtype=float)
    return steps + (1 if len(steps) and steps[0] < 1 else 0)


# Config keys other trainers log as params (Hugging Face's TrainingArguments, common hparam names),
# read as DESIGN.md's keys when the config lacks those (the run's own values win).
CONFIG_ALIASES = {
    "learning_rate": "lr", "base_lr": "lr", "max_lr": "lr",
    "per_device_train_batch_size": "batch_size", "train_batch_size": "batch_size",
    "num_train_epochs": "epochs", "max_epochs": "epochs", "n_epochs": "epochs", "num_epochs": "epochs",
    "optim": "optimizer", "optimizer_name": "optimizer", "lr_scheduler_type": "scheduler",
    "max_grad_norm": "grad_clip", "gradient_clip_val": "grad_clip", "label_smoothing_factor": "label_smoothing",
    "dropout_rate": "dropout", "hidden_dropout_prob": "dropout", "wd": "weight_decay",
}
OPTIMIZERS = {"adamw_torch": "adamw", "adamw_torch_fused": "adamw", "adamw_hf": "adamw", "adamw": "adamw",
              "adam": "adam", "sgd": "sgd", "rmsprop": "rmsprop", "adagrad": "adagrad"}
SCHEDULERS = {"cosine": "cosine", "constant": "constant", "constant_with_warmup": "constant",
              "cosine_with_restarts": "cosine_restarts", "linear": "linear"}


def design_config(raw: dict) -> dict:
    """The config with DESIGN keys filled in from the aliases other trainers log (raw keys kept)."""
    out = dict(raw)
    for key, target in CONFIG_ALIASES.items():
        if key in raw and target not in raw and raw[key] is not None:
            out[target] = raw[key]
    opt = out.get("optimizer")
    if isinstance(opt, str):
        out["optimizer"] = OPTIMIZERS.get(opt.strip().lower().split(".")[-1].replace("optimizer", ""), opt)
    sched = out.get("scheduler")
    if isinstance(sched, str) and "scheduler" not in raw:
        out["scheduler"] = SCHEDULERS.get(sched.strip().lower().split(".")[-1], sched)
    if "grad_clip" in out and out["grad_clip"] in (0, 0.0, "0", "0.0"):
        out["grad_clip"] = None
    return out
