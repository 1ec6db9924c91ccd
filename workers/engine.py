"""The training engine: a short loop, with everything else hung on it as callbacks.

    from workers.engine import fit
    result = fit(validate_config({...}))            # pure: no Django, no MLflow
    result.history["val_loss"]                      # [(epoch, value), ...]

`fit` trains the config's model on its data set and returns a `FitResult` with the
DESIGN.md metrics: train_loss, lr and grad_norm (before clipping) per global step from 0;
train_loss_epoch, train_accuracy, val_loss and val_accuracy per epoch from 1. A non-finite
loss or gradient ends the run as "diverged" at the step where it happened (the non-finite point
is recorded; the loop checks the values in bulk, so a few steps after it may have run and are
dropped); a callback
can end it early with `training.stop(reason, status)`. A CPU run is reproducible from its
seed, and `checkpoint=` (a dict from `Training.checkpoint()`) resumes a run exactly where
an epoch ended.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn

from workers import finetune
from workers.callbacks import EPOCH_METRICS, STEP_METRICS, Callback, EarlyStopping  # noqa: F401 (re-exported)
from workers.datasets import load_dataset
from workers.nets import build_model
from workers.schedules import Schedule

EVAL_CHUNK = 8192
RECORD_SECONDS = 0.25     # the per-step values wait on the device at most about this long...
RECORD_STEPS = 1024       # ...or this many steps (and never past an epoch end) before one bulk copy
CHECKPOINT_VERSION = 3      # 3: says whether the optimizer's state is per flat group ("flat_optimizer");
                            # 2: per flat group; 1: per parameter
# Flat parameters (flatten_optimizer) pay while a model's trainable parameters are small: one
# tensor a group instead of one a layer saves per-tensor work (the default MLP's step -37%, 35 KB;
# a 332 KB MLP -19%), but every backward then adds into the existing gradient buffer instead of
# handing its fresh gradients over, an extra pass over them: +84% on a 2.2 MB MLP, +12% on the
# 12.6 MB MLP 1024x4 (its backward 42 -> 48 ms; one CPU thread, Adam). Above this size the
# optimizer keeps one tensor a layer and the gradients are set to None each step.
FLAT_MAX_BYTES = 1 << 20


@dataclass
class FitResult:
    history: dict            # metric -> [(step or epoch, value), ...]
    steps_per_epoch: int
    status: str              # "succeeded", "diverged", "stopped" (or "failed" on an error)
    reason: str
    best_val_loss: Optional[float]
    best_val_accuracy: Optional[float]
    best_epoch: Optional[int]
    epochs_run: int          # completed epochs
    steps_run: int           # optimizer steps taken
    diverged_step: Optional[int]
    device: str
    seconds: float
    model: nn.Module = field(repr=False, default=None)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def use_threads_from_env() -> int:
    """torch's CPU threads: OMP_NUM_THREADS, else 1. Small models train fastest on one thread,
    and several threads on a busy machine are many times slower."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else 1)
    return torch.get_num_threads()


def make_optimizer(config, params):
    name, lr, wd = config["optimizer"], config["lr"], config["weight_decay"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config["momentum"], nesterov=config["nesterov"],
                               weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config["momentum"], weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


def steps_per_epoch(n_train, batch_size, batch_norm=False):
    """Batches per epoch; a trailing batch of one example is dropped under batch norm."""
    batch_size = min(batch_size, n_train)
    full, rest = divmod(n_train, batch_size)
    return full + (1 if rest and not (batch_norm and rest == 1) else 0)


class Training:
    """The state of one training run, which the loop advances and callbacks read."""

    def __init__(self, config, callbacks=(), device=None, checkpoint=None):
        self.config = config
        self.device = torch.device(device or default_device())
        callbacks = list(callbacks)
        if config.get("early_stopping_patience"):
            callbacks.append(EarlyStopping(config["early_stopping_patience"]))
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)

        seed = config["seed"]
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)  # batches and augmentation

        self.data = load_dataset(config, self.device)
        self.model = build_model(config, self.data.n_features, self.data.n_classes,
                                 self.data.image_shape).to(self.device)
        self.optimizer = make_optimizer(config, [p for p in self.model.parameters() if p.requires_grad])
        self.batch_size = min(config["batch_size"], self.data.n_train)
        self.steps_per_epoch = steps_per_epoch(self.data.n_train, self.batch_size, config["batch_norm"])
        self.epochs = config["epochs"]
        self.total_steps = self.epochs * self.steps_per_epoch
        self.schedule = Schedule(config, self.steps_per_epoch)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
        self.grad_clip = config.get("grad_clip")
        finetune.prepare(self)  # init_from_run, freeze_layers, lr_layer_factor: a no-op without them
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.flat_grad = None
        if flat_layout(self.params, checkpoint):
            self.optimizer, self.flat_grad = flatten_optimizer(self.optimizer)

        self.epoch = 0            # completed epochs
        self.step = 0             # optimizer steps taken = global step of the next one
        self.history = {name: [] for name in STEP_METRICS + EPOCH_METRICS}
        self.step_metrics = {}    # the last recorded step's train_loss, lr, grad_norm
        self.before_update = []   # callables run once, before the next optimizer step changes the parameters
        # Steps taken but not yet in `history`; `record_steps()` moves them over in bulk. On an
        # accelerator losses and grad norms wait as 0-d device tensors (no sync a step) and are
        # copied back in one go; on the CPU reading a value is a plain memory read, cheaper
        # than keeping the tensors alive, so they are read at once (`defer_reads` False).
        self.defer_reads = self.device.type != "cpu"
        self._pending_loss, self._pending_norm, self._pending_lr = [], [], []
        self._next_record = 0.0
        self.epoch_metrics = {}   # the last epoch's metrics
        self.best_val_loss = self.best_val_accuracy = self.best_epoch = None
        self.status, self.reason = "running", ""
        self.stop_reason = None
        self.diverged_step = None
        self.resumed_from = None  # epoch of the checkpoint this run resumed from
        self.started = self.elapsed_before = 0.0
        self.steps_this_session = 0
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)

    # ------------------------------------------------------------------ control

    @property
    def should_stop(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: str, status: str = "stopped") -> None:
        """Ask the loop to end after the current step (the first reason wins)."""
        if self.stop_reason is None:
            self.stop_reason, self.status = reason, status

    def _emit(self, hook):
        for cb in self.callbacks:
            getattr(cb, hook)(self)

    def _hooks(self, hook):
        """The callbacks' bound `hook` methods, those left as Callback's no-op skipped."""
        base = getattr(Callback, hook)
        return [getattr(cb, hook) for cb in self.callbacks
                if getattr(type(cb), hook, None) is not base or hook in vars(cb)]

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.started if self.started else 0.0)

    def eta_seconds(self) -> Optional[float]:
        if not self.steps_this_session:
            return None
        per_step = (time.monotonic() - self.started) / self.steps_this_session
        return max(0.0, (self.total_steps - self.step) * per_step)

    # ------------------------------------------------------------------ the loop

    def fit(self) -> FitResult:
        self.started = time.monotonic()
        self._next_record = self.started + RECORD_SECONDS
        self._pending_from = self.step  # global step of the first pending value
        self._step_hooks = self._hooks("on_step_end")
        self.model.train()
        try:
            self._emit("on_fit_start")
            while self.epoch < self.epochs and not self.should_stop:
                self._emit("on_epoch_start")
                self._train_epoch()
            self.record_steps()
            if not self.should_stop:
                self.status = "succeeded"
            self.reason = self.stop_reason or f"completed {self.epoch} epochs"
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.record_steps()
            self.status, self.reason = "failed", f"{type(exc).__name__}: {exc}"
            try:
                self._emit("on_fit_end")
            finally:
                self._emit("on_teardown")
            raise
        self._emit("on_fit_end")
        self._emit("on_teardown")
        return self.result()

    def _train_epoch(self):
        n, bs = self.data.n_train, self.batch_size
        order = torch.randperm(n, generator=self.generator).to(self.device)
        self._outputs = []
        i = 0
        while i < self.steps_per_epoch and not self.should_stop:
            self._train_step(order[i * bs:(i + 1) * bs])
            i += 1
        self.record_steps()  # also checks the epoch's last steps for a non-finite value
        if i == self.steps_per_epoch and self.status != "diverged":
            self._end_epoch(order[:i * bs])

    def _train_step(self, idx):
        data = self.data
        lr = self.schedule.apply(self.optimizer, self.step)
        xb = data.augment(idx, self.generator) if data.augment else data.x_train[idx]
        out = self.model(xb)
        loss = self.loss_fn(out, data.y_train[idx])
        self.zero_grad()
        loss.backward()
        norm = self.grad_norm()
        if self.grad_clip:
            self.clip_gradients(norm)
        if self.before_update:  # e.g. a checkpoint's copy of the parameters, taken beside this step
            hooks, self.before_update = self.before_update, []
            for hook in hooks:
                hook()
        self.optimizer.step()
        # No .item() on an accelerator (a device sync): the values are read in bulk by
        # record_steps, which also ends the run as diverged at the first non-finite one.
        if self.defer_reads:
            self._pending_loss.append(loss.detach())
            self._pending_norm.append(norm)
        else:
            self._pending_loss.append(loss.item())
            self._pending_norm.append(norm.item())
        self._pending_lr.append(lr)
        self._outputs.append(out.detach())
        self.step += 1
        self.steps_this_session += 1
        pending = len(self._pending_lr)
        if (pending & 7) == 0 and (pending >= RECORD_STEPS or time.monotonic() >= self._next_record):
            self.record_steps()
        for hook in self._step_hooks:
            hook(self)

    def zero_grad(self) -> None:
        """Zero every gradient: one op when they are views of `flat_grad`, else set to None (the
        backward then hands its fresh gradients over)."""
        if self.flat_grad is not None:
            self.flat_grad.zero_()
        else:
            self.optimizer.zero_grad(set_to_none=True)

    def grad_norm(self) -> torch.Tensor:
        """The total gradient norm (a 0-d tensor, not read back)."""
        if self.flat_grad is not None:
            return torch.linalg.vector_norm(self.flat_grad)  # every gradient is a view of it: one op
        return torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])

    def clip_gradients(self, norm: torch.Tensor) -> None:
        """Scale the gradients to at most grad_clip in norm, as clip_grad_norm_ does, without
        reading the norm back."""
        scale = torch.clamp(self.grad_clip / (norm + 1e-6), max=1.0)
        if self.flat_grad is not None:
            self.flat_grad.mul_(scale)
        else:
            torch._foreach_mul_([p.grad for p in self.params if p.grad is not None], scale)

    def record_steps(self):
        """Copy the pending per-step values into `history` (one bulk device-to-host copy) and
        check them: at the first non-finite loss or gradient norm the history ends (that point
        included), the steps after it are dropped and the run ends as diverged at that step.
        The loop calls it at every epoch end and a few times a second; a callback that needs
        the latest steps (a logger's flush) may call it too (from the loop's thread)."""
        lrs = self._pending_lr
        if not lrs:
            return
        losses, norms, first, n = self._pending_loss, self._pending_norm, self._pending_from, len(lrs)
        self._pending_loss, self._pending_norm, self._pending_lr = [], [], []
        self._pending_from = first + n
        self._next_record = time.monotonic() + RECORD_SECONDS
        values = torch.stack(losses + norms).tolist() if self.defer_reads else losses + norms
        loss_v, norm_v = values[:n], values[n:]
        bad = None
        if not math.isfinite(sum(values)):  # rare (or an overflow of finite values): look for the first non-finite step
            bad = next((i for i in range(n) if not (math.isfinite(loss_v[i]) and math.isfinite(norm_v[i]))), None)
        keep = n if bad is None else bad + 1
        steps = range(first, first + keep)
        h = self.history
        h["train_loss"].extend(zip(steps, loss_v[:keep]))
        h["lr"].extend(zip(steps, lrs[:keep]))
        h["grad_norm"].extend(zip(steps, norm_v[:keep]))
        self.step_metrics = {"train_loss": loss_v[keep - 1], "lr": lrs[keep - 1], "grad_norm": norm_v[keep - 1]}
        if bad is not None:
            step, loss_value, grad_norm = first + bad, loss_v[bad], norm_v[bad]
            what, value = ("loss", loss_value) if not math.isfinite(loss_value) else ("gradient norm", grad_norm)
            self.steps_this_session -= self.step - (step + 1)
            self.step = step + 1  # the steps run after it are not counted
            self._diverge(step, f"non-finite {what} ({value}) at step {step}, epoch {self.epoch + 1}")

    def _diverge(self, step, reason):
        self.stop(reason, status="diverged")
        if self.status == "diverged" and self.diverged_step is None:
            self.diverged_step = step

    def _end_epoch(self, seen_idx):
        self.epoch += 1
        # Accuracy of the training batches as they were seen (one op for the whole epoch).
        correct = (torch.cat(self._outputs).argmax(1) == self.data.y_train[seen_idx]).sum().item()
        self._outputs = []
        # The epoch's mean loss over its examples (batch i holds min(bs, n - i * bs) of them).
        n, bs, loss_sum = self.data.n_train, self.batch_size, 0.0
        for i, (_, value) in enumerate(self.history["train_loss"][-self.steps_per_epoch:]):
            loss_sum += value * min(bs, n - i * bs)
        seen = len(seen_idx)
        val_loss, val_accuracy = self.evaluate()
        metrics = {
            "train_loss_epoch": loss_sum / max(1, seen),
            "train_accuracy": correct / max(1, seen),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        for name, value in metrics.items():
            self.history[name].append((self.epoch, value))
        self.epoch_metrics = metrics
        if not math.isfinite(val_loss):
            self._diverge(self.step - 1, f"non-finite val_loss ({val_loss}) at epoch {self.epoch}")
        elif self.best_val_loss is None or val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch = val_loss, self.epoch
        if math.isfinite(val_accuracy) and (self.best_val_accuracy is None or val_accuracy > self.best_val_accuracy):
            self.best_val_accuracy = val_accuracy
        self._emit("on_epoch_end")

    @torch.no_grad()
    def evaluate(self):
        """(loss, accuracy) on the validation set, in eval mode."""
        self.model.eval()
        x, y = self.data.x_val, self.data.y_val
        loss_sum, correct = 0.0, 0
        for start in range(0, len(y), EVAL_CHUNK):
            out = self.model(x[start:start + EVAL_CHUNK])
            yb = y[start:start + EVAL_CHUNK]
            loss_sum += self.loss_fn(out, yb).item() * len(yb)
            correct += (out.argmax(1) == yb).sum().item()
        self.model.train()
        return loss_sum / max(1, len(y)), correct / max(1, len(y))

    # ------------------------------------------------------------------ results, checkpoints

    def result(self) -> FitResult:
        self.record_steps()
        return FitResult(
            history={k: list(v) for k, v in self.history.items()},
            steps_per_epoch=self.steps_per_epoch, status=self.status, reason=self.reason,
            best_val_loss=self.best_val_loss, best_val_accuracy=self.best_val_accuracy,
            best_epoch=self.best_epoch, epochs_run=self.epoch, steps_run=self.step,
            diverged_step=self.diverged_step, device=str(self.device), seconds=self.elapsed,
            model=self.model,
        )

    def checkpoint(self, step_history: bool = True) -> dict:
        """Everything needed to resume: model, optimizer, schedule, epoch, step, RNG states,
        history (the per-step part only if `step_history`: it grows with the run) and callback
        state. Tensors are live: serialise it before training goes on."""
        self.record_steps()
        rng = {"torch": torch.get_rng_state(), "numpy": numpy_rng_state(), "python": random.getstate(),
               "batches": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "version": CHECKPOINT_VERSION, "flat_optimizer": self.flat_grad is not None,
            "config": self.config, "epoch": self.epoch, "step": self.step,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": {**self.schedule.state_dict(), "step": self.step}, "rng": rng,
            "history": {k: list(v) for k, v in self.history.items() if step_history or k in EPOCH_METRICS},
            "best": {"val_loss": self.best_val_loss, "val_accuracy": self.best_val_accuracy,
                     "epoch": self.best_epoch},
            "elapsed": self.elapsed,
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
        }

    def load_checkpoint(self, ckpt: dict) -> None:
        if ckpt.get("version") not in (1, 2, CHECKPOINT_VERSION):
            raise ValueError(f"unknown checkpoint version {ckpt.get('version')!r}")
        self.model.load_state_dict(ckpt["model"])  # copied into the parameters (views of a flat buffer stay so)
        optimizer_state = ckpt["optimizer"]
        if self.flat_grad is not None and not saved_flat(ckpt):
            optimizer_state = flat_optimizer_state(optimizer_state)
        self.optimizer.load_state_dict(optimizer_state)
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        set_numpy_rng_state(rng["numpy"])
        random.setstate(rng["python"])
        self.generator.set_state(rng["batches"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.history = {name: [tuple(p) for p in ckpt["history"].get(name, [])]
                        for name in STEP_METRICS + EPOCH_METRICS}
        best = ckpt["best"]
        self.best_val_loss, self.best_val_accuracy, self.best_epoch = best["val_loss"], best["val_accuracy"], best["epoch"]
        self.elapsed_before = ckpt.get("elapsed", 0.0)
        states = ckpt.get("callbacks", {})
        for cb in self.callbacks:
            if type(cb).__name__ in states:
                cb.load_state_dict(states[type(cb).__name__])
        self.resumed_from = self.epoch


def saved_flat(ckpt: dict) -> bool:
    """Is a checkpoint's optimizer state per flat group (else per parameter)?"""
    version = ckpt.get("version", 1)
    return bool(ckpt.get("flat_optimizer")) if version >= 3 else version == 2


def flat_layout(params, checkpoint=None) -> bool:
    """Flat parameters for these trainable parameters? As the checkpoint was saved when it says
    (a resumed run keeps its layout, so its numbers go on exactly), else by size (FLAT_MAX_BYTES)."""
    if checkpoint is not None and checkpoint.get("version", 1) >= 2:
        return saved_flat(checkpoint)
    return sum(p.numel() * p.element_size() for p in params) <= FLAT_MAX_BYTES


def numpy_rng_state() -> dict:
    """numpy's global RNG state with its key as a tensor (a numpy array cannot be loaded with
    `weights_only=True`)."""
    state = np.random.get_state(legacy=False)
    inner = state["state"]
    return {**state, "state": {**inner, "key": torch.from_numpy(inner["key"].astype(np.int64))}}


def set_numpy_rng_state(state) -> None:
    """Restore numpy_rng_state()'s dict, or the legacy tuple of version 2 checkpoints."""
    if isinstance(state, dict):
        inner = state["state"]
        key = inner["key"]
        key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        state = {**state, "state": {**inner, "key": key.astype(np.uint32)}}
    np.random.set_state(state)


def detached_copy(obj, into=None):
    """A copy of a checkpoint (or any nest of dicts, lists and tuples) that training can go on
    past: every tensor cloned on its own device (on an accelerator an asynchronous device-side
    copy, so the loop never waits for the host), containers rebuilt, everything else shared
    (numbers and strings are immutable). `into`: an earlier copy that nothing reads any more;
    its tensors of the same shape, dtype and device are overwritten instead of allocated (no
    fresh pages to fault in: 3 ms instead of 5.5 for 26 MB on one CPU thread). Serialising and
    writing the copy, ~100 ms, is the writer's work."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach()
        if (isinstance(into, torch.Tensor) and into.shape == obj.shape and into.dtype == obj.dtype
                and into.device == obj.device and into.stride() == obj.stride()):
            return into.copy_(obj)
        return obj.clone()
    if isinstance(obj, dict):
        into = into if isinstance(into, dict) else {}
        return {k: detached_copy(v, into.get(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if len(obj) > 32 and isinstance(obj[0], (int, float, str)):
            return type(obj)(obj)  # a long run of numbers (an RNG state): a shallow copy is a copy
        into = into if isinstance(into, (list, tuple)) and len(into) == len(obj) else (None,) * len(obj)
        return type(obj)(detached_copy(v, i) for v, i in zip(obj, into))
    return obj


def flatten_optimizer(optimizer):
    """(optimizer, flat gradient): the same optimizer over one flat parameter per param group.

    Every trainable parameter becomes a view of one buffer, and its gradient a view of another
    (as DDP's gradient buckets and apex's / DeepSpeed's flat parameters do): zeroing the
    gradients, their norm and clipping are one operation each, and the optimizer updates one
    tensor a group instead of one a layer (for the default MLP on one CPU thread, SGD's step
    takes 19 us instead of 48, Adam's 39 instead of 127). The update is the same
    arithmetic, element by element, so a run gives the same numbers. The model still sees its
    own parameters (views), and its state_dict is unchanged. For a fresh optimizer (its state is
    not carried over) whose parameters share one dtype and device, as the built-in models' do."""
    groups = optimizer.param_groups
    params = [p for group in groups for p in group["params"]]
    if not params:
        raise ValueError("the model has no trainable parameter")
    first = params[0]
    if any(p.dtype != first.dtype or p.device != first.device for p in params):
        raise ValueError("parameters of mixed dtypes or devices cannot share one buffer")
    total = sum(p.numel() for p in params)
    data = torch.empty(total, dtype=first.dtype, device=first.device)
    grad = torch.zeros(total, dtype=first.dtype, device=first.device)
    flat_groups, offset = [], 0
    for group in groups:
        start = offset
        for p in group["params"]:
            n = p.numel()
            data[offset:offset + n].copy_(p.detach().reshape(-1))
            p.data = data[offset:offset + n].view_as(p)
            p.grad = grad[offset:offset + n].view_as(p)
            offset += n
        flat = nn.Parameter(data[start:offset])
        flat.grad = grad[start:offset]
        flat_groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": [flat]})
    return type(optimizer)(flat_groups), grad  # each group carries every setting


def flat_optimizer_state(state: dict) -> dict:
    """An optimizer state_dict saved with one entry per parameter (checkpoints of version 1) as
    one entry per flat group: each group's per-parameter tensors concatenated in order, its
    scalars (a step count) taken from the first."""
    new_state = {}
    for i, group in enumerate(state["param_groups"]):
        entries = [state["state"][idx] for idx in group["params"] if idx in state["state"]]
        if len(entries) != len(group["params"]):  # none (no step yet), or not every layer's
            continue
        merged = {}
        for key, value in entries[0].items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                merged[key] = torch.cat([e[key].reshape(-1) for e in entries])
            else:
                merged[key] = value
        new_state[i] = merged
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [i]}
              for i, g in enumerate(state["param_groups"])]
    return {"state": new_state, "param_groups": groups}


def fit(config: dict, callbacks=(), device: Optional[str] = None, checkpoint: Optional[dict] = None) -> FitResult:
    """Train one run of a validated config (tracking.config.validate_config's output)."""
    return Training(config, callbacks, device, checkpoint).fit()
