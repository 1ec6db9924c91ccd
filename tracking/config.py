"""The run config: one validator for the form, the API, the worker and "apply".

The keys in DESIGN.md ("Run config") are fixed; the rest are ours and are
documented in the README. `validate_config` returns a complete config (defaults
filled in) or raises `ConfigError` naming the first bad field.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULERS = ("constant", "step", "cosine", "cosine_restarts", "onecycle")
DATASETS = ("digits", "breast_cancer", "wine", "moons", "spirals", "classification", "csv")
MODELS = ("mlp", "cnn")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "gelu")
QUEUES = ("cpu", "gpu")
IMAGE_DATASETS = ("digits",)
SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's seeds are 32-bit


class ConfigError(ValueError):
    """A bad run config: `field` names the key, `message` says what is wrong."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    # Data
    dataset: Literal[DATASETS] = Field("digits", description="Built-in data set, or an uploaded CSV.")
    csv_path: Optional[str] = Field(None, description="Path of the uploaded CSV (dataset 'csv').")
    csv_label: Optional[str] = Field(None, description="Label column of the CSV (dataset 'csv').")
    val_fraction: float = Field(0.2, gt=0, le=0.5, description="Share of the data held out for validation.")
    train_subset: Optional[int] = Field(None, ge=1, description="Use only this many training examples.")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed for the split, the initialisation and the batches.")

    # Model
    model: Literal[MODELS] = Field("mlp", description="An MLP, or a small CNN for image data sets.")
    width: int = Field(64, ge=1, le=4096, description="Hidden units per layer (channels for the CNN).")
    depth: int = Field(2, ge=1, le=16, description="Hidden layers.")
    activation: Literal[ACTIVATIONS] = Field("relu", description="Hidden-layer activation.")
    batch_norm: bool = Field(False, description="Batch normalisation after each hidden layer.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout probability after each hidden layer.")

    # Optimizer
    optimizer: Literal[OPTIMIZERS] = Field("sgd", description="Optimizer.")
    lr: float = Field(0.01, gt=0, le=100, description="Base (or peak) learning rate.")
    momentum: float = Field(0.0, ge=0, lt=1, description="Momentum (SGD, RMSprop).")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD only, needs momentum > 0).")
    weight_decay: float = Field(0.0, ge=0, le=10, description="L2 penalty (decoupled for AdamW).")
    batch_size: int = Field(32, ge=1, le=65536, description="Examples per optimizer step.")
    epochs: int = Field(20, ge=1, le=10000, description="Passes over the training set.")
    grad_clip: Optional[float] = Field(None, gt=0, description="Max gradient norm, or empty for none.")

    # Schedule
    scheduler: Literal[SCHEDULERS] = Field("constant", description="Learning-rate schedule.")
    warmup_epochs: float = Field(0.0, ge=0, description="Linear warm-up from lr/100 over this many epochs.")
    step_size: int = Field(10, ge=1, description="Epochs between decays ('step').")
    gamma: float = Field(0.1, gt=0, le=1, description="Decay factor ('step').")
    restart_period: int = Field(10, ge=1, description="Epochs in the first cycle ('cosine_restarts').")
    cycle_mult: int = Field(1, ge=1, description="Each cycle this many times longer ('cosine_restarts').")
    pct_start: float = Field(0.25, gt=0, lt=1, description="Share of steps rising ('onecycle').")

    # Regularisation
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy.")
    augment: bool = Field(False, description="Data augmentation where the data set has one.")
    early_stopping_patience: Optional[int] = Field(
        None, ge=1, description="Stop after this many epochs without val_loss improvement."
    )

    # Fine-tuning (workers/finetune.py) and the LR range test (workers/lr_range.py)
    init_from_run: Optional[int] = Field(None, ge=1, description="Start from this run's final model.")
    freeze_layers: int = Field(0, ge=0, le=16, description="Freeze the first k layer groups.")
    lr_layer_factor: float = Field(3.0, ge=1, le=1000, description="Each earlier layer group gets the LR of the next divided by this.")
    lr_min: float = Field(1e-7, gt=0, le=100, description="LR range test: first LR.")
    lr_max: float = Field(10.0, gt=0, le=100, description="LR range test: last LR.")
    lr_find_steps: int = Field(100, ge=5, le=10000, description="LR range test: steps from lr_min to lr_max.")

    # Execution
    queue: Literal[QUEUES] = Field("cpu", description="Worker queue: 'gpu' or 'cpu'.")
    stop_on_diagnosis: bool = Field(
        False, description="Stop the run early on a confident divergence or overfitting diagnosis."
    )

    @model_validator(mode="before")
    @classmethod
    def _numbers(cls, data):
        """A number is a number: true/false is refused (not taken as 1/0), and NaN or infinity,
        given as a number or as a string, is refused as such (not as 'should be <= 100')."""
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            info = cls.model_fields.get(name)
            if info is None or value is None or not _is_number(info.annotation):
                continue
            if isinstance(value, bool):
                raise _Bad(name, "must be a number, not true or false")
            if isinstance(value, (str, float)):
                try:
                    number = float(value)
                except ValueError:
                    continue  # pydantic names the type
                if not math.isfinite(number):
                    raise _Bad(name, "must be a finite number")
        return data

    @model_validator(mode="after")
    def _consistent(self):
        for name in ("lr", "momentum", "weight_decay", "dropout", "val_fraction", "gamma",
                     "pct_start", "label_smoothing", "warmup_epochs"):
            if not math.isfinite(getattr(self, name)):
                raise _Bad(name, "must be a finite number")
        if self.grad_clip is not None and not math.isfinite(self.grad_clip):
            raise _Bad("grad_clip", "must be a finite number or empty")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise _Bad("nesterov", "needs optimizer 'sgd' and momentum > 0")
        if self.model == "cnn" and self.dataset not in IMAGE_DATASETS:
            raise _Bad("model", f"'cnn' needs an image data set ({', '.join(IMAGE_DATASETS)})")
        if self.dataset == "csv" and not (self.csv_path and self.csv_label):
            raise _Bad("csv_label", "a CSV data set needs an uploaded file and a label column")
        if not math.isfinite(self.lr_layer_factor):
            raise _Bad("lr_layer_factor", "must be a finite number")
        if not (math.isfinite(self.lr_min) and math.isfinite(self.lr_max)) or self.lr_min >= self.lr_max:
            raise _Bad("lr_max", "must be finite and above lr_min")
        if self.warmup_epochs >= self.epochs:
            raise _Bad("warmup_epochs", "must be shorter than epochs")
        return self


def _is_number(annotation) -> bool:
    if get_origin(annotation) is Union:
        return any(_is_number(a) for a in get_args(annotation) if a is not type(None))
    return annotation in (int, float)


class _Bad(ValueError):
    def __init__(self, field, message):
        self.field, self.message = field, message
        super().__init__(message)


FIXED_KEYS = (
    "optimizer", "lr", "momentum", "nesterov", "weight_decay", "batch_size", "epochs",
    "scheduler", "warmup_epochs", "dropout", "batch_norm", "label_smoothing", "grad_clip",
    "early_stopping_patience", "augment",
)
DEFAULTS: dict[str, Any] = RunConfig().model_dump()
FIELDS = RunConfig.model_fields


def validate_config(data: Any) -> dict[str, Any]:
    """Return the full, validated config, or raise ConfigError naming the field."""
    if not isinstance(data, dict):
        raise ConfigError("config", "must be a JSON object")
    try:
        return RunConfig.model_validate(data).model_dump()
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _Bad):
            raise ConfigError(ctx_error.field, ctx_error.message) from None
        field = ".".join(str(p) for p in err["loc"]) or "config"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "is not a known config key"
        raise ConfigError(field, message) from None


def apply_change(config: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """A recommendation's change applied to a config, validated."""
    return validate_config({**config, **change})
