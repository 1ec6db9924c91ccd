"""Fine-tuning: start from another run's final model, freeze the first layer groups, and give
each earlier group the LR of the next divided by `lr_layer_factor` (discriminative LRs).

The engine calls `prepare(training)` once the model, optimizer and schedule are built (before
a checkpoint is restored). Config keys: `init_from_run` (a Run id), `freeze_layers` (k >= 0),
`lr_layer_factor` (>= 1, default 3). A config with none of them set is left exactly as it was.

Layer groups: an MLP's hidden blocks (Linear [BatchNorm] activation [Dropout]) in order, then
its head; a CNN's conv blocks, then its head. The head is never frozen.
"""
from __future__ import annotations

import io
import logging
from typing import Callable, Optional

import torch
from torch import nn

from workers.errors import PermanentError
from workers.weights import load_weights

log = logging.getLogger(__name__)
PREFERRED = ("model/model.pt", "checkpoints/last.pt")  # workers/mlflow_logging.py: final model, last checkpoint
CHECKPOINT_NAMES = ("model.pt", "final_model.pt", "checkpoint.pt", "last.pt")


class InitError(PermanentError, ValueError):
    """The run to start from has no usable model (missing run, no artifact, another shape):
    a permanent error, so the worker fails the run at once with this reason."""


def layer_groups(model: nn.Module) -> list[list[nn.Module]]:
    """The model's layers grouped into blocks, input side first, the head last."""
    if hasattr(model, "features") and hasattr(model, "head"):  # SmallCNN
        modules, head = list(model.features), [model.head]
    else:  # MLP (nn.Sequential): the last module is the head
        modules = list(model)
        modules, head = modules[:-1], [modules[-1]]
    groups: list[list[nn.Module]] = []
    for m in modules:
        if isinstance(m, (nn.Linear, nn.Conv2d)) or not groups:
            groups.append([m])
        else:
            groups[-1].append(m)
    groups.append(head)
    return groups


def _params(group) -> list[nn.Parameter]:
    return [p for m in group for p in m.parameters()]


def is_fine_tuning(config: dict) -> bool:
    return bool(config.get("init_from_run") or config.get("freeze_layers"))


def freeze(model: nn.Module, k: int) -> int:
    """Freeze the first k groups (never the head); returns how many were frozen."""
    groups = layer_groups(model)
    k = min(k, len(groups) - 1)
    for group in groups[:k]:
        for p in _params(group):
            p.requires_grad_(False)
        for m in group:
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.momentum = 0.0  # frozen: keep the running statistics it was trained with
    return k


def param_groups(model: nn.Module, config: dict) -> list[dict]:
    """Optimizer param groups: trainable layer groups, each with an `lr_scale` (the head 1,
    each earlier group the next one's divided by lr_layer_factor) and the matching `lr`."""
    factor = float(config.get("lr_layer_factor") or 1.0)
    groups = layer_groups(model)
    out = []
    for i, group in enumerate(groups):
        params = [p for p in _params(group) if p.requires_grad]
        if not params:
            continue
        scale = factor ** -(len(groups) - 1 - i)
        out.append({"params": params, "lr": config["lr"] * scale, "lr_scale": scale, "group": i})
    return out


class ScaledSchedule:
    """Wraps the engine's Schedule: every param group gets the scheduled LR times its lr_scale."""

    def __init__(self, schedule):
        self._schedule = schedule

    def __getattr__(self, name):
        return getattr(self._schedule, name)

    def apply(self, optimizer, step: int) -> float:
        lr = self._schedule.apply(optimizer, step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr


def load_matching(model: nn.Module, state: dict) -> list[str]:
    """Copy every tensor of `state` whose name and shape match; returns the names copied.
    A head of another size (another number of classes) is skipped, so it trains from scratch."""
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not matching:
        raise InitError("the run to start from has no layer of the same shape as this model")
    model.load_state_dict(matching, strict=False)
    return sorted(matching)


def state_dict_from_run(run_id: int) -> dict:
    """The final model weights of a Runwise run, from its MLflow artifacts."""
    from mlflow.tracking import MlflowClient

    from tracking.models import Run

    run = Run.objects.filter(pk=run_id).only("mlflow_run_id", "status").first()
    if run is None:
        raise InitError(f"init_from_run: run {run_id} does not exist")
    if not run.mlflow_run_id:
        raise InitError(f"init_from_run: run {run_id} has no MLflow run (it never trained)")
    client = MlflowClient()
    path = _find_checkpoint(client, run.mlflow_run_id)
    if path is None:
        raise InitError(f"init_from_run: run {run_id} saved no model checkpoint")
    local = client.download_artifacts(run.mlflow_run_id, path)
    with open(local, "rb") as fh:
        data = io.BytesIO(fh.read())
    return state_dict_of(load_weights(data, what=f"init_from_run: the model of run {run_id} ({path})"))


def _find_checkpoint(client, mlflow_run_id: str, folder: str = "") -> Optional[str]:
    if not folder:
        for path in PREFERRED:
            parent, name = path.rsplit("/", 1)
            if any(f.path == path for f in client.list_artifacts(mlflow_run_id, parent)):
                return path
    files = client.list_artifacts(mlflow_run_id, folder or None)
    by_name = {f.path.rsplit("/", 1)[-1]: f.path for f in files if not f.is_dir}
    for name in CHECKPOINT_NAMES:
        if name in by_name:
            return by_name[name]
    for f in files:
        if not f.is_dir and f.path.endswith((".pt", ".pth")):
            return f.path
    for f in files:
        if f.is_dir:
            found = _find_checkpoint(client, mlflow_run_id, f.path)
            if found:
                return found
    return None


def state_dict_of(obj) -> dict:
    """A model state dict from what was saved: a state dict, a whole checkpoint or a module."""
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"]
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise InitError("the saved model is neither a state dict nor a checkpoint")


def prepare(training, load_state: Callable[[int], dict] = state_dict_from_run) -> None:
    """Apply the config's fine-tuning keys to a built Training (model, optimizer, schedule)."""
    config = training.config
    if not is_fine_tuning(config):
        return
    if config.get("init_from_run"):
        names = load_matching(training.model, load_state(config["init_from_run"]))
        log.info("fine-tuning: %d tensors from run %s", len(names), config["init_from_run"])
    if config.get("freeze_layers"):
        freeze(training.model, config["freeze_layers"])
    from workers.engine import make_optimizer

    training.optimizer = make_optimizer(config, param_groups(training.model, config))
    training.schedule = ScaledSchedule(training.schedule)
