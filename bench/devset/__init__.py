"""A development set of runs from elsewhere, each with a counterfactual score (issue 11).

- `scoring`: pure: a Case (a run, the engine's top change and what it gave, the best val_loss of each
  single change of the vocabulary) and the figures over cases (hit rate, false alarms, precision of
  confident changes, reliability table, random and best-fixed baselines).
- `lcbench`: LCBench curves through the YAHPO Gym ONNX surrogate (model outside the repository).

`bench/bench_devset.py` runs them and prints the figures.
"""
