"""What a run will cost, estimated from its config before anything is queued.

`run_estimate(config, data)` counts the model's parameters exactly as `workers/nets.py` builds
it, the memory of its weights, gradients, optimizer state and activations (parameters x batch),
and its optimizer steps (epochs x steps per epoch) and time. `run_limits_check` refuses a config
over the limits (settings RUN_MEMORY_LIMIT_MB, RUN_TIME_LIMIT, RUN_MAX_STEPS) with a ConfigError
naming the field to change. Pure Python: no torch, so the web process can call it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import ConfigError

# (examples, input features, classes) of the built-in data sets (workers/datasets.py)
BUILTIN_SHAPES = {
    "digits": (1797, 64, 10), "breast_cancer": (569, 30, 2), "wine": (178, 13, 3),
    "moons": (1000, 2, 2), "spirals": (1200, 2, 3), "classification": (2000, 20, 4),
}
IMAGE_SHAPES = {"digits": (1, 8, 8)}
FLOAT_BYTES = 4
# Weights, their gradients, up to two optimizer states (Adam), and a checkpoint's copy.
STATE_COPIES = {"sgd": 4, "rmsprop": 4, "adagrad": 4, "adam": 5, "adamw": 5}
ACTIVATION_COPIES = 4            # pre-activation, activation, normalisation, dropout mask
PROCESS_OVERHEAD_MB = 300        # torch, the data loader and the interpreter, whatever the model
STEP_OVERHEAD_S = {"cpu": 2e-4, "gpu": 1e-4}   # Python and launch cost of one optimizer step
FLOPS = {"cpu": 5e9, "gpu": 5e11}              # sustained multiply-adds x 2 a second, conservatively


@dataclass(frozen=True)
class DataShape:
    rows: int
    features: int
    classes: int


@dataclass(frozen=True)
class Estimate:
    parameters: int
    memory_mb: float
    steps: int
    steps_per_epoch: int
    seconds: float


def _mlp(features, classes, width, depth, batch_norm):
    params, size, units = 0, features, 0
    for _ in range(depth):
        params += size * width + width + (width if batch_norm else 0)  # bias or BN's two vectors
        size, units = width, units + width
    params += size * classes + classes
    return params, units, params  # multiply-adds a forward pass ~ parameters


def _cnn(image_shape, classes, width, depth, batch_norm):
    channels, h, _ = image_shape
    params = macs = units = 0
    for i in range(depth):
        params += 9 * channels * width + width + (width if batch_norm else 0)
        macs += 9 * channels * width * h * h
        units += width * h * h
        if i < 2 and h >= 4:
            h //= 2
        channels = width
    head = width * h * h * classes + classes
    return params + head, units, macs + head


def run_estimate(config: dict, data: DataShape) -> Estimate:
    """Parameters, memory (MB), optimizer steps and seconds of a validated config on `data`."""
    if config["model"] == "cnn" and config["dataset"] in IMAGE_SHAPES:
        params, units, macs = _cnn(IMAGE_SHAPES[config["dataset"]], data.classes, config["width"],
                                   config["depth"], config["batch_norm"])
    else:
        params, units, macs = _mlp(data.features, data.classes, config["width"], config["depth"],
                                   config["batch_norm"])
    n_train = max(1, data.rows - max(1, round(config["val_fraction"] * data.rows)))
    if config.get("train_subset"):
        n_train = min(n_train, config["train_subset"])
    batch = min(config["batch_size"], n_train)
    steps_per_epoch = math.ceil(n_train / batch)
    steps = config["epochs"] * steps_per_epoch
    memory = (params * STATE_COPIES.get(config["optimizer"], 5) + batch * units * ACTIVATION_COPIES
              + data.rows * data.features * 2) * FLOAT_BYTES
    device = "gpu" if config.get("queue") == "gpu" else "cpu"
    per_step = STEP_OVERHEAD_S[device] + 6 * batch * macs / FLOPS[device]  # forward + backward
    return Estimate(params, memory / 2**20 + PROCESS_OVERHEAD_MB, steps, steps_per_epoch, steps * per_step)


def _size(n: float) -> str:
    for unit, scale in (("billion", 1e9), ("million", 1e6), ("thousand", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.3g} h" if seconds >= 3600 else f"{seconds / 60:.3g} min"


def run_limits_check(config: dict, data: DataShape, *, memory_mb: int, time_limit: int, max_steps: int) -> Estimate:
    """The estimate, or ConfigError naming what to change when the run would pass a limit."""
    est = run_estimate(config, data)
    model = f"a {config['model']} {config['width']} wide and {config['depth']} deep"
    if est.memory_mb > memory_mb:
        field = "batch_size" if est.parameters * 20 < memory_mb * 2**20 else "width"
        raise ConfigError(field, f"{model} (width/depth) has {_size(est.parameters)} parameters; with batch "
                                 f"{config['batch_size']} it needs about {est.memory_mb:,.0f} MB, over the run "
                                 f"memory limit of {memory_mb:,} MB (RUN_MEMORY_LIMIT_MB)")
    if est.steps > max_steps:
        raise ConfigError("epochs", f"{config['epochs']:,} epochs x {est.steps_per_epoch:,} steps = "
                                    f"{est.steps:,} optimizer steps, over the limit of {max_steps:,} (RUN_MAX_STEPS)")
    if est.seconds > time_limit:
        raise ConfigError("epochs", f"{est.steps:,} steps of {model} would take about {_duration(est.seconds)} "
                                    f"on a {config.get('queue', 'cpu')} worker, over the run time limit of "
                                    f"{_duration(time_limit)} (RUN_TIME_LIMIT)")
    return est
