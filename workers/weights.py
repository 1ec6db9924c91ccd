"""Stored model files are data: every model and checkpoint is read by torch's weights-only
unpickler (tensors, containers and numbers; no other object is built, no function is called).

A file that needs anything else, e.g. a pickle planted in MLflow that would run a command when
unpickled, is refused: the run fails with `UnsafeFileError` naming the file, and nothing in it runs.
"""
from __future__ import annotations

import pickle
import re

from workers.errors import PermanentError


class UnsafeFileError(PermanentError, ValueError):
    """A stored model or checkpoint that is not plain weights (or not a torch file at all)."""


def load_weights(source, *, what: str, map_location="cpu", allowed=()):
    """torch.load(source, weights_only=True), with a clear reason when the file is refused.
    `what` names the file in the reason, e.g. "the model of run 12 (model/model.pt)"; `allowed`
    adds data-only types to the weights-only unpickler's allowlist (torch.serialization.safe_globals)."""
    import torch

    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) (\S+)|Can only build .*?, but got (\S+)", str(exc))
        if refused:
            name = (refused.group(1) or refused.group(2)).rstrip(".")
            raise UnsafeFileError(f"{what} is not plain weights and was not loaded: it asks for {name}") from None
        raise UnsafeFileError(f"{what} is not a readable torch file: {_detail(exc)}") from None
    except (RuntimeError, EOFError, ValueError) as exc:  # truncated, or not a torch file
        raise UnsafeFileError(f"{what} is not a readable torch file: {_detail(exc)}") from None


def _detail(exc) -> str:
    """The line of torch's long message that says what went wrong."""
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= 200 else line[:200] + "..."
