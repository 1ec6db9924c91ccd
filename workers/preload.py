"""Imported once by the forkserver that forks each run's training process (workers/isolation.py):
Django set up, torch, MLflow and the trainer imported, so that a fork starts training at once.
Nothing is initialised here: no torch operation (no thread pool), no database or broker connection."""
import django

django.setup()

import pandas  # noqa: E402,F401
import sklearn.datasets  # noqa: E402,F401
import sklearn.model_selection  # noqa: E402,F401
import torch  # noqa: E402,F401

import workers.lr_range  # noqa: E402,F401
import workers.training  # noqa: E402,F401
