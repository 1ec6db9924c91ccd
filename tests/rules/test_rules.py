"""Every rule in the registry: a named unit whose change, computed from the config, validates."""
import pytest

from tracking.config import apply_change, validate_config
from tracking.rules import RULES
from tracking.rules.diagnoses import Diagnosis
from tracking.rules.engine import analyse
from tracking.rules.rules import Context, read_config

from . import curves as c

CONFIGS = [
    {"optimizer": "sgd", "lr": 0.005, "epochs": 20, "batch_size": 8},
    {"optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": True, "epochs": 30, "batch_size": 512,
     "weight_decay": 0.05, "dropout": 0.5, "label_smoothing": 0.2, "scheduler": "step"},
    {"optimizer": "adam", "lr": 0.001, "epochs": 50, "batch_size": 256},
    {"optimizer": "adamw", "lr": 0.0001, "weight_decay": 0.5, "epochs": 40, "grad_clip": 1.0, "augment": True},
    {"optimizer": "adam", "lr": 0.001, "epochs": 10, "init_from_run": 1, "freeze_layers": 2},  # fine-tuning
]
FACTS = [{"nonfinite": True, "early": True, "ratio": 5.0, "late_share": 0.3, "best_at": 0.1, "ups_to_min": 0.2,
          "collapsed": True},
         {"nonfinite": False, "early": False, "ratio": 1.5, "late_share": 0.05, "best_at": 0.9}]


def features():
    train, val = c.unstable()
    f, _, _ = analyse(c.run(train, val, grad_norm=[[i, 1.0 + (i % 50 == 0) * 30] for i in range(600)]))
    return f


def annealed_features():
    """The same curves under a cosine schedule that ran its course (the LR ended near zero)."""
    train, val = c.unstable()
    f, _, _ = analyse(c.run(train, val, config={"scheduler": "cosine", "epochs": len(val)}))
    assert f.annealed
    return f


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_each_rule_proposes_a_valid_absolute_change(rule):
    assert rule.id.startswith(rule.diagnosis + ".") and rule.rationale and 0 < rule.confidence <= 1
    applied = 0
    for f, raw, facts in [(f, raw, facts) for f in (features(), annealed_features()) for raw in CONFIGS
                          for facts in FACTS]:
        config = validate_config(raw)
        ctx = Context(read_config(config), f, Diagnosis(rule.diagnosis, 0.9, "", [1, 2], dict(facts)), frozenset(config))
        if not rule.when(ctx):
            continue
        change = rule.change(ctx)
        assert change and any(config[k] != v for k, v in change.items())
        apply_change(config, change)
        applied += 1
    assert applied, f"{rule.id} applies to none of the test configs"


def test_rule_ids_are_unique():
    assert len({r.id for r in RULES}) == len(RULES)
