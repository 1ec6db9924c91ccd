"""Imported once by the forkserver that forks each run's training process (workers/isolation.py):
Django set up, torch, MLflow and the trainer imported, so that a fork starts training at once.
Nothing is initialised here: no torch operation (no thread pool), no database or broker connection."""
import django

django.setup()

import pandas  # noqa: E402,F401
import sklearn.datasets  # noqa: E402,F401
import sklearn.model_selection  # noqa: E402,F401
import torch  # noqa: E402,F401
import torch._dynamo  # noqa: E402,F401  (torch.optim imports it at the first optimizer: 1.5-5 s a run)

import mlflow  # noqa: E402,F401
import mlflow.store.tracking.sqlalchemy_store  # noqa: E402,F401  (a SQL store's client, made in each run)
import mlflow.tracking  # noqa: E402,F401

import tracking.series  # noqa: E402,F401
import workers.lr_range  # noqa: E402,F401
import workers.mlflow_logging  # noqa: E402,F401
import workers.run_callbacks  # noqa: E402,F401
import workers.training  # noqa: E402,F401
