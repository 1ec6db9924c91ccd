"""Throw-away stores for a benchmark that runs Runwise's own processes: a temp directory for the
databases, the MLflow store and artifacts, a free port for its redis-server, set in the environment
before Django's settings load (import this first; the bench starts and removes them)."""
import os
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def throwaway_env(prefix, **extra):
    """(temp dir, Redis port), with VAR_DIR, DATABASE_URL, MLFLOW_*, REDIS_URL and Django's settings
    module pointing there, torch on one thread, and `extra` variables set."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    os.environ.update(
        VAR_DIR=str(tmp), DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db", MLFLOW_ARTIFACT_ROOT=str(tmp / "mlartifacts"),
        REDIS_URL=f"redis://127.0.0.1:{port}/0", DJANGO_SETTINGS_MODULE="webapp.settings",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), LOG_LEVEL="WARNING", **extra,
    )
    sys.path.insert(0, str(ROOT))
    return tmp, port
