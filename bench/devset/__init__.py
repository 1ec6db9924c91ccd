"""A development set of runs from elsewhere, each with a counterfactual score (issue 11).

- `scoring`: pure: a Case (a run, the engine's top change and what it gave, the best val_loss of each
  single change of the vocabulary) and the figures over cases (hit rate, false alarms, precision of
  confident changes, reliability table, random and best-fixed baselines).
- `lcbench`: LCBench curves through the YAHPO Gym ONNX surrogate (model outside the repository).
- `loggers`: runs logged to a real MLflow store by PyTorch Lightning's MLFlowLogger, Hugging Face
  transformers.Trainer's MLflow callback and a plain `mlflow.log_metric` script, read back with
  `tracking.mlflow_io.read_run` (what `advise --mlflow-run` reads), retrained for the counterfactual.

`bench/bench_devset.py` runs them and prints the figures.
"""
