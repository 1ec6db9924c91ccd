"""The rules engine: pure Python and numpy (no Django, MLflow or torch).

`advise(run_input)` reads a run's curves and config (DESIGN.md, "The advise contract")
and returns diagnoses with evidence and recommended config changes, best first.
"""
from .engine import advise, analyse, explore
from .features import ALIASES
from .inputs import RunInputError, read_run_input
from .rules import REGISTRY, RULES

__all__ = ["advise", "analyse", "explore", "ALIASES", "RunInputError", "read_run_input", "REGISTRY", "RULES"]
