"""The engine is pure: importing and running it loads neither Django, MLflow nor torch."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from tracking.rules import advise
answer = advise({"config": {}, "metrics": {"val_loss": [[1, 1.0], [2, 0.8], [3, 0.7]]}})
heavy = sorted(m for m in ("django", "mlflow", "torch") if m in sys.modules)
print(json.dumps({"heavy": heavy, "first": answer["diagnoses"][0]["id"]}))
"""


def test_the_engine_imports_no_django_mlflow_or_torch():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["heavy"] == [] and out["first"] in ("not_converged", "healthy")


def test_the_engine_defaults_are_the_project_defaults():
    from tracking.config import DEFAULTS
    from tracking.rules.rules import DEFAULTS as ENGINE_DEFAULTS

    assert all(ENGINE_DEFAULTS[k] == DEFAULTS[k] for k in ENGINE_DEFAULTS)
